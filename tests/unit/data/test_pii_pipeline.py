"""data.scrub_pii in the data pipeline, data.json and ``tuneloop data check --pii``."""

from __future__ import annotations

import csv

import pytest

from helpers import run_cli
from tuneloop.config import DataConfig
from tuneloop.data.report import summarise_data
from tuneloop.data.validate import load_examples

ROWS = [
    {"question": "Reset the password of bo@acme.com please", "answer": "Done for bo@acme.com."},
    {"question": "Reset the password of cy@acme.com please", "answer": "Done for cy@acme.com."},  # same once scrubbed
    {"question": "Refund card 4111 1111 1111 1111, call +1 201-555-0123", "answer": "Refunded."},
    {"question": "Order 4111 1111 1111 1112 is late", "answer": "Checking."},  # fails Luhn: no card
]


def write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def config(path, **fields) -> DataConfig:
    return DataConfig(path=[str(path)], format="prompt_completion", columns={"prompt": "question", "completion": "answer"}, **fields)


def test_rows_are_scrubbed_as_read_and_counted_and_the_file_is_untouched(tmp_path):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    before = data.read_bytes()
    report = load_examples(config(data, scrub_pii=True))
    assert data.read_bytes() == before
    assert [e.messages[0]["content"] for e in report.examples] == [
        "Reset the password of <EMAIL_1> please", "Refund card <CARD_1>, call <PHONE_1>", "Order 4111 1111 1111 1112 is late"
    ]  # fmt: skip
    assert report.examples[0].messages[1]["content"] == "Done for <EMAIL_1>."
    assert [str(row) for row in report.dropped] == [f"{data}:3: duplicate of {data}:2"]
    # the duplicate's personal data is not counted: it does not train
    assert report.pii == {"EMAIL": 2, "CARD": 1, "PHONE": 1} and report.pii_rows == [f"{data}:{n}" for n in (2, 4)]
    summary = summarise_data(report)
    assert summary["pii"]["placeholders"] == {"EMAIL": 2, "PHONE": 1, "CARD": 1, "IBAN": 0, "IP": 0, "SSN": 0, "NINO": 0, "ADDRESS": 0, "NAME": 0}
    assert summary["pii"]["rows_with_pii"] == 2 and summary["pii_examples"][0]["where"] == f"{data}:2"


def test_without_scrub_pii_rows_stay_as_they_are(tmp_path):
    report = load_examples(config(write_csv(tmp_path / "tickets.csv", ROWS)))
    assert report.examples[0].messages[0]["content"] == ROWS[0]["question"] and len(report.examples) == 4
    assert "pii" not in summarise_data(report)


def test_prepare_dataset_records_the_counts_in_the_manifest(tmp_path, tiny_model_dir):
    from tuneloop.models.load import load_tokenizer
    from tuneloop.objectives import get_task
    from tuneloop.text.tokenize import ensure_chat_template
    from tuneloop.train.prepare import prepare_dataset

    rows = [{"question": f"Ticket {i} from user{i}@acme.com", "answer": f"Answered {i}"} for i in range(20)]
    tokenizer = load_tokenizer(str(tiny_model_dir))
    ensure_chat_template(tokenizer)
    data = prepare_dataset(config(write_csv(tmp_path / "t.csv", rows), scrub_pii=True), tokenizer, get_task("sft"))
    assert data.manifest["pii"]["placeholders"]["EMAIL"] == 20 and data.manifest["pii"]["rows_with_pii"] == 20
    split_texts = [e.messages[0]["content"] for e in data.splits.train + data.splits.val + data.splits.test]
    assert len(split_texts) == 20 and all(text.endswith("from <EMAIL_1>") for text in split_texts)


def test_data_check_pii_prints_counts_and_scrubbed_rows(tmp_path):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    result = run_cli("data", "check", str(data), "--format", "prompt_completion", "--columns", "prompt=question,completion=answer", "--pii")
    assert result.exit_code == 0, result.output
    assert "personal data: 2 of 3 kept rows had some" in result.output
    assert "EMAIL" in result.output and f"{data}:2: Reset the password of <EMAIL_1> please" in result.output.replace("\n", "")


@pytest.mark.parametrize("args", [["--pii-allow", "Beacon"]])
def test_data_check_refuses_pii_allow_without_pii(tmp_path, args):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    result = run_cli("data", "check", str(data), "--format", "prompt_completion", "--columns", "prompt=question,completion=answer", *args)
    assert result.exit_code == 2 and "--pii-allow only applies with --pii" in result.output
