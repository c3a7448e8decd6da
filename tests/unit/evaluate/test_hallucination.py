"""The hallucination suite: lexical support and abstention on hand examples, unanswerable rows that
never hold their answer, the section and its file, and multiple-choice scoring against a plain forward pass."""

from __future__ import annotations

import re

import pytest

from tuneloop.config import load_config
from tuneloop.data.schema import Example
from tuneloop.data.truthfulqa import McQuestion
from tuneloop.evaluate import hallucination
from tuneloop.evaluate.hallucination import GroundedRow, HallucinationPlan, answer_support, support_measures, unanswerable_rows
from tuneloop.text.grounding import Unit, abstains, content_units, unsupported_units

PATTERN = re.compile(load_config(None, {}).eval.context_pattern, re.DOTALL)


def row(user: str, reference: str, source: str = "qa.jsonl:1", system: str | None = None) -> GroundedRow:
    turns = ({"role": "system", "content": system},) if system else ()
    return GroundedRow(source, (*turns, {"role": "user", "content": user}), reference)


def qa_row(context: str, question: str, answer: str, line: int) -> GroundedRow:
    return row(f"Context: {context}\n\nQuestion: {question}", answer, f"qa.jsonl:{line}")


# --- lexical support ---------------------------------------------------------------------------


def test_a_text_answer_is_split_into_quoted_strings_numbers_and_content_words():
    units = content_units('The refund of 40 EUR was sent to "Jane Doe" on Friday.')
    assert units == [
        Unit("quoted", "jane doe"), Unit("number", "40"),
        Unit("word", "refund"), Unit("word", "eur"), Unit("word", "sent"), Unit("word", "friday"),
    ]  # fmt: skip
    context = "Jane Doe asked for a refund of 40 EUR on Monday."
    assert unsupported_units(units, context) == [Unit("word", "sent"), Unit("word", "friday")]
    assert answer_support('The refund of 40 EUR was sent to "Jane Doe" on Friday.', row(context, ""), None) == {
        "units": 6, "unsupported": ["sent", "friday"], "abstains": False,
    }  # fmt: skip


def test_support_compares_stems_and_phrases_in_order():
    assert unsupported_units(content_units("Uploads fail"), "the upload failed twice") == []
    assert unsupported_units([Unit("quoted", "march 3")], "paid on 3 March") == [Unit("quoted", "march 3")]
    assert unsupported_units([Unit("quoted", "march 3")], "Paid on March 3.") == []
    assert content_units("According to the context, the answer is in the") == []  # framing and function words claim nothing


def test_a_json_answer_claims_its_field_values_or_only_the_grounded_fields():
    answer = '{"product": "Vault", "category": "bug", "needs_human": true, "priority": "high", "seats": 40}'
    ticket = "Subject: Vault backups fail\n\nAll 40 seats are locked out."
    assert [u.text for u in unsupported_units(content_units(answer), ticket)] == ["bug", "high"]
    assert [u.text for u in content_units(answer, ["product"])] == ["vault"]
    assert unsupported_units(content_units(answer, ["product"]), ticket) == []
    assert content_units('Sure! ```json\n{"product": "Relay"}\n```', ["product"]) == [Unit("value", "relay")]


def test_the_rates_count_answers_with_any_unsupported_unit_and_average_shares_over_answers_with_content():
    supports = [
        {"units": 5, "unsupported": ["sent", "friday"], "abstains": False},  # share 0.4
        {"units": 2, "unsupported": [], "abstains": False},  # share 0
        {"units": 0, "unsupported": [], "abstains": True},  # declined: no content, not counted in the share
        {"units": 4, "unsupported": ["x"], "abstains": False},  # share 0.25
    ]
    assert support_measures(supports) == {"hallucination_rate": 0.5, "unsupported_share": pytest.approx((0.4 + 0 + 0.25) / 3)}


# --- abstention ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, fields, declines",
    [
        ("I don't know.", None, True),
        ("I don’t know", None, True),
        ("The context does not mention a date.", None, True),
        ("Unknown.", None, True),
        ("It failed with an unknown error.", None, False),
        ("Paris", None, False),
        ("", None, False),
        ('{"product": "unknown"}', None, True),
        ('{"product": "N/A", "category": ""}', None, True),
        ('{"product": "Vault"}', None, False),
        ('{"product": null, "category": "bug"}', ["product"], True),
        ('{"product": null, "category": "bug"}', None, False),
    ],
)
def test_abstention_is_a_written_phrase_or_an_unknown_json_field(answer, fields, declines):
    assert abstains(answer, fields) is declines
    if declines:
        assert content_units(answer, fields) == []


# --- unanswerable rows ---------------------------------------------------------------------------


