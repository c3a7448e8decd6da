"""What a request's ``model`` names: ``base``, a version id, or a stage alias, resolved to an adapter.

Every served version must be a LoRA-family adapter of the one base model in memory: those are
the adapters peft can mix in one batch. A full model is served as its own base instead
(``tuneloop serve --base RUN/model``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.errors import TuneloopError
from tuneloop.methods import get_method, methods_where
from tuneloop.runs.folder import RunDir
from tuneloop.serve.engine import BASE
from tuneloop.store.versions import check_servable, list_versions, resolve

BASE_NAME = "base"


class ModelNotServable(TuneloopError):
    """The named model exists but this server cannot serve it (wrong base, method)."""


@dataclass(frozen=True)
class Served:
    """A resolved ``model`` field: the adapter to use and what to log and prompt with."""

    name: str  # as the client wrote it
    adapter: str  # engine adapter name, or engine.BASE
    version_id: str | None
    project: str | None
    system_prompt: str | None


def resolve_served(conn, engine, base_model: str, name: str) -> Served:
    """Resolve ``name`` and load its adapter on first use (raises NotFoundError / ModelNotServable)."""
    if name == BASE_NAME:
        return Served(name, BASE, None, None, None)
    if any(separator in name for separator in ("/", "\\", "..")):
        raise ModelNotServable(f"model {name!r}: a model is named by version or alias, never by a path")
    version = resolve(conn, name)
    check_servable(version)
    config = RunDir(version.run_path).config()
    if config.model.name != base_model:
        raise ModelNotServable(f"{version.id} was trained on {config.model.name!r}; this server holds {base_model!r}")
    if not get_method(config.method.name).mixable:
        raise ModelNotServable(
            f"{version.id} uses method {config.method.name!r}; the server mixes {', '.join(methods_where('mixable'))} adapters "
            "on one base (fold other runs into a model with tuneloop merge --export-full and serve that as --base)"
        )
    engine.ensure_adapter(version.id, version.artifact_path)
    return Served(name, version.id, version.id, version.project, config.data.system_prompt)


def listed_models(conn) -> list[dict]:
    """``/v1/models``: the base, every version, and each project's stage aliases."""
    versions = list_versions(conn)
    entries = [{"id": BASE_NAME, "object": "model", "owned_by": "tuneloop", "created": 0}]
    for version in versions:
        entries.append({"id": version.id, "object": "model", "owned_by": version.project, "created": int(version.created_at), "stage": version.stage})
    for project in sorted({v.project for v in versions}):
        for alias in ("production", "candidate"):
            if any(v.project == project and v.stage == alias for v in versions):
                entries.append({"id": f"{project}@{alias}", "object": "model", "owned_by": project, "created": 0})
    return entries
