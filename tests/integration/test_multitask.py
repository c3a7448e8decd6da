"""A multi-task run on the tiny model: two datasets mixed in training, each scored on its own test rows."""

from __future__ import annotations

import json

from helpers import toy_chat_rows, write_jsonl


def test_two_datasets_train_together_and_are_scored_per_task(tiny_model_dir, tmp_path):
    from tuneloop.config import load_config
    from tuneloop.evaluate.heldout import evaluate_run
    from tuneloop.train.run import train

    fruit = write_jsonl(tmp_path / "fruit.jsonl", toy_chat_rows(30))
    numbers = write_jsonl(tmp_path / "numbers.csv.jsonl", [{"instruction": f"Repeat {i % 4}", "input": "", "output": str(i % 4)} for i in range(30)])
    config = load_config(
        None,
        {
            "model.name": str(tiny_model_dir),
            "data.path": [str(fruit)],
            "data.task_name": "fruit",
            "data.mix": [{"name": "numbers", "path": [str(numbers)], "format": "alpaca", "weight": 1.0}],
            "data.mixing": "temperature",
            "data.val_fraction": 0.2,
            "data.test_fraction": 0.2,
            "method.r": 4,
            "train.learning_rate": 5e-3,
            "train.tokens_per_batch": 256,
            "train.pack_length": 128,
            "train.max_steps": 6,
            "train.early_stopping_patience": 0,
            "eval.max_new_tokens": 3,
            "eval.few_shot": [],
            "eval.forgetting": False,
            "out": str(tmp_path / "run"),
        },
    )
    out = train(config)
    manifest = json.loads((out / "data.json").read_text())
    assert set(manifest["mix"]["tasks"]) == {"fruit", "numbers"} and manifest["mix"]["strategy"] == "temperature"
    tasks_in_test = [json.loads(line)["meta"]["task"] for line in (out / "splits" / "test.jsonl").read_text().splitlines()]
    assert set(tasks_in_test) == {"fruit", "numbers"}

    metrics = evaluate_run(out)
    per_task = metrics["per_task"]
    assert set(per_task) == {"fruit base", "fruit tuned", "numbers base", "numbers tuned"}
    assert per_task["fruit tuned"]["rows"] == tasks_in_test.count("fruit")
    assert "exact_match" in per_task["numbers base"]
    assert "per_task" in (out / "report.md").read_text()


def test_data_check_reads_every_dataset_of_a_mix_config_with_its_own_format(tmp_path):
    import yaml

    from helpers import run_cli

    fruit = write_jsonl(tmp_path / "fruit.jsonl", toy_chat_rows(10))
    numbers = write_jsonl(tmp_path / "numbers.jsonl", [{"instruction": f"Repeat {i}", "input": "", "output": str(i)} for i in range(8)]
                          + [{"instruction": "", "input": "", "output": "1"}])  # fmt: skip
    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump({"data": {"path": [str(fruit)], "task_name": "fruit",
                                               "mix": [{"name": "numbers", "path": [str(numbers)], "format": "alpaca"}]}}))  # fmt: skip
    result = run_cli("data", "check", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "dataset fruit" in result.output and "dataset numbers" in result.output
    assert "rows read 10, kept 10, dropped 0" in result.output and "rows read 9, kept 8, dropped 1" in result.output
    assert "numbers.jsonl:9" in result.output  # the bad row of the second dataset, by file and line

    both = run_cli("data", "check", str(fruit), "--config", str(config))
    assert both.exit_code == 2 and "leave out data files" in both.output
    assert run_cli("data", "check").exit_code == 2
