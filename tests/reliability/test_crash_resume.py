"""``tuneloop train`` SIGKILLed at chosen moments, then resumed: the adapter equals an uninterrupted run's,
``train.json`` counts the whole run, the log holds each step once, nothing half-written is left;
a damaged checkpoint is detected by its manifest and the previous one used, with a message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from helpers import run_cli, tiny_config
from tuneloop.config import dump_config
from tuneloop.train.checkpoints import MANIFEST, checkpoints_newest_first, last_intact_checkpoint

TESTS = Path(__file__).parents[1]
CRASH_POINTS = Path(__file__).with_name("crash_points.py")
SETTINGS = dict(max_steps=6, eval_steps=2, save_steps=2)
KILL_POINTS = ["mid-step@3", "evaluation@4", "checkpoint-write@4", "before-manifest@6", "final-save", "before-summary"]


@pytest.fixture(scope="module")
def config_file(tiny_model_dir, tmp_path_factory) -> Path:
    from helpers import toy_chat_rows, write_jsonl

    folder = tmp_path_factory.mktemp("crash")
    data = write_jsonl(folder / "toy.jsonl", toy_chat_rows())
    path = folder / "config.yaml"
    path.write_text(dump_config(tiny_config(tiny_model_dir, data, folder / "unused", **SETTINGS)))
    return path


@pytest.fixture(scope="module")
def reference(config_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    result = run_cli("train", str(config_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def kill_at(point: str, arguments: list) -> subprocess.CompletedProcess:
    """``tuneloop ARGUMENTS`` in a new process, SIGKILLed at ``point`` (crash_points.py); fails if it was not."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(CRASH_POINTS), point, *map(str, arguments)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, f"not killed at {point}: {result.stderr[-3000:]}"
    return result


def resume(config_file: Path, out: Path):
    result = run_cli("train", str(config_file), "--out", str(out), "--resume")
    assert result.exit_code == 0, result.output
    return result


def adapter_difference(run: Path, reference: Path) -> float:
    ours, theirs = (load_file(str(r / "adapter" / "adapter_model.safetensors")) for r in (run, reference))
    assert ours.keys() == theirs.keys()
    return max(float((ours[name] - theirs[name]).abs().max()) for name in ours)


def step_records(run: Path) -> list[tuple[int, str]]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(r["step"], "eval" if "eval_loss" in r else "train" if "loss" in r else "end") for r in records]


def leftovers(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp")] + [p for p in run.parent.glob(".*.tmp")]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_then_resumed_equals_an_uninterrupted_one(point, config_file, reference, tmp_path, record_property):
    out = tmp_path / "run"
    kill_at(point, ["train", config_file, "--out", out])
    assert not (out / "train.json").exists()
    resume(config_file, out)
    difference = adapter_difference(out, reference)
    record_property("kill_point", {"point": point, "max_abs_difference": difference})
    assert difference <= 1e-6
    ours, theirs = (json.loads((r / "train.json").read_text()) for r in (out, reference))
    assert (ours["steps"], ours["real_tokens"], ours["best_metric"]) == (theirs["steps"], theirs["real_tokens"], theirs["best_metric"])
    assert step_records(out) == step_records(reference)  # each step logged once
    assert leftovers(out) == []


def copy_of_checkpoints(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "checkpoints"
    shutil.copytree(run / "checkpoints", target)
    return target


def damaged_variants(checkpoint: Path):
    """(description, damage(folder)) for every file of a checkpoint: removed, cut to half, one byte changed;
    and for the manifest: removed, unreadable; and a file the checkpoint never had."""
    for file in sorted(p.relative_to(checkpoint) for p in checkpoint.rglob("*") if p.is_file() and p.name != MANIFEST):
        yield f"{file} removed", file, lambda folder, f=file: (folder / f).unlink()
        yield f"{file} truncated", file, lambda folder, f=file: (folder / f).write_bytes((folder / f).read_bytes()[: (folder / f).stat().st_size // 2])
        yield f"{file} changed", file, lambda folder, f=file: flip_a_byte(folder / f)
    yield "manifest removed", MANIFEST, lambda folder: (folder / MANIFEST).unlink()
    yield "manifest unreadable", MANIFEST, lambda folder: (folder / MANIFEST).write_text('{"files": ')
    yield "an unknown file", "stray.bin", lambda folder: (folder / "stray.bin").write_bytes(b"\0")


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_damaged_latest_checkpoint_falls_back_to_the_previous_one_with_a_message(reference, tmp_path, record_property):
    newest, previous = checkpoints_newest_first(reference / "checkpoints")[:2]
    variants = list(damaged_variants(newest))
    assert len(variants) >= 15, [v[0] for v in variants]
    record_property("damaged_variants", len(variants))
    for number, (description, culprit, damage) in enumerate(variants):
        folder = copy_of_checkpoints(reference, tmp_path / str(number))
        damage(folder / newest.name)
        messages = []
        chosen = last_intact_checkpoint(folder, say=messages.append)
        assert chosen == folder / previous.name, description
        assert f"checkpoint {newest.name} is damaged" in messages[0] and str(culprit) in messages[0], (description, messages)
        assert not (folder / newest.name).exists() and (folder / "damaged" / newest.name).is_dir(), description


@pytest.mark.timeout(600)
def test_a_resume_past_a_damaged_checkpoint_says_so_and_still_equals_the_uninterrupted_run(config_file, reference, tmp_path):
    out = tmp_path / "run"
    kill_at("mid-step@5", ["train", config_file, "--out", out])
    newest = checkpoints_newest_first(out / "checkpoints")[0]
    weights = newest / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = resume(config_file, out)
    assert f"checkpoint {newest.name} is damaged (adapter_model.safetensors has 100 bytes" in result.output
    assert "resuming from checkpoint-2" in result.output
    assert adapter_difference(out, reference) <= 1e-6
    assert step_records(out) == step_records(reference)


def test_a_start_killed_while_writing_its_header_leaves_no_run_folder_and_can_simply_run_again(config_file, reference, tmp_path):
    out = tmp_path / "run"
    kill_at("header", ["train", config_file, "--out", out])
    assert not out.exists()  # neither --resume nor a new run would take a half-written folder
    result = run_cli("train", str(config_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert adapter_difference(out, reference) <= 1e-6 and leftovers(out) == []
