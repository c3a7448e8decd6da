"""`tuneloop merge` on tiny runs: weighted adapter merges through peft, and export to a plain model folder."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers import run_cli, tiny_config, toy_chat_rows, write_jsonl
from tuneloop.config import dump_config, load_config, with_method
from tuneloop.train.run import train

PROMPT = "Ticket 3: what colour is the lime?"


def toy_sound_rows(n: int = 40) -> list[dict]:
    """A second toy task, so the two adapters learn different things."""
    sounds = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack"}
    animals = list(sounds)
    rows = []
    for i in range(n):
        animal = animals[i % len(animals)]
        question = {"role": "user", "content": f"Ticket {i}: what does the {animal} say?"}
        rows.append({"messages": [question, {"role": "assistant", "content": sounds[animal]}]})
    return rows


def tiny_run(folder, model_dir, name: str, rows: list[dict], method: str = "lora"):
    data = write_jsonl(folder / f"{name}.jsonl", rows)
    config = with_method(tiny_config(model_dir, data, folder / name, max_steps=3), method)
    return train(config)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """Two LoRA runs on different toy tasks, an rsLoRA run and a full fine-tuning run, all on the tiny model."""
    folder = tmp_path_factory.mktemp("merge-runs")
    return {
        "colours": tiny_run(folder, tiny_model_dir, "colours", toy_chat_rows()),
        "sounds": tiny_run(folder, tiny_model_dir, "sounds", toy_sound_rows()),
        "rslora": tiny_run(folder, tiny_model_dir, "rslora", toy_sound_rows(), method="rslora"),
        "full": tiny_run(folder, tiny_model_dir, "full", toy_chat_rows(), method="full"),
    }


def logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(PROMPT, return_tensors="pt")).logits


def adapter_logits(run, adapter_folder) -> torch.Tensor:
    """Logits of ``peft.PeftModel.from_pretrained(base, adapter_folder)`` on the run's base."""
    from peft import PeftModel

    from tuneloop.runs.models import load_base_model

    base, tokenizer = load_base_model(run)
    return logits(PeftModel.from_pretrained(base, str(adapter_folder)).eval(), tokenizer)


def peft_linear_merge_logits(run_a, run_b) -> torch.Tensor:
    """peft's own add_weighted_adapter on the two adapters, done by hand."""
    from peft import PeftModel

    from tuneloop.runs.models import load_base_model

    base, tokenizer = load_base_model(run_a)
    model = PeftModel.from_pretrained(base, str(run_a / "adapter"), adapter_name="a")
    model.load_adapter(str(run_b / "adapter"), adapter_name="b")
    model.add_weighted_adapter(["a", "b"], [1.0, 1.0], "ab", combination_type="linear")
    model.set_adapter("ab")
    return logits(model.eval(), tokenizer)


def test_linear_merge_equals_peft_and_differs_from_each_source(runs, tmp_path):
    out = tmp_path / "merged"
    result = run_cli("merge", str(runs["colours"]), str(runs["sounds"]), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out / "adapter") in result.output
    merged = adapter_logits(runs["colours"], out / "adapter")
    assert torch.allclose(merged, peft_linear_merge_logits(runs["colours"], runs["sounds"]), atol=1e-6)
    for name in ("colours", "sounds"):
        assert not torch.allclose(merged, adapter_logits(runs[name], runs[name] / "adapter"), atol=1e-4), name
    record = json.loads((out / "merge.json").read_text())
    assert record["combination"] == "linear" and record["weights"] == [1.0, 1.0]
    assert [s["run"] for s in record["sources"]] == [str(runs["colours"].resolve()), str(runs["sounds"].resolve())]
    assert all(s["dataset_hash"] and s["config_sha256"] for s in record["sources"])
    answered = run_cli("generate", str(out), "--prompt", "what colour is the lime?", "--max-new-tokens", "2")
    assert answered.exit_code == 0, answered.output


def test_ties_merge_writes_a_loadable_adapter(runs, tmp_path):
    out = tmp_path / "ties"
    args = ("--combination", "ties", "--weights", "0.5,0.5", "--density", "0.5")
    result = run_cli("merge", str(runs["colours"]), str(runs["sounds"]), *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert torch.isfinite(adapter_logits(runs["colours"], out / "adapter")).all()
    record = json.loads((out / "merge.json").read_text())
    assert (record["combination"], record["weights"], record["density"]) == ("ties", [0.5, 0.5], 0.5)


def test_rslora_source_keeps_its_scale(runs, tmp_path):
    """Weights 1, 0 must give back the first adapter (peft alone would rescale an rsLoRA source by sqrt(r))."""
    from tuneloop.runs.models import load_tuned_model

    out = tmp_path / "identity"
    result = run_cli("merge", str(runs["rslora"]), str(runs["sounds"]), "--weights", "1,0", "--out", str(out))
    assert result.exit_code == 0, result.output
    expected = logits(*load_tuned_model(runs["rslora"]))
    assert torch.allclose(adapter_logits(runs["rslora"], out / "adapter"), expected, atol=1e-5)


def run_on_another_base(run, folder):
    """A copy of ``run`` whose config says it was trained on a different model."""
    copy = shutil.copytree(run, folder / "other-base")
    config = load_config(copy / "config.yaml")
    config.model.name = "some-org/another-model"
    (copy / "config.yaml").write_text(dump_config(config))
    return copy


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("one run", "at least 2 run folders"),
        ("weights count", "--weights: 3 weights for 2 runs"),
        ("unknown combination", "choose one of linear, cat, svd, ties"),
        ("full method", "'full'; weighted merging combines LoRA adapters only"),
        ("other base", "different base models (model.name)"),
    ],
)
def test_bad_merges_are_refused_without_leaving_a_folder(runs, tmp_path, case, expected):
    pair = [str(runs["colours"]), str(runs["sounds"])]
    args = {
        "one run": lambda: pair[:1],
        "weights count": lambda: [*pair, "--weights", "0.2,0.3,0.5"],
        "unknown combination": lambda: [*pair, "--combination", "average"],
        "full method": lambda: [str(runs["full"]), pair[0]],
        "other base": lambda: [pair[0], str(run_on_another_base(runs["sounds"], tmp_path))],
    }[case]()
    result = run_cli("merge", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and expected in result.output, result.output
    if case in ("full method", "other base"):
        assert str(runs["full"] if case == "full method" else tmp_path / "other-base") in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["colours", "full"])
def test_export_full_gives_a_plain_transformers_model_with_the_tuned_logits(runs, tmp_path, name):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneloop.runs.models import load_tuned_model

    out = tmp_path / "export"
    result = run_cli("merge", str(runs[name]), "--export-full", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    exported = logits(AutoModelForCausalLM.from_pretrained(str(out)).eval(), AutoTokenizer.from_pretrained(str(out)))
    assert torch.allclose(exported, logits(*load_tuned_model(runs[name])), atol=1e-5)


def test_export_refuses_a_bottleneck_adapter(runs, tmp_path):
    run = shutil.copytree(runs["colours"], tmp_path / "bottleneck")
    config = with_method(load_config(run / "config.yaml"), "adapter")
    (run / "config.yaml").write_text(dump_config(config))
    result = run_cli("merge", str(run), "--export-full", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "GELU" in result.output and str(run) in result.output, result.output
    assert not (tmp_path / "out").exists()
