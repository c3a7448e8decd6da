"""The ``pairs`` and ``ratings`` formats: every shape they read, every bad row they drop (with file,
line and reason), and splits that keep every row of one prompt together."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict

import pytest
from rich.console import Console

from tuneloop.config import DataConfig
from tuneloop.data.formats import FORMATS, RowError
from tuneloop.data.report import print_data_summary, summarise_data
from tuneloop.data.split import check_no_leakage, split_train_val_test
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError


def normalise(format: str, fields: dict, **cfg):
    return FORMATS[format](fields, DataConfig(format=format, **cfg))


def row_error(format: str, fields: dict, **cfg) -> tuple:
    with pytest.raises(RowError) as info:
        normalise(format, fields, **cfg)
    return info.value.field, info.value.reason


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


# --- pairs: the shapes ---------------------------------------------------------------------


def test_plain_text_pair_keeps_its_prompt_as_text():
    pair = normalise("pairs", {"prompt": " Where is my invoice? ", "chosen": "Under Billing.", "rejected": "No idea."})
    assert (pair.prompt, pair.messages, pair.chosen, pair.rejected) == ("Where is my invoice?", (), "Under Billing.", "No idea.")
    assert (pair.input_text, pair.target_text) == ("Where is my invoice?", "Under Billing.")


@pytest.mark.parametrize(
    "chosen",
    [assistant("Use the link."), [assistant("Use the link.")], "Use the link.", {"from": "gpt", "value": "Use the link."}],
    ids=["message", "one-message list", "text", "sharegpt message"],
)
def test_conversational_pair_keeps_the_system_and_user_turns(chosen):
    """TRL's conversational preference rows: the prompt a list of turns, each answer a message or text."""
    prompt = [{"role": "system", "content": "Be polite."}, user("Reset my password")]
    pair = normalise("pairs", {"prompt": prompt, "chosen": chosen, "rejected": [assistant("No.")]})
    assert pair.messages == tuple(prompt) and pair.prompt == ""
    assert (pair.chosen, pair.rejected) == ("Use the link.", "No.")
    assert pair.input_text == "Be polite.\nReset my password"


def test_llama_factory_pair_reads_conversations_and_sharegpt_messages():
    row = {
        "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}],
        "chosen": {"from": "gpt", "value": "Hello! How can I help?"},
        "rejected": {"from": "gpt", "value": "What."},
    }
    pair = normalise("pairs", row)
    assert pair.messages == ({"role": "system", "content": "Be brief."}, user("Hi"))
    assert (pair.chosen, pair.rejected) == ("Hello! How can I help?", "What.")


def test_answers_given_as_whole_conversations_repeat_the_prompt():
    """UltraFeedback's shape: the prompt as text, each answer the conversation with the reply at the end."""
    row = {"prompt": "Hi", "chosen": [user("Hi"), assistant("Hello!")], "rejected": [user("Hi"), assistant("Go away.")]}
    pair = normalise("pairs", row, system_prompt="Be kind.")
    assert pair.messages == ({"role": "system", "content": "Be kind."}, user("Hi"))
    assert (pair.prompt, pair.chosen, pair.rejected) == ("", "Hello!", "Go away.")


def test_system_prompt_is_added_to_a_conversation_without_its_own():
    prompt = [user("Hi")]
    assert normalise("pairs", {"prompt": prompt, "chosen": "a", "rejected": "b"}, system_prompt="S").messages[0] == {"role": "system", "content": "S"}
    own = [{"role": "system", "content": "Own."}, user("Hi")]
    assert normalise("pairs", {"prompt": own, "chosen": "a", "rejected": "b"}, system_prompt="S").messages == tuple(own)


def test_conversational_cells_of_a_csv_file_are_read_as_json(tmp_path):
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "good", "bad"])
        writer.writerow([json.dumps([user("Hi")]), json.dumps([assistant("Hello")]), "[not json] but text"])
    report = load_examples(DataConfig(path=[str(path)], format="pairs", columns={"prompt": "question", "chosen": "good", "rejected": "bad"}))
    assert not report.dropped
    assert (report.examples[0].messages, report.examples[0].chosen, report.examples[0].rejected) == ((user("Hi"),), "Hello", "[not json] but text")


