"""Combine LoRA adapters trained on different tasks into one, or fold a run into a plain model folder.

Weighted merging is peft's ``add_weighted_adapter``: the shared base is loaded once, every run's
adapter goes on it under its own name, and only the combination is saved, in PEFT format, inside
a run-like folder (``config.yaml`` + ``adapter/`` + ``merge.json``) that ``tuneloop generate`` and
``tuneloop chat`` use like any run. Exporting folds a run's trained weights into its base and saves
a full safetensors model that plain ``transformers`` loads, with no peft and no tuneloop.

Everything that can be checked from the run folders is checked before a model is loaded, and the
output is written through :func:`~tuneloop.atomic.staged_dir`: an error never leaves a folder behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneloop.atomic import staged_dir, write_json_atomic
from tuneloop.config import RunConfig
from tuneloop.data.split import file_sha256
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.methods import get_method, methods_where
from tuneloop.methods.artifacts import save_full_model
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_base_model, load_tuned_model

COMBINATIONS = (
    "linear", "cat", "svd", "ties", "ties_svd", "dare_linear", "dare_ties",
    "dare_linear_svd", "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd",
)  # fmt: skip
# peft stacks these adapters' A and B matrices element-wise, so every rank must be the same.
EQUAL_RANK = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
# These prune each adapter to ``density`` before combining; DARE prunes at random (``seed``).
PRUNING = tuple(c for c in COMBINATIONS if c not in ("linear", "cat", "svd"))
RANDOM = tuple(c for c in COMBINATIONS if c.startswith("dare"))
NOT_FOLDABLE = {
    "prefix": "its learned virtual tokens are extra inputs, not a change to any weight",
    "prompt": "its learned virtual tokens are extra inputs, not a change to any weight",
    "ptuning": "its learned virtual tokens are extra inputs, not a change to any weight",
    "adapter": "a bottleneck adapter applies a GELU between its two projections, which no linear weight "
    "can reproduce, and plain transformers cannot load the extra modules",
}
# peft saves the adapter named "default" at the top of the folder (others go into a subfolder).
MERGED_ADAPTER = "default"


@dataclass(frozen=True)
class Source:
    """One run whose adapter goes into the merge."""

    run: Path
    config: RunConfig
    artifact: Path
    rank: int


def merge_adapters(
    runs: list[Path],
    out: Path,
    combination: str = "linear",
    weights: list[float] | None = None,
    density: float = 0.5,
    seed: int = 0,
) -> Path:
    """Combine the runs' LoRA adapters with peft's ``add_weighted_adapter``; returns ``out``.

    ``weights`` defaults to 1.0 per run (task arithmetic: each task's update added in full).

    >>> merge_adapters([Path("runs/a"), Path("runs/b")], Path("runs/ab"), "ties")  # doctest: +SKIP
    """
    runs, out = [Path(run) for run in runs], Path(out)
    weights = check_merge_request(runs, combination, weights, density)
    check_out_free(out)
    sources = [read_source(run) for run in runs]
    check_same_base(sources)
    check_ranks(sources, combination)
    model, tokenizer = combined_model(sources, combination, weights, density, seed)
    merged = model.peft_config[MERGED_ADAPTER]
    with staged_dir(out) as tmp:
        adapter = tmp / sources[0].artifact.name
        model.save_pretrained(str(adapter), selected_adapters=[MERGED_ADAPTER])
        tokenizer.save_pretrained(str(adapter))
        RunDir(tmp).write_config(merged_run_config(sources[0].config, out, merged.r, merged.lora_alpha))
        write_json_atomic(tmp / "merge.json", merge_record(sources, combination, weights, density, seed, merged.r))
    return out


def parse_weights(text: str) -> list[float] | None:
    """``"0.7,0.3"`` -> ``[0.7, 0.3]``; empty text means the default weights."""
    if not text.strip():
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--weights: {text!r} is not a comma-separated list of numbers, e.g. 0.7,0.3") from None


def check_merge_request(runs: list[Path], combination: str, weights: list[float] | None, density: float) -> list[float]:
    """The arguments alone, before any run folder is read; returns the weights to use."""
    if combination not in COMBINATIONS:
        raise ConfigError(f"--combination: unknown combination {combination!r}; choose one of {', '.join(COMBINATIONS)}")
    if len(runs) < 2:
        raise TuneloopError(
            f"merging needs at least 2 run folders, got {len(runs)}; to turn one run into a full model use --export-full"
        )
    weights = [1.0] * len(runs) if weights is None else list(weights)
    if len(weights) != len(runs):
        raise ConfigError(f"--weights: {len(weights)} weights for {len(runs)} runs; give one per run, in the same order")
    if combination in PRUNING and not 0 < density <= 1:
        raise ConfigError(f"--density: {density} is not in (0, 1]; it is the share of each adapter's values kept")
    return weights


def check_out_free(out: Path) -> None:
    """Never overwrite: a merge or export always goes into a new (or empty) folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TuneloopError(f"output folder {out} already exists; choose another --out")


def read_source(run: Path) -> Source:
    """A finished run trained with a LoRA method whose adapter peft can combine."""
    folder = RunDir.existing(run)
    artifact = folder.artifact()  # refuses folders that are not finished runs
    config = folder.config()
    method = config.method.name
    if method == "dora":
        raise TuneloopError(
            f"{run}: method.name is 'dora'; peft's weighted merging keeps only the low-rank A/B weights and "
            "drops DoRA's trained magnitudes, so the result would not be the adapter you trained. "
            "Export it alone with --export-full, or train with lora or rslora to merge"
        )
    if not get_method(method).mergeable:
        raise TuneloopError(
            f"{run}: method.name is {method!r}; weighted merging combines LoRA adapters only "
            f"({', '.join(methods_where('mergeable'))}). To turn this run into a full model use --export-full"
        )
    return Source(run, config, artifact, adapter_rank(artifact))


def adapter_rank(artifact: Path) -> int:
    """The rank peft will allocate for this adapter (its largest, if ranks vary by module)."""
    peft_config = json.loads((artifact / "adapter_config.json").read_text(encoding="utf-8"))
    return max([peft_config["r"], *(peft_config.get("rank_pattern") or {}).values()])


def check_same_base(sources: list[Source]) -> None:
    """Adapters are updates to one set of weights; on another base they mean nothing."""
    if len({base_identity(s.config.model.name) for s in sources}) > 1:
        listing = "; ".join(f"{s.run}: {s.config.model.name}" for s in sources)
        raise TuneloopError(f"the runs were trained on different base models (model.name): {listing}")


def base_identity(name: str) -> str:
    """A local model folder counts as the same base whichever relative path named it."""
    path = Path(name)
    return str(path.resolve()) if path.exists() else name


def check_ranks(sources: list[Source], combination: str) -> None:
    if combination in EQUAL_RANK and len({s.rank for s in sources}) > 1:
        ranks = ", ".join(f"{s.run}: r={s.rank}" for s in sources)
        raise ConfigError(
            f"--combination {combination} needs adapters of equal rank ({ranks}); "
            "cat and the svd variants (svd, ties_svd, dare_ties_svd, ...) accept different ranks"
        )


def combined_model(sources: list[Source], combination: str, weights: list[float], density: float, seed: int):
    """The base loaded once, each source adapter on it under its own name, and their combination."""
    import torch
    from peft import PeftModel

    base, tokenizer = load_base_model(sources[0].run)
    names = [f"source_{index}" for index in range(len(sources))]
    model = PeftModel.from_pretrained(base, str(sources[0].artifact), adapter_name=names[0])
    for name, source in zip(names[1:], sources[1:]):
        model.load_adapter(str(source.artifact), adapter_name=name)
    torch.manual_seed(seed)  # DARE's random pruning
    try:
        model.add_weighted_adapter(
            names, weights, MERGED_ADAPTER, combination_type=combination, density=density if combination in PRUNING else None
        )
    except ValueError as err:  # peft's own compatibility checks (target module kinds, heads trained by several runs)
        raise TuneloopError(f"peft cannot combine {', '.join(str(s.run) for s in sources)}: {err}") from None
    # Every combination already folds each source's scaling into the new A/B and sets alpha = r for a
    # scaling of 1, but peft copies use_rslora from the first source, which would rescale by sqrt(r).
    model.peft_config[MERGED_ADAPTER].use_rslora = False
    return model, tokenizer


def merged_run_config(config: RunConfig, out: Path, rank: int, alpha: float) -> RunConfig:
    """The first run's config, pointing at the merged folder and describing the merged adapter."""
    method = config.method.model_copy(update={"r": rank, "alpha": float(alpha)})
    return config.model_copy(update={"out": str(out), "method": method})


def merge_record(sources: list[Source], combination: str, weights: list[float], density: float, seed: int, rank: int) -> dict:
    """``merge.json``: what went in and how, so the merge can be reproduced and traced to its data."""
    return {
        "combination": combination,
        "weights": weights,
        "density": density if combination in PRUNING else None,
        "seed": seed if combination in RANDOM else None,
        "rank": rank,
        "base_model": sources[0].config.model.name,
        "sources": [source_record(source) for source in sources],
    }


def source_record(source: Source) -> dict:
    folder = RunDir(source.run)
    return {
        "run": str(source.run.resolve()),
        "method": source.config.method.name,
        "rank": source.rank,
        "config_sha256": file_sha256(folder.config_file),
        "dataset_hash": folder.manifest().get("dataset_hash"),
    }


def export_full_model(run: Path, out: Path) -> Path:
    """Fold the run's trained weights into its base; ``out`` becomes a full safetensors model folder.

    LoRA-family and (IA)^3 adapters are merged into the linear weights (same outputs, no peft
    needed); full and freeze runs already hold a full model, which is copied.

    >>> export_full_model(Path("runs/a"), Path("exports/a"))  # doctest: +SKIP
    """
    import shutil

    run, out = Path(run), Path(out)
    folder = RunDir.existing(run)
    artifact = folder.artifact()
    method = folder.config().method.name
    if method in NOT_FOLDABLE:
        raise TuneloopError(f"{run}: method {method!r} cannot be exported as a full model: {NOT_FOLDABLE[method]}")
    check_out_free(out)
    if get_method(method).artifact == "model":
        with staged_dir(out) as tmp:
            shutil.copytree(artifact, tmp, dirs_exist_ok=True)
        return out
    model, tokenizer = folded_model(run)
    with staged_dir(out) as tmp:
        save_full_model(model, tmp)
        tokenizer.save_pretrained(str(tmp))
    return out


def folded_model(run: Path):
    """The tuned model with its adapter merged into the base weights and the peft wrapper removed."""
    model, tokenizer = load_tuned_model(run)
    return model.merge_and_unload(), tokenizer
