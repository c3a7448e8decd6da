import json
import re

import pytest
from rich.console import Console

from tuneloop.config import DataConfig
from tuneloop.data.report import length_percentiles, print_data_summary, summarise_data
from tuneloop.data.schema import Example
from tuneloop.data.validate import DataReport, DroppedRow, drop_too_long, load_examples
from tuneloop.errors import ConfigError, DataError


def chat_row(question: str, answer: str = "a") -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_lines(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def load(path, format="chat", **cfg):
    return load_examples(DataConfig(path=[str(path)], format=format, **cfg))


def test_exactly_the_three_planted_bad_rows_are_reported(tmp_path):
    lines = [chat_row(f"question {i}") for i in range(10)]
    lines.insert(2, '{"messages": [oops')  # line 3: malformed JSON
    lines.insert(5, {"messages": [{"role": "user", "content": "no answer"}]})  # line 6: no assistant turn
    lines.insert(9, chat_row("   "))  # line 10: empty text
    path = write_lines(tmp_path / "planted.jsonl", lines)
    report = load(path)
    assert report.rows_read == 13 and len(report.examples) == 10
    assert [(d.line, d.field, d.reason) for d in report.dropped] == [
        (3, None, "malformed JSON: Expecting value (column 15)"),
        (6, "messages", "no assistant turn"),
        (10, "messages", "empty user turn"),
    ]
    assert all(d.source == str(path) for d in report.dropped)
    assert str(report.dropped[1]) == f"{path}:6: messages: no assistant turn"


def test_three_planted_bad_rows_in_a_text_file(tmp_path):
    lines = [{"text": f"document {i}"} for i in range(6)]
    lines[1] = "{not json"
    lines[3] = {"body": "wrong key"}
    lines[4] = {"text": " \t "}
    report = load(write_lines(tmp_path / "t.jsonl", lines), format="text")
    assert [(d.line, d.field, d.reason.split(":")[0]) for d in report.dropped] == [
        (2, None, "malformed JSON"),
        (4, "text", "missing"),
        (5, "text", "empty"),
    ]
    assert report.dropped_by_reason() == {"malformed JSON": 1, "text: missing": 1, "text: empty": 1}


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=f"data file not found: {re.escape(str(tmp_path / 'nope.jsonl'))}"):
        load(tmp_path / "nope.jsonl")


def test_unknown_format_lists_formats(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"text": "x"}])
    cfg = DataConfig(path=[str(path)]).model_copy(update={"format": "tweets"})
    with pytest.raises(DataError, match="unknown format 'tweets'; choose one of: chat, prompt_completion, alpaca, sharegpt, text, label, pairs, ratings"):
        load_examples(cfg)


def test_mapped_column_that_does_not_exist_lists_existing_ones(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("question,answer\nwhat?,that\n")
    with pytest.raises(DataError) as info:
        load(path, "prompt_completion", columns={"prompt": "query", "completion": "answer"})
    message = str(info.value)
    assert message.startswith(f"{path}: column 'query' does not exist (data.columns prompt=query)")
    assert message.endswith("columns in the file: question, answer")


def test_jsonl_existing_columns_are_the_keys_of_the_first_records(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"q": "x", "a": "y"}, {"q": "x2", "a": "y2", "extra": 1}])
    with pytest.raises(DataError, match=r"column 'question' does not exist .*columns in the file: q, a, extra$"):
        load(path, "prompt_completion", columns={"prompt": "question", "completion": "a"})


def test_unmapped_required_field_suggests_a_mapping(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,category\nhello,x\n")
    with pytest.raises(DataError, match=r"column 'text' does not exist \(needed by format 'label'; map yours with columns text=COLUMN\)"):
        load(path, "label", columns={"label": "category"})


def test_template_and_target_columns_are_checked_before_reading(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("subject,category\ns,c\n")
    with pytest.raises(DataError) as info:
        load(path, "prompt_completion", prompt_template="{subject}\n{body}", target_columns=["category", "priority"])
    message = str(info.value)
    assert "column 'body' does not exist (used by prompt_template)" in message
    assert "column 'priority' does not exist (listed in target_columns)" in message
    assert message.endswith("columns in the file: subject, category")


def test_columns_are_checked_in_every_file_before_any_row_is_read(tmp_path):
    good = write_lines(tmp_path / "good.jsonl", [{"text": "x"}])
    bad = tmp_path / "bad.csv"
    bad.write_text("body\nx\n")
    with pytest.raises(DataError, match=r"bad\.csv: column 'text' does not exist"):
        load_examples(DataConfig(path=[str(good), str(bad)], format="text"))


def test_mapping_a_field_the_format_does_not_have(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"data\.columns: 'question' is not a field of format 'prompt_completion' \(its fields: prompt, completion\)"):
        load(path, "prompt_completion", columns={"question": "prompt"})


def test_template_needs_prompt_completion(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [chat_row("q")])
    with pytest.raises(DataError, match="prompt_template and target_columns need format prompt_completion"):
        load(path, "chat", prompt_template="{subject}")


def test_malformed_template_is_a_config_error(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"a": "x", "completion": "y"}])
    with pytest.raises(ConfigError, match="data.prompt_template"):
        load(path, "prompt_completion", prompt_template="{a")