def test_an_answer_that_is_json_text_stays_text():
    """A structured-extraction model answers with JSON: as text (or a CSV cell) it is the answer, not a message."""
    chosen, rejected = '{"category": "billing", "priority": "high"}', '[{"category": "bug"}]'
    pair = normalise("pairs", {"prompt": '{"ticket": "Charged twice"}', "chosen": chosen, "rejected": rejected})
    assert (pair.prompt, pair.chosen, pair.rejected, pair.messages) == ('{"ticket": "Charged twice"}', chosen, rejected, ())


# --- pairs: bad rows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"prompt": "p", "chosen": "Same answer.", "rejected": " Same   answer. "}, ("rejected", "identical to chosen (a pair needs two different answers)")),
        ({"prompt": "p", "chosen": "  ", "rejected": "r"}, ("chosen", "empty")),
        ({"prompt": "p", "chosen": "c", "rejected": [assistant(" ")]}, ("rejected", "empty")),
        ({"prompt": "p", "chosen": [], "rejected": "r"}, ("chosen", "empty (a list of no messages)")),
        ({"prompt": "", "chosen": "c", "rejected": "r"}, ("prompt", "empty")),
        ({"chosen": "c", "rejected": "r"}, ("prompt", "missing")),
        ({"prompt": "p", "rejected": "r"}, ("chosen", "missing")),
        ({"prompt": "p", "chosen": "c"}, ("rejected", "missing")),
        ({"prompt": [], "chosen": "c", "rejected": "r"}, ("prompt", "empty conversation")),
        ({"prompt": [user("q"), assistant("a")], "chosen": "c", "rejected": "r"},
         ("prompt", "conversation does not end with a user turn (the answers reply to it)")),
        ({"prompt": [{"role": "robot", "content": "q"}], "chosen": "c", "rejected": "r"},
         ("prompt", "unknown role 'robot' (expected one of system, user, assistant)")),
        ({"prompt": "p", "chosen": [user("c")], "rejected": "r"}, ("chosen", "ends with a user turn, expected the assistant's answer")),
        ({"prompt": "p", "chosen": {"content": "c"}, "rejected": "r"}, ("chosen", "ends with a role-less turn, expected the assistant's answer")),
        ({"prompt": "p", "chosen": [user("other"), assistant("c")], "rejected": "r"}, ("chosen", "the turns before its answer differ from prompt")),
        ({"prompt": "p", "chosen": "c", "rejected": ["r"]}, ("rejected", "expected a list of turn objects")),
    ],  # fmt: skip
)
def test_bad_pair_rows(fields, expected):
    assert row_error("pairs", fields) == expected


def test_bad_rows_of_a_pairs_file_are_dropped_with_file_line_and_reason(tmp_path):
    rows = [{"prompt": f"question {i}", "chosen": "good answer", "rejected": "bad answer"} for i in range(6)]
    rows[1] = {"prompt": "q", "chosen": "same", "rejected": "same"}
    rows[3] = {"prompt": "q", "chosen": "", "rejected": "bad"}
    rows[4] = {"prompt": "q", "chosen": "good"}
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    report = load_examples(DataConfig(path=[str(path)], format="pairs"))
    assert len(report.examples) == 3
    assert [str(row) for row in report.dropped] == [
        f"{path}:2: rejected: identical to chosen (a pair needs two different answers)",
        f"{path}:4: chosen: empty",
        f"{path}:5: rejected: missing",
    ]
    assert report.dropped_by_reason() == {"rejected: identical to chosen": 1, "chosen: empty": 1, "rejected: missing": 1}
    console = Console(record=True, width=200, file=io.StringIO())
    print_data_summary(summarise_data(report), console)
    printed = console.export_text()
    assert f"  {path}:2: rejected: identical to chosen (a pair needs two different answers)\n" in printed
    assert re.search(r"│ rejected: identical to chosen +│ +1 │", printed)


