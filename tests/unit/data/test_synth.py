"""Dataset synthesis from documents: passages with provenance, facts, parsing, filters, bad input.

The model is replaced by a fake generate function (chats in, replies out), so these tests check
the prompt -> reply -> row path without loading any weights.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tuneloop.config import DataConfig
from tuneloop.data.synth import (
    Candidate,
    FilterLimits,
    Passage,
    SynthSettings,
    collect_documents,
    filter_candidates,
    filter_reason,
    parse_question,
    parse_question_answer,
    passage_facts,
    read_passages,
    rules_question,
    sentence_facts,
    support_score,
    synthesize,
)
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError, TuneloopError

POLICY = """# Refund policy

Intro line about refunds.

## Monthly plans

Monthly plans are refunded within 14 days of the charge.
Card refunds take 10 business days.

## Contacts

- Billing: billing@acme.example
- Head of billing: Priya Raman
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def passage(text: str, title: str = "Policy") -> Passage:
    return Passage("doc.md#1", "doc.md", 3, 4, title, f"{title}\n\n{text}", (text,))


def candidate(question: str | None, answer: str, text: str = "Refunds take 14 days after the request.") -> Candidate:
    return Candidate(passage(text), question, answer, "test")


class EchoModel:
    """A fake model: asks about the sentence's lower-case words other than the answer (names left out);
    asked one of its own questions (the round trip), it gives the answer back."""

    def __init__(self):
        self.answers: dict[str, str] = {}

    def __call__(self, chats: list[list[dict]], max_new_tokens: int, label: str) -> list[str]:
        if chats[0][-1]["content"].startswith("Context: "):
            return [f"The answer is {self.answers[chat[-1]['content'].rsplit('Question: ', 1)[1]]}." for chat in chats]
        replies = []
        for chat in chats:
            sentence, answer = chat[-1]["content"].removeprefix("Sentence: ").split("\nAnswer: ")
            words = [w.strip(",:.") for w in sentence.replace(answer, " ").split() if w.islower()]
            question = f"What does the policy say about {' '.join(words[:4])}?"
            self.answers[question] = answer
            replies.append(f"Question: {question}\nextra text")
        return replies


# --- passages and provenance -----------------------------------------------------------------


def test_markdown_sections_become_passages_with_heading_path_and_line_range(tmp_path):
    passages = read_passages(write(tmp_path / "policy.md", POLICY))
    assert [(p.title, p.lines) for p in passages] == [
        ("Refund policy", "3-3"),
        ("Refund policy > Monthly plans", "7-8"),
        ("Refund policy > Contacts", "12-13"),
    ]
    monthly = passages[1]
    assert monthly.text.startswith("Refund policy > Monthly plans\n\n")
    assert monthly.sentences == ("Monthly plans are refunded within 14 days of the charge.", "Card refunds take 10 business days.")
    assert monthly.source == str(tmp_path / "policy.md") and monthly.passage_id.endswith("policy.md#2")
    assert passages[2].sentences == ("Billing: billing@acme.example", "Head of billing: Priya Raman")


def test_long_sections_are_cut_at_sentences_near_the_token_target(tmp_path):
    sentence = "The office opens at 9 am and closes at 5 pm on every working day of the week."
    path = write(tmp_path / "long.txt", " ".join([sentence] * 12) + "\n\nSecond paragraph has 3 facts.\n")
    passages = read_passages(path, passage_tokens=60)
    assert len(passages) > 3
    assert all(len(p.text.split()) * 1.35 <= 60 + 25 for p in passages)
    assert {p.lines for p in passages[:-1]} == {"1-1"}
    assert passages[-1].lines == "1-3" and passages[-1].text.endswith("\nSecond paragraph has 3 facts.")  # the short tail joins the next block


def test_plain_text_short_first_lines_are_headings(tmp_path):
    path = write(tmp_path / "faq.txt", "Acme billing FAQ\n\nWhen are invoices sent?\nInvoices go out on the 1st of the month.\n")
    (only,) = read_passages(path)
    assert only.title == "Acme billing FAQ > When are invoices sent?"
    assert only.lines == "4-4" and only.sentences == ("Invoices go out on the 1st of the month.",)


def test_csv_rows_are_passages_of_column_value_lines(tmp_path):
    path = write(tmp_path / "price_list.csv", "product,plan,price\nVault,Team,$8\nVault,Business,$14\n")
    first, second = read_passages(path)
    assert first.title == "Price list: Vault Team" and (first.lines, second.lines) == ("2-2", "3-3")
    assert first.text == "Price list: Vault Team\n\nproduct: Vault\nplan: Team\nprice: $8"
    assert first.sentences == ("Vault Team, price: $8",)
    (fact,) = sentence_facts(first.sentences[0], first.title)
    assert (fact.answer, fact.key) == ("$8", "price")
    assert rules_question(fact) == ("What is the price of Vault Team?", "rules:key-value")