def test_malformed_json_file_names_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"text": "a"},\n {"text": oops}\n]\n')
    with pytest.raises(DataError, match=r"d\.json: malformed JSON at line 3, column 11"):
        load(path, "text")


def test_duplicates_are_dropped_with_the_original_named_across_files(tmp_path):
    first = write_lines(tmp_path / "a.jsonl", [{"text": "Hello, World", "label": "x"}, {"text": "other", "label": "x"}])
    second = write_lines(tmp_path / "b.jsonl", [{"text": "héllo world!", "label": "x"}, {"text": "hello world", "label": "y"}])
    report = load_examples(DataConfig(path=[str(first), str(second)], format="label"))
    assert [(e.source, e.line) for e in report.examples] == [(str(first), 1), (str(first), 2), (str(second), 2)]
    assert report.dropped == [DroppedRow(str(second), 1, None, f"duplicate of {first}:1")]
    assert report.dropped_by_reason() == {"duplicate": 1}


def test_no_usable_rows(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"text": ""}, {"text": "  "}])
    with pytest.raises(DataError, match=rf"^no usable rows in {re.escape(str(path))}: 2 rows read, all dropped; first reasons: .*d\.jsonl:1: text: empty"):
        load(path, "text")


def test_empty_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataError, match=r"no usable rows in .*d\.jsonl: 0 rows read \(the files hold no records\)"):
        load(path, "text")


def test_examples_carry_source_and_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion\n"multi\nline",a\nq2,b\n')
    report = load(path, "prompt_completion")
    assert [(e.source, e.line, e.messages[0]["content"]) for e in report.examples] == [(str(path), 2, "multi\nline"), (str(path), 4, "q2")]


def test_drop_too_long_moves_rows_to_dropped(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"text": "one two"}, {"text": "one two three four five"}, {"text": "x"}])
    report = drop_too_long(load(path, "text"), lambda e: len(e.text.split()), max_length=3)
    assert [e.line for e in report.examples] == [1, 3]
    assert report.dropped == [DroppedRow(str(path), 2, None, "too long: 5 tokens > max_length 3")]
    assert report.dropped_by_reason() == {"too long": 1}


def test_drop_too_long_with_nothing_left(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"text": "one two"}, {"text": "one two three"}])
    with pytest.raises(DataError, match=r"every usable row is longer than data.max_length=1 tokens \(shortest: 2\)"):
        drop_too_long(load(path, "text"), lambda e: len(e.text.split()), max_length=1)


# --- report (tuneloop data check) --------------------------------------------------------


def test_summary_counts_reasons_lengths_and_labels(tmp_path):
    rows = [{"text": f"row {i}", "label": "spam" if i % 4 == 0 else "ham"} for i in range(8)] + ["oops", {"text": "", "label": "x"}]
    path = write_lines(tmp_path / "d.jsonl", rows)
    report = load(path, "label")
    summary = summarise_data(report, count_tokens=lambda e: len(e.text))
    assert (summary["rows_read"], summary["rows_kept"], summary["rows_dropped"]) == (10, 8, 2)
    assert summary["dropped_by_reason"] == {"malformed JSON": 1, "text: empty": 1}
    assert summary["dropped_where"] == {"malformed JSON": [f"{path}:9"], "text: empty": [f"{path}:10"]}
    assert summary["labels"] == {"ham": 6, "spam": 2}
    assert summary["token_lengths"] == {"p50": 5, "p95": 5, "max": 5}
    json.dumps(summary)  # JSON-ready


def test_length_percentiles_are_nearest_rank():
    assert length_percentiles(list(range(1, 101))) == {"p50": 50, "p95": 95, "max": 100}
    assert length_percentiles([7]) == {"p50": 7, "p95": 7, "max": 7}


def test_printed_summary_lists_each_dropped_row_on_its_own_line(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [chat_row("q1"), "{bad", chat_row("q2"), {"messages": "[x]"}])
    summary = summarise_data(load(path))
    console = Console(record=True, width=60)
    print_data_summary(summary, console)
    output = console.export_text()
    assert "rows read 4, kept 2, dropped 2" in output
    dropped = [line.strip() for line in output.splitlines() if line.strip().startswith(str(path))]
    assert [line.split(":")[1] for line in dropped] == ["2", "4"]
    assert "dropped rows by reason" in output and "malformed JSON" in output


def test_label_names_are_not_rich_markup():
    report = DataReport(examples=[Example("f", 1, text="a", label="[bold]"), Example("f", 2, text="b", label="x")], rows_read=2)
    console = Console(record=True, width=60)
    print_data_summary(summarise_data(report), console)
    assert "[bold]" in console.export_text()


def test_label_table_shows_each_labels_share_of_the_rows():
    report = DataReport(examples=[Example("f", i, text=f"t{i}", label="spam" if i < 1 else "ham") for i in range(4)], rows_read=4)
    console = Console(record=True, width=60)
    print_data_summary(summarise_data(report), console)
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") == 4}
    assert re.search(r"│\s*3\s*│\s*75%\s*│", rows["ham"])
    assert re.search(r"│\s*1\s*│\s*25%\s*│", rows["spam"])