def test_a_file_without_a_prompt_column_names_both_columns_that_would_do(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"question": "q", "chosen": "c", "rejected": "r"}])
    with pytest.raises(DataError, match=r"column 'prompt' or 'conversations' does not exist \(needed by format 'pairs'"):
        load_examples(DataConfig(path=[str(path)], format="pairs"))


def test_pairs_sharing_a_prompt_and_a_chosen_answer_are_not_duplicates(tmp_path):
    """A > B and A > C are two pairs; only an exact repeat (after normalising the prompt) is a duplicate."""
    rows = [
        {"prompt": "Where is my invoice?", "chosen": "Under Billing.", "rejected": "No idea."},
        {"prompt": "Where is my invoice?", "chosen": "Under Billing.", "rejected": "Ask someone."},
        {"prompt": "where is my invoice", "chosen": "Under Billing.", "rejected": "No idea."},
    ]
    report = load_examples(DataConfig(path=[str(write_jsonl(tmp_path / "p.jsonl", rows))], format="pairs"))
    assert [e.line for e in report.examples] == [1, 2]
    assert [row.reason for row in report.dropped] == [f"duplicate of {tmp_path / 'p.jsonl'}:1"]


# --- ratings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "good", "score"),
    [
        ("good", True, None), ("BAD", False, None), (True, True, None), (False, False, None), ("true", True, None),
        ("false", False, None), ("yes", True, None), ("no", False, None), ("thumbs up", True, None),
        ("Thumbs-Down", False, None), ("thumbs_up", True, None), ("\N{THUMBS DOWN SIGN}", False, None), ("up", True, None),
        (1, True, 1.0), (0, False, 0.0), ("1", True, 1.0), ("0", False, 0.0), (0.5, True, 0.5), (0.49, False, 0.49),
        (" 0.8 ", True, 0.8), (-1, False, -1.0),
    ],  # fmt: skip
)
def test_rating_labels(label, good, score):
    rated = normalise("ratings", {"prompt": "p", "completion": "c", "label": label})
    assert (rated.good, rated.score, rated.completion, rated.target_text) == (good, score, "c", "c")


def test_a_score_is_good_from_the_threshold_up():
    stars = [normalise("ratings", {"prompt": "p", "completion": "c", "label": n}, rating_threshold=4).good for n in range(1, 6)]
    assert stars == [False, False, False, True, True]


def test_conversational_rating_keeps_the_prompt_turns():
    row = {"prompt": [{"role": "system", "content": "S"}, user("Hi")], "completion": [assistant("Hello")], "label": True}
    rated = normalise("ratings", row)
    assert (rated.messages, rated.completion, rated.good) == (({"role": "system", "content": "S"}, user("Hi")), "Hello", True)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"prompt": "p", "completion": "c", "label": "maybe"},
         ("label", "not a rating: 'maybe' (expected good/bad, true/false, yes/no, thumbs up/down, or a number)")),
        ({"prompt": "p", "completion": "c", "label": "nan"}, ("label", "not a rating: nan is not a finite number")),
        ({"prompt": "p", "completion": "c", "label": {"score": 1}}, ("label", "not a rating: got an object, expected a word or a number")),
        ({"prompt": "p", "completion": "c", "label": " "}, ("label", "empty")),
        ({"prompt": "p", "completion": "c"}, ("label", "missing")),
        ({"prompt": "p", "completion": "", "label": "good"}, ("completion", "empty")),
        ({"completion": "c", "label": "good"}, ("prompt", "missing")),
        ({"prompt": "p", "completion": [user("c")], "label": "good"}, ("completion", "ends with a user turn, expected the assistant's answer")),
    ],  # fmt: skip
)
def test_bad_rating_rows(fields, expected):
    assert row_error("ratings", fields) == expected


