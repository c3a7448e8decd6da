"""Checkpoints a resume can trust: a manifest of checksums, written last, and the newest intact one found.

transformers writes a checkpoint's files straight into ``checkpoints/checkpoint-N``; a run killed
while it writes leaves a folder that looks whole and is not. So once transformers has finished a
checkpoint, :func:`write_manifest` records each file's size and sha256 in ``tuneloop-manifest.json``
(atomically, last). :func:`last_intact_checkpoint` walks the checkpoints newest first: one with no
manifest (cut off while written) or whose files no longer match it (truncated, removed, changed)
is moved to ``checkpoints/damaged/`` with a message naming the file and why, and the next one is tried.
:func:`resume_checkpoint` picks the one ``--resume`` continues from.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from tuneloop.atomic import write_json_atomic

MANIFEST = "tuneloop-manifest.json"
DAMAGED = "damaged"  # under checkpoints/; not "checkpoint-*", so transformers' rotation never sees it
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_files(folder: Path) -> list[Path]:
    """Every file of a checkpoint but its manifest, sorted (sub-folders included)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path, step: int) -> Path:
    """Record each file's size and checksum; the manifest's presence says the checkpoint is complete."""
    files = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in checkpoint_files(folder)}
    return write_json_atomic(folder / MANIFEST, {"step": step, "files": files})


def damage(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (the first problem found), or None when it matches its manifest."""
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        return f"no {MANIFEST}: the run stopped while writing it"
    try:
        recorded = json.loads(manifest_file.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{MANIFEST} is unreadable"
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, {expected['bytes']} were written"
        if file_sha256(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    extra = sorted({str(p.relative_to(folder)) for p in checkpoint_files(folder)} - set(recorded))
    return f"{extra[0]} was not part of the checkpoint" if extra else None


def checkpoints_newest_first(folder: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT_NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def intact_checkpoints(folder: Path, say=print, set_aside: bool = True):
    """The checkpoints under ``folder`` that match their manifests, newest first; each damaged one met on the
    way is moved aside (unless ``set_aside`` is False: a reader that must not change the folder), and
    ``say(message)`` tells which and why."""
    if not folder.is_dir():
        return
    for checkpoint in checkpoints_newest_first(folder):
        problem = damage(checkpoint)
        if problem is None:
            yield checkpoint
            continue
        if not set_aside:
            continue
        moved = move_aside(checkpoint)
        say(f"checkpoint {checkpoint.name} is damaged ({problem}); moved to {moved} and not used")


def last_intact_checkpoint(folder: Path, say=print) -> Path | None:
    """The newest checkpoint under ``folder`` that matches its manifest; damaged newer ones are set aside."""
    return next(intact_checkpoints(folder, say), None)


def training_finished(checkpoint: Path) -> bool:
    """Whether training had ended at ``checkpoint`` (its last step, or early stopping)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    control = state.get("stateful_callbacks", {}).get("TrainerControl", {}).get("args", {})
    return state["global_step"] >= state["max_steps"] or bool(control.get("should_training_stop"))


def resume_checkpoint(folder: Path, say=print, set_aside: bool = True) -> Path | None:
    """The checkpoint ``--resume`` continues from: the newest intact one where training had not ended.

    A checkpoint written at the end of training is passed over for the one before it: transformers, resumed
    from it, would train one step past the end. The steps between are trained again, to the same weights.
    """
    for checkpoint in intact_checkpoints(folder, say, set_aside):
        if not training_finished(checkpoint):
            say(f"resuming from {checkpoint.name}")
            return checkpoint
        say(f"{checkpoint.name} is the end of training; resuming from the checkpoint before it")
    say("no checkpoint to resume from: training starts from step 0")
    return None


def move_aside(checkpoint: Path) -> Path:
    """Keep a damaged checkpoint for inspection, out of transformers' sight (a later save may reuse its name)."""
    target = checkpoint.parent / DAMAGED / checkpoint.name
    suffix = 1
    while target.exists():
        target = checkpoint.parent / DAMAGED / f"{checkpoint.name}.{suffix}"
        suffix += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(checkpoint), str(target))
    return target