# --- facts -----------------------------------------------------------------------------------


def test_sentence_facts_rank_numbers_above_names_and_skip_heading_words():
    facts = sentence_facts("Refunds above $2,000 are approved by Priya Raman within 3 business days.", title="Refunds")
    assert [f.answer for f in facts] == ["$2,000", "3 business days", "Priya Raman"]
    assert sentence_facts("Contact us at help@acme.example today.")[0].answer == "help@acme.example"
    assert sentence_facts("Severity 1 tickets are urgent.") == []  # a lone digit and the first word are no answers


def test_passage_facts_spread_over_sentences_and_depend_on_the_seed():
    text = ("Plan A costs $5. Plan B costs $9. Plan C costs $12. Plan D costs $20.",)
    p = Passage("d#1", "d", 1, 1, "", text[0], tuple(s + "." for s in text[0].rstrip(".").split(". ")))
    picks = {tuple(f.answer for f in passage_facts(p, 2, random.Random(seed))) for seed in range(8)}
    assert all(len(set(pick)) == 2 for pick in picks) and len(picks) > 1


# --- parsing model replies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, question",
    [
        ("What is the refund window?", "What is the refund window?"),
        ("Question: How long do card refunds take? They take 10 days.", "How long do card refunds take?"),
        ('\n"Who approves large refunds?"\n', "Who approves large refunds?"),
        ("Q1: Where is the office?", "Where is the office?"),
        ("The office is in Berlin.", None),
    ],
)
def test_parse_question(reply, question):
    assert parse_question(reply) == question


def test_parse_question_answer():
    assert parse_question_answer("Question: When are invoices sent?\nAnswer: on the 1st.") == ("When are invoices sent?", "on the 1st")
    assert parse_question_answer("I cannot help with that.") == (None, "")


# --- support and filters ---------------------------------------------------------------------


def test_support_score():
    text = "Card refunds take 10 business days, bank transfers 15."
    assert support_score("10 business days", text) == 1.0
    assert support_score("10 calendar days", text) == pytest.approx(2 / 3)
    assert support_score("three weeks", text) == 0.0
    assert support_score("...", text) == 0.0


@pytest.mark.parametrize(
    "question, answer, reason",
    [
        (None, "14 days", "no_question"),
        ("Refund time?", "14 days", "question_too_short"),
        ("How long " + "really " * 40 + "?", "14 days", "question_too_long"),
        ("How long do refunds take after the request?", " ", "answer_too_short"),
        ("How long do refunds take after the request?", "14 days " * 10, "answer_too_long"),
        ("How long do refunds take after the request?", "30 days", "unsupported_answer"),
        ("Do refunds take 14 days after the request?", "14 days", "answer_in_question"),
        ("What colour is the sky at noon?", "14 days", "question_off_passage"),
        ("How long do refunds take after the request?", "14 days", None),
    ],
)
def test_filter_reasons(question, answer, reason):
    assert filter_reason(candidate(question, answer), FilterLimits(), 0.8) == reason


@pytest.mark.parametrize(
    "check, reason",
    [
        ("Refunds take 14 days after the request.", None),
        ("The policy says 14 days, 30 days or 60 days depending on the plan, the refund type and the region.", "roundtrip_mismatch"),
        ("They take 30 days.", "roundtrip_mismatch"),
    ],
)
def test_roundtrip_check(check, reason):
    from dataclasses import replace

    checked = replace(candidate("How long do refunds take after the request?", "14 days"), check=check)
    assert filter_reason(checked, FilterLimits(), 0.8) == reason


def test_questions_copying_the_worked_examples_are_off_passage():
    from tuneloop.data.synth import QA_SHOT, QUESTION_SHOTS, SHOT_WORDS

    shots = " ".join(" ".join(shot) for shot in (*QUESTION_SHOTS, QA_SHOT)).casefold()
    assert all(word in shots for word in SHOT_WORDS)
    copied = candidate("How long do refunds take at the Lisbon warehouse?", "14 days")
    assert filter_reason(copied, FilterLimits(), 0.8) == "question_off_passage"


def test_duplicate_questions_are_dropped_after_normalisation():
    rows = [candidate("How long do refunds take?", "14 days"), candidate("how long do REFUNDS take ?", "14 days")]
    kept, dropped = filter_candidates(rows, FilterLimits(), 0.8)
    assert kept == rows[:1] and dropped == {"duplicate_question": 1}