def test_bad_rows_of_a_ratings_file_are_dropped_and_the_report_counts_good_and_bad(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(
        "prompt,completion,label\n"
        "Where is my invoice?,Under Billing.,good\n"
        "Where is my invoice?,No idea.,thumbs down\n"
        "Reset,Use the link.,0.8\n"
        "Hi,Hello,maybe\n"
        "Hi,,good\n"
        "Bye,Goodbye,\n"
    )
    report = load_examples(DataConfig(path=[str(path)], format="ratings"))
    assert [str(row) for row in report.dropped] == [
        f"{path}:5: label: not a rating: 'maybe' (expected good/bad, true/false, yes/no, thumbs up/down, or a number)",
        f"{path}:6: completion: empty",
        f"{path}:7: label: empty",
    ]
    summary = summarise_data(report)
    assert summary["dropped_by_reason"] == {"label: not a rating": 1, "completion: empty": 1, "label: empty": 1}
    assert (summary["ratings"], summary["prompts"]) == ({"good": 2, "bad": 1}, 2)


def test_two_ratings_of_one_answer_that_disagree_are_both_kept(tmp_path):
    rows = [{"prompt": "p", "completion": "c", "label": label} for label in ("good", "bad", "good")]
    report = load_examples(DataConfig(path=[str(write_jsonl(tmp_path / "r.jsonl", rows))], format="ratings"))
    assert [e.line for e in report.examples] == [1, 2]
    assert [row.line for row in report.dropped] == [3]


# --- splits ----------------------------------------------------------------------------------


def test_every_pair_of_a_prompt_lands_in_one_split(tmp_path):
    """Thirty prompts with one to four pairs each, the same prompt written as text and as a conversation."""
    rows = []
    for i in range(30):
        for j in range(1 + i % 4):
            prompt = f"Question number {i}?" if j % 2 == 0 else [user(f"question number {i}")]
            rows.append({"prompt": prompt, "chosen": f"good answer {j}", "rejected": f"bad answer {j}"})
    report = load_examples(DataConfig(path=[str(write_jsonl(tmp_path / "p.jsonl", rows))], format="pairs"))
    assert len(report.examples) == len(rows) and not report.dropped
    splits = split_train_val_test(report.examples, 0.2, 0.2, seed=1)
    check_no_leakage(splits)
    split_of = defaultdict(set)
    for name in ("train", "val", "test"):
        for example in getattr(splits, name):
            split_of[example.input_text.rstrip("?").lower()].add(name)
    assert len(split_of) == 30 and all(len(names) == 1 for names in split_of.values())
    assert all(splits.sizes()[name] > 0 for name in ("train", "val", "test"))


def test_every_rating_of_a_prompt_lands_in_one_split(tmp_path):
    rows = [{"prompt": f"Question {i}", "completion": f"answer {j}", "label": j % 2} for i in range(20) for j in range(3)]
    report = load_examples(DataConfig(path=[str(write_jsonl(tmp_path / "r.jsonl", rows))], format="ratings"))
    splits = split_train_val_test(report.examples, 0.2, 0.2, seed=0)
    check_no_leakage(splits)
    for name in ("train", "val", "test"):
        assert all(sum(e.prompt == prompt for e in getattr(splits, name)) == 3 for prompt in {e.prompt for e in getattr(splits, name)})


def test_token_length_of_a_pair_is_its_rendered_prompt_and_longer_answer(tiny_model_dir):
    from transformers import AutoTokenizer

    from tuneloop.text.tokenize import render_prompt, token_counter

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    count = token_counter(tokenizer, "pairs")
    tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    pair = normalise("pairs", {"prompt": [user("Hi there")], "chosen": "Hello", "rejected": "A much longer answer than that"})
    assert count(pair) == tokens(render_prompt(tokenizer, pair.messages)) + tokens("A much longer answer than that")
    plain = normalise("ratings", {"prompt": "Hi there", "completion": "Hello", "label": "good"})
    assert token_counter(tokenizer, "ratings")(plain) == tokens("Hi there") + tokens("Hello")
