"""Replay against forgetting and the forgetting section of every eval report, on tiny models."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, tiny_config, toy_label_rows, write_jsonl
from tuneloop.config import RunConfig
from tuneloop.train import replay as general_replay
from tuneloop.data.general_prompts import eval_prompts, general_questions, replay_prompts


@pytest.fixture
def replay_answers(monkeypatch, tmp_path):
    """Deterministic base answers (a tiny random model mostly answers nothing)."""
    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(general_replay, "generate_answers", lambda model, prompts, settings: [f"Answer: {p}" for p in prompts])


def split_rows(run, name: str) -> list[dict]:
    return [json.loads(line) for line in (run / "splits" / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture
def replay_run(tiny_model_dir, toy_chat_file, tmp_path, replay_answers):
    from tuneloop.train.run import train

    raw = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=3).model_dump()
    raw["data"]["replay_fraction"] = 0.25
    raw["eval"].update(forgetting_prompts=4, forgetting_max_new_tokens=6, max_new_tokens=6, few_shot=[])
    return train(RunConfig.model_validate(raw))


def test_replay_rows_join_the_training_split_only_and_are_recorded(replay_run):
    manifest = json.loads((replay_run / "data.json").read_text())
    record = manifest["replay"]
    company_train = manifest["split_sizes"]["train"]
    assert record["rows"] == round(0.25 * company_train) > 0
    assert manifest["split_sizes"]["train_with_replay"] == company_train + record["rows"]
    train = split_rows(replay_run, "train")
    replayed = [r for r in train if r["source"] == general_replay.REPLAY_SOURCE]
    assert len(replayed) == record["rows"] and len(train) == company_train + record["rows"]
    assert all(r["messages"][0]["content"] in replay_prompts() for r in replayed)
    for name in ("val", "test"):
        assert all(r["source"] != general_replay.REPLAY_SOURCE for r in split_rows(replay_run, name))
    assert "replay_model:" in (replay_run / "config.yaml").read_text()


def test_eval_writes_the_forgetting_section_and_report(replay_run):
    from tuneloop.evaluate.heldout import evaluate_run

    metrics = evaluate_run(replay_run)
    forgetting = metrics["forgetting"]
    measures = {"answer_rouge_l", "answer_token_f1", "qa_accuracy", "qa_forgotten", "general_perplexity"}
    assert set(forgetting["base"]) == set(forgetting["tuned"]) == measures
    assert forgetting["base"]["answer_rouge_l"] == 1.0  # the base agrees with itself
    assert 0.0 <= forgetting["tuned"]["answer_rouge_l"] <= 1.0
    assert forgetting["suite"]["prompts"] == 4 and forgetting["base"]["general_perplexity"] > 1.0
    assert json.loads((replay_run / "metrics.json").read_text())["forgetting"] == forgetting
    answers = [json.loads(line) for line in (replay_run / "forgetting.jsonl").read_text().splitlines()]
    assert [a["prompt"] for a in answers if "prompt" in a] == list(eval_prompts()[:4])
    replies = [a for a in answers if "question" in a]
    assert [a["question"] for a in replies] == [q for q, _ in general_questions()]
    assert sum(a["tuned_right"] for a in replies) / len(replies) == forgetting["tuned"]["qa_accuracy"]
    assert sum(a["base_right"] and not a["tuned_right"] for a in replies) == forgetting["tuned"]["qa_forgotten"]
    assert forgetting["base"]["qa_forgotten"] == 0
    report = (replay_run / "report.md").read_text()
    assert "## Forgetting: general ability, base vs tuned" in report and "| qa_accuracy |" in report
    assert "Forgetting: general ability" in (replay_run / "report.html").read_text()
    assert metrics["few_shot"] == {"skipped": "off (eval.few_shot is empty)"}


def test_classification_says_why_forgetting_and_few_shot_do_not_apply(tiny_bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "run"
    args = ("train", "--task", "classify", "--model", str(tiny_bert_dir), "--data", str(data), "--format", "label",
            "--max-steps", "2", "--tokens-per-batch", "256", "--early-stopping-patience", "0", "--out", str(out))  # fmt: skip
    assert run_cli(*args).exit_code == 0
    result = run_cli("eval", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "does not generate text" in metrics["forgetting"]["skipped"]
    assert "few-shot applies to sft, qa" in metrics["few_shot"]["skipped"]
    assert "Forgetting: not measured" in (out / "report.md").read_text()


def test_replay_for_a_task_without_chat_rows_fails_before_the_run_folder(tiny_bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "run"
    result = run_cli("train", "--task", "classify", "--model", str(tiny_bert_dir), "--data", str(data), "--format", "label",
                     "--replay-fraction", "0.1", "--out", str(out))  # fmt: skip
    assert result.exit_code == 2
    assert "data.replay_fraction" in result.output and "'classify' cannot train on" in result.output
    assert not out.exists()


def test_kl_replay_trains_replay_rows_toward_the_base_and_records_it(tiny_model_dir, toy_chat_file, tmp_path, replay_answers, monkeypatch):
    import math

    from tuneloop.train.prepare import prepare_dataset
    from tuneloop.objectives import get_task
    from tuneloop.losses import distill, label_loss
    from tuneloop.train.run import train

    raw = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=2).model_dump()
    raw["data"].update(replay_fraction=0.25, replay_loss="kl")
    raw["eval"]["few_shot"] = []
    config = RunConfig.model_validate(raw)
    task = get_task("sft")
    data = prepare_dataset(config.data, task.load_tokenizer(config.model), task)
    replayed = [e.source == general_replay.REPLAY_SOURCE for e in data.splits.train]
    assert any(replayed) and [t.distill for t in data.train_tokens] == replayed  # exactly the replay rows
    teacher_passes = []
    real_base_targets = distill.base_targets

    def counted(*args):
        result = real_base_targets(*args)
        teacher_passes.append(result is not None)
        return result

    monkeypatch.setattr(label_loss, "base_targets", counted)  # where the training loss looks it up
    run = train(config)
    assert any(teacher_passes)  # the base's distribution was the target of some training tokens
    assert json.loads((run / "data.json").read_text())["replay"]["loss"] == "kl"
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert losses and all(math.isfinite(loss) and loss >= 0 for loss in losses)  # KL + cross-entropy


def test_kl_replay_with_full_fine_tuning_fails_before_the_run_folder(tiny_model_dir, toy_chat_file, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--format", "chat", "--method", "full",
                     "--replay-fraction", "0.2", "--replay-loss", "kl", "--out", str(out))  # fmt: skip
    assert result.exit_code == 2
    assert "data.replay_loss kl" in result.output and "'full' has none to switch off" in result.output
    assert not out.exists()