# --- the whole pipeline with a fake model ----------------------------------------------------


def test_synthesize_writes_rows_with_provenance_that_the_data_layer_loads(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write(docs / "policy.md", POLICY)
    write(docs / "prices.csv", "product,price\nVault,$8\nCanvas,$12\n")
    out = tmp_path / "out" / "synth.jsonl"
    result = synthesize([docs], out, SynthSettings(model="fake"), generate=EchoModel())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == result.rows and len(rows) >= 4
    assert set(rows[0]) == {"prompt", "completion", "source", "lines", "passage_id", "method"}
    monthly = next(r for r in rows if r["completion"] == "14 days")
    assert monthly["source"] == str(docs / "policy.md") and monthly["lines"] == "7-8" and monthly["method"] == "model:fake"
    assert monthly["prompt"].startswith("Context: Refund policy > Monthly plans\n\n") and "\n\nQuestion: What does" in monthly["prompt"]
    manifest = json.loads((tmp_path / "out" / "synth.manifest.json").read_text())
    assert manifest["rows"] == len(rows) and manifest["candidates"] == manifest["rows"] + manifest["dropped"]
    # the two CSV rows get the same question: asked it, the model gives one price back, so the other row fails
    # the round trip; its second attempt passes it, and is then dropped as a duplicate question
    assert manifest["dropped_by_reason"] == {"roundtrip_mismatch": 1, "duplicate_question": 1}
    examples = load_examples(DataConfig(path=[str(out)], format="prompt_completion")).examples
    assert len(examples) == len(rows) and examples[0].messages[-1]["content"] == rows[0]["completion"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_other_output_formats_load_too(tmp_path, suffix):
    write(tmp_path / "policy.md", POLICY)
    out = tmp_path / f"synth{suffix}"
    result = synthesize([tmp_path / "policy.md"], out, SynthSettings(generator="rules"))
    examples = load_examples(DataConfig(path=[str(out)], format="prompt_completion")).examples
    assert [e.messages[-1]["content"] for e in examples] == [r["completion"] for r in result.rows]


def test_closed_book_prompts_are_the_bare_question(tmp_path):
    write(tmp_path / "policy.md", POLICY)
    result = synthesize([tmp_path / "policy.md"], tmp_path / "s.jsonl", SynthSettings(generator="rules", context=False))
    assert all(not row["prompt"].startswith("Context:") for row in result.rows)


def test_model_qa_keeps_only_answers_the_passage_supports(tmp_path):
    write(tmp_path / "policy.md", POLICY)
    replies = [
        "Question: What is the policy about refunds?\nAnswer: a long story",  # unsupported
        "Question: How soon are monthly plans refunded?\nAnswer: within 14 days",
        "Question: Who is the head of billing?\nAnswer: Priya Raman",
    ]
    calls = []

    def fake(chats, max_new_tokens, label):
        calls.append(len(chats))
        return replies if len(calls) == 1 else ["Refunds come within 14 days.", "Ask Priya Raman."]

    result = synthesize([tmp_path / "policy.md"], tmp_path / "s.jsonl", SynthSettings(generator="model-qa", model="fake"), generate=fake)
    assert [r["completion"] for r in result.rows] == ["within 14 days", "Priya Raman"]
    assert result.manifest["dropped_by_reason"] == {"unsupported_answer": 1}
    assert calls == [3, 2]  # the round trip asks only the candidates that passed the other filters


def test_roundtrip_drops_questions_the_model_answers_otherwise(tmp_path):
    write(tmp_path / "policy.md", POLICY)

    def fake(chats, max_new_tokens, label):
        if chats[0][-1]["content"].startswith("Context: "):
            return ["It is 10 business days." if "Card refunds" in chat[-1]["content"] else "No idea." for chat in chats]
        return echo(chats, max_new_tokens, label)

    echo = EchoModel()
    result = synthesize([tmp_path / "policy.md"], tmp_path / "s.jsonl", SynthSettings(model="fake"), generate=fake)
    assert result.manifest["dropped_by_reason"].get("roundtrip_mismatch", 0) >= 2
    assert [r["completion"] for r in result.rows] == ["10 business days"]
    unchecked = synthesize([tmp_path / "policy.md"], tmp_path / "u.jsonl", SynthSettings(model="fake", roundtrip=False), generate=fake)
    assert len(unchecked.rows) > 1 and "roundtrip_mismatch" not in unchecked.manifest["dropped_by_reason"]


def test_failed_facts_are_retried_with_the_examples_reordered(tmp_path):
    write(tmp_path / "policy.md", POLICY)
    rounds: list[list[list[dict]]] = []

    def fake(chats, max_new_tokens, label):
        rounds.append(chats)
        if len(rounds) == 1:  # every first question gives its answer away
            return [f"What is {chat[-1]['content'].split('Answer: ')[1]}?" for chat in chats]
        return [f"What does the policy say about refunds, part {'ABCDEFGH'[i]}?" for i in range(len(chats))]

    result = synthesize([tmp_path / "policy.md"], tmp_path / "s.jsonl", SynthSettings(model="fake", roundtrip=False), generate=fake)
    facts = len(rounds[0])
    assert len(rounds) == 2 and len(rounds[1]) == facts and len(result.rows) == facts
    assert rounds[0][0][1] != rounds[1][0][1]  # the retry starts with another worked example
    dropped = result.manifest["dropped_by_reason"]
    assert result.manifest["candidates"] == 2 * facts and sum(dropped.values()) == facts
    assert set(dropped) <= {"answer_in_question", "question_too_short"}  # "What is Priya Raman?" is both
    calls = []
    with pytest.raises(DataError, match=f"no rows survived the filters \\({facts} candidates: question_too_short {facts}\\)"):
        synthesize(
            [tmp_path / "policy.md"], tmp_path / "o.jsonl", SynthSettings(model="fake", roundtrip=False, attempts=1),
            generate=lambda chats, *_: calls.append(1) or ["What is it?"] * len(chats),
        )  # fmt: skip
    assert calls == [1]  # --attempts 1: no retry


def test_limit_uses_only_the_first_passages(tmp_path):
    write(tmp_path / "policy.md", POLICY)
    result = synthesize([tmp_path / "policy.md"], tmp_path / "s.jsonl", SynthSettings(generator="rules", limit=2))
    assert result.manifest["passages"] == 2 and {r["passage_id"][-1] for r in result.rows} <= {"1", "2"}


# --- bad input: a clear error, before any model work, and no output --------------------------


def never_called(chats, max_new_tokens, label):
    raise AssertionError("the model must not run for bad input")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.md", "document not found"),
        (lambda d: write(d / "notes.pdf", "%PDF"), "unsupported document type '.pdf'"),
        (lambda d: write(d / "empty.md", "  \n\n"), "empty.md: the document is empty"),
        (lambda d: write(d / "header.csv", "product,price\n"), "header.csv: the document is empty"),
        (lambda d: write(d / "bad.csv", "a,b\n1,2\n1,2,3\n"), "bad.csv:3: 3 cells, header has 2"),
        (lambda d: (d / "latin.txt").write_bytes(b"caf\xe9 prices\n") and d / "latin.txt", "latin.txt: not UTF-8"),
        (lambda d: write(d / "vague.md", "# Notes\n\nwe like our customers and our work.\n"), "nothing to ask about"),
    ],
)
def test_bad_documents_fail_before_generation(tmp_path, make, message):
    path = make(tmp_path)
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("$", r"\$")) as err:
        synthesize([path], out, SynthSettings(), generate=never_called)
    assert path.name in str(err.value) or message == "nothing to ask about"
    assert not out.exists()


