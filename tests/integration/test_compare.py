"""`tuneloop compare` on a tiny model: every kind of method trains, saves, evaluates, and is tabulated."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli

METHODS = "lora,ia3,prompt,adapter,full"


@pytest.mark.timeout(600)  # five training processes, each importing torch: 75 s on a busy 2-core machine
def test_compare_tabulates_each_method(tmp_path, tiny_model_dir, toy_chat_file):
    out = tmp_path / "compare"
    result = run_cli(
        "compare", "--methods", METHODS, "--model", str(tiny_model_dir), "--data", str(toy_chat_file),
        "--format", "chat", "--max-steps", "3", "--r", "4", "--num-virtual-tokens", "4", "--bottleneck", "8",
        "--tokens-per-batch", "256", "--pack-length", "128", "--max-new-tokens", "4", "--threads", "1", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads((out / "compare.json").read_text())}
    assert list(rows) == METHODS.split(",")
    assert all("error" not in row for row in rows.values()), rows
    assert rows["full"]["trainable_percent"] == 100.0
    assert rows["prompt"]["trainable_parameters"] == 4 * 64
    assert rows["lora"]["trainable_parameters"] < rows["full"]["trainable_parameters"]
    assert all(row["peak_rss_mb"] > 0 and row["artifact_mb"] > 0 for row in rows.values())
    assert (out / "full" / "model" / "model.safetensors").exists() and (out / "adapter" / "adapter" / "adapter_config.json").exists()
    table = (out / "compare.md").read_text()
    assert all(f"| {name} |" in table for name in rows)
    assert (out / "compare.png").exists()


def test_compare_refuses_an_unknown_method_before_training(tmp_path, tiny_model_dir, toy_chat_file):
    result = run_cli("compare", "--methods", "lora,magic", "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--out", str(tmp_path / "c"))
    assert result.exit_code == 2 and "unknown method 'magic'" in result.output
    assert not (tmp_path / "c").exists()


def test_a_method_that_cannot_take_the_config_keeps_its_row_with_the_reason(tmp_path, tiny_model_dir, toy_chat_file):
    from tuneloop.compare import compare_methods
    from tuneloop.config import read_raw_config

    overrides = {"model.name": str(tiny_model_dir), "data.path": [str(toy_chat_file)], "data.format": "chat",
                 "data.replay_fraction": 0.2, "data.replay_loss": "kl"}  # fmt: skip
    rows = compare_methods(read_raw_config(None, overrides)[0], ["full"], tmp_path / "c")  # kl replay needs an adapter
    assert [row["method"] for row in rows] == ["full"]
    assert "data.replay_loss kl" in rows[0]["error"] and "'full' has none to switch off" in rows[0]["error"]
    assert not (tmp_path / "c" / "full").exists()  # refused before its worker started