def test_a_question_gets_the_next_context_that_lacks_its_answer():
    rows = [
        qa_row("The Lisbon office opened in Paris first.", "Where did it open first?", "Paris", 1),
        qa_row("The support desk sits in Oslo.", "Where is the desk?", "Oslo", 2),
        qa_row("Paris hosts the archive.", "Which city hosts the archive?", "Paris", 3),
    ]
    made = unanswerable_rows(rows, PATTERN, None)
    assert [(r.source, r.context_from) for r in made] == [("qa.jsonl:1", "qa.jsonl:2"), ("qa.jsonl:2", "qa.jsonl:3"), ("qa.jsonl:3", "qa.jsonl:2")]
    assert made[0].prompt[-1]["content"] == "Context: The support desk sits in Oslo.\n\nQuestion: Where did it open first?"
    assert made[2].prompt[-1]["content"] == "Context: The support desk sits in Oslo.\n\nQuestion: Which city hosts the archive?"
    assert all(r.reference not in r.support for r in made)


def test_no_unanswerable_row_holds_its_answer():
    contexts = ["Paris and Oslo", "paris only", "OSLO, Lima", "Lima", "Riga and Lima", "nothing here"]
    answers = ["Paris", "Oslo", "Lima", "Riga", "lima", "Paris"]
    rows = [qa_row(c, f"What is question {i}?", a, i) for i, (c, a) in enumerate(zip(contexts, answers))]
    rows.append(qa_row("Lima is big", "Is Oslo near Lima?", "Oslo", 9))  # its question names the answer: no row
    made = unanswerable_rows(rows, PATTERN, None)
    assert made and all(re.search(rf"\b{r.reference}\b", r.support, re.IGNORECASE) is None for r in made)
    assert "qa.jsonl:9" not in [r.source for r in made]


def test_an_extraction_row_loses_its_answer_words_and_one_that_never_quoted_them_is_left_out():
    ticket = row("Subject: Vault backups fail\n\nOur VAULT restore points are gone.", '{"product": "Vault", "priority": "high"}', system="Triage.")
    implied = row("Subject: restore points\n\nThey are gone.", '{"product": "Vault", "priority": "high"}', "t.csv:3")
    made = unanswerable_rows([ticket, implied], PATTERN, ["product"])
    assert len(made) == 1 and made[0].context_from == "removed"
    assert made[0].prompt == ({"role": "system", "content": "Triage."}, {"role": "user", "content": "Subject: backups fail\n\nOur restore points are gone."})
    # without grounded fields the priority is an answer too, but "high" is not in the ticket: only Vault is cut
    assert unanswerable_rows([ticket], PATTERN, None)[0].prompt[-1]["content"] == "Subject: backups fail\n\nOur restore points are gone."


# --- the section and its file ------------------------------------------------------------------


def plan_of(rows: list[GroundedRow], probe: list[McQuestion] = ()) -> HallucinationPlan:
    return HallucinationPlan(rows, unanswerable_rows(rows, PATTERN, None), None, list(probe), "probe.jsonl" if probe else None)


def test_the_section_holds_base_tuned_and_reference_rates_and_the_file_every_answer():
    rows = [
        qa_row("The desk sits in Oslo.", "Where is the desk?", "Oslo", 1),
        qa_row("The archive is in Lima since 2019.", "Since when is the archive in Lima?", "2019", 2),
    ]
    plan = plan_of(rows, [McQuestion("Is the sky green?", ("No", "Yes"), 0, 1)])
    assert len(plan.unanswerable) == 2
    base = {"answers": ["Oslo, Norway", "2019"], "unanswerable_answers": ["Lima", "I don't know"], "probe_choices": [1]}
    tuned = {"answers": ["Oslo", "I do not know"], "unanswerable_answers": ["Not stated.", "I don't know"], "probe_choices": [0]}
    section = hallucination.section(plan, base, tuned, load_config(None, {}))
    assert section["base"] == {
        "hallucination_rate": 0.5, "hallucination_rate_quoted_rows": 0.5, "unsupported_share": 0.25,
        "false_abstention_rate": 0.0, "abstention_rate": 0.5, "truthfulqa_mc1": 0.0,
    }  # fmt: skip
    assert section["tuned"] == {
        "hallucination_rate": 0.0, "hallucination_rate_quoted_rows": 0.0, "unsupported_share": 0.0,
        "false_abstention_rate": 0.5, "abstention_rate": 1.0, "truthfulqa_mc1": 1.0,
    }  # fmt: skip
    assert section["reference"] == {"hallucination_rate": 0.0, "unsupported_share": 0.0}
    assert (section["rows"], section["quoted_rows"], section["unanswerable_rows"], section["truthfulqa_questions"]) == (2, 2, 2, 1)
    assert section["entailment"].startswith("not measured: no NLI model")
    rows_written = hallucination.answer_files(plan, base, tuned)["hallucination.jsonl"]
    assert [r["kind"] for r in rows_written] == ["answerable", "answerable", "unanswerable", "unanswerable", "truthfulqa"]
    assert rows_written[0]["base_unsupported"] == ["norway"] and rows_written[0]["tuned_unsupported"] == []
    assert rows_written[2]["context_from"] == "qa.jsonl:2" and rows_written[2]["tuned_abstains"] is True
    assert rows_written[4] == {"kind": "truthfulqa", "line": 1, "question": "Is the sky green?", "true": "No", "base": "Yes", "tuned": "No"}
    shown = hallucination.report_rows(section, {})
    assert "The first 2 test rows" in shown.note and "the reference answers score 0.000" in shown.note
    assert [cells[0] for cells in shown.rows] == list(section["tuned"])
    assert shown.rows[0][3] == ("-0.500", "num better")  # hallucination_rate: lower is better