def test_folder_without_documents(tmp_path):
    write(tmp_path / "image.png", "x")
    with pytest.raises(DataError, match="no documents in this folder"):
        collect_documents([tmp_path])


def test_folder_skips_other_file_types(tmp_path, capsys):
    write(tmp_path / "policy.md", POLICY)
    write(tmp_path / "scan.pdf", "%PDF")
    assert collect_documents([tmp_path]) == [tmp_path / "policy.md"]
    assert "scan.pdf" in capsys.readouterr().err


def test_no_surviving_rows_is_an_error_and_writes_nothing(tmp_path):
    write(tmp_path / "policy.md", POLICY)
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match="no rows survived the filters .*no_question"):
        synthesize([tmp_path / "policy.md"], out, SynthSettings(), generate=lambda chats, *_: ["I don't know."] * len(chats))
    assert not out.exists() and not (tmp_path / "out.manifest.json").exists()


@pytest.mark.parametrize(
    "out, settings, message",
    [
        ("out.txt", SynthSettings(), "unsupported dataset type '.txt'"),
        ("out.jsonl", SynthSettings(generator="magic"), "--generator must be one of"),
        ("out.jsonl", SynthSettings(per_passage=0), "--per-passage"),
        ("out.jsonl", SynthSettings(min_support=1.5), "--min-support"),
    ],
)
def test_bad_settings_fail_before_reading(tmp_path, out, settings, message):
    with pytest.raises(TuneloopError, match=message):
        synthesize([tmp_path / "missing.md"], tmp_path / out, settings, generate=never_called)