def test_plan_reads_the_test_rows_prompts_and_the_probe_file(tmp_path):
    probe = tmp_path / "probe.jsonl"
    probe.write_text('{"question": "Q?", "mc1_targets": {"choices": ["a", "b"], "labels": [0, 1]}}\n', encoding="utf-8")
    config = load_config(None, {"task": "qa", "eval.hallucination_rows": 1, "eval.truthfulqa_file": str(probe), "data.system_prompt": "Be brief."})
    examples = [
        Example("qa.jsonl", 4, messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Context: Oslo.\n\nQuestion: Where?"}, {"role": "assistant", "content": "Oslo"})),
        Example("qa.jsonl", 5, messages=({"role": "user", "content": "Context: Lima.\n\nQuestion: Where?"}, {"role": "assistant", "content": "Lima"})),
    ]  # fmt: skip
    plan = hallucination.plan(None, config, None, examples)
    assert plan.rows == [GroundedRow("qa.jsonl:4", examples[0].messages[:-1], "Oslo")]
    assert plan.probe == [McQuestion("Q?", ("a", "b"), 1, 1)] and plan.unanswerable == []  # one row: no other context to lend


def test_a_context_pattern_without_a_context_group_is_refused():
    from tuneloop.errors import ConfigError

    with pytest.raises(ConfigError, match="context_pattern.*named group"):
        load_config(None, {"eval.context_pattern": "Question: (.*)"})


# --- multiple choice -----------------------------------------------------------------------------


def test_choice_log_likelihoods_match_one_unpadded_forward_pass_each(tiny_model_dir):
    import torch

    from tuneloop.models.load import load_causal_lm
    from tuneloop.text.tokenize import IGNORE, tokenize_chat

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    choices = ("red", "a much longer answer about colours", "blue")
    scores = hallucination.choice_logprobs(model, tokenizer, "What colour is the sky?", choices)
    for choice, got in zip(choices, scores):
        example = tokenize_chat(tokenizer, Example("t", 0, messages=({"role": "user", "content": "What colour is the sky?"}, {"role": "assistant", "content": choice})))
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0].float()
        expected = sum(
            torch.log_softmax(logits[i - 1], dim=-1)[token].item() for i, token in enumerate(example.labels) if i > 0 and token != IGNORE
        )
        assert got == pytest.approx(expected, abs=1e-4)
    best = hallucination.best_choice(model, tokenizer, McQuestion("What colour is the sky?", choices, 0, 1))
    assert best == max(range(3), key=scores.__getitem__)


def test_rows_whose_reference_is_not_in_the_prompt_drop_out_of_the_quoted_rows_rate():
    rows = [
        row("Subject: Vault backups fail", '{"product": "Vault"}', "t.csv:2"),
        row("Subject: restore points are gone", '{"product": "Vault"}', "t.csv:3"),  # the product is only implied
    ]
    plan = HallucinationPlan(rows, [], ["product"], [], None)
    answers = {"answers": ['{"product": "Relay"}', '{"product": "Vault"}'], "unanswerable_answers": []}
    section = hallucination.section(plan, answers, answers, load_config(None, {}))
    assert section["reference"] == {"hallucination_rate": 0.5, "unsupported_share": 0.5} and section["quoted_rows"] == 1
    assert section["tuned"]["hallucination_rate"] == 1.0 and section["tuned"]["hallucination_rate_quoted_rows"] == 1.0
    assert section["tuned"]["abstention_rate"] is None and "abstention_rate" not in hallucination.gate_measures(section)


def test_a_run_without_test_rows_is_refused_before_any_model_loads(tmp_path):
    from tuneloop.errors import TuneloopError
    from tuneloop.runs.folder import RunDir

    with pytest.raises(TuneloopError, match="no test rows whose answers could be checked"):
        hallucination.plan(RunDir(tmp_path), load_config(None, {"task": "qa"}), None, [])
