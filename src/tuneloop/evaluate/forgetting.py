"""Forgetting: base vs tuned on the general-ability suite, in every ``tuneloop eval`` report.

Three kinds of measure, each asked without the run's system prompt (the tuned model as a general assistant):

* ``answer_rouge_l`` / ``answer_token_f1``: the held-out general prompts (never replayed) answered by
  both models, the tuned model's answers scored against the base model's own answers. The base
  scores 1.0 by definition; the drop is how much of its general behaviour tuning changed.
* ``qa_accuracy``: the small general-knowledge QA set (share answered right), and ``qa_forgotten``:
  how many of the questions the base answered right the tuned model no longer does (forgetting
  proper: a tuned model that answers more tersely may gain questions the base talked past, which
  the accuracy nets against those it lost).
* ``general_perplexity``: perplexity on paragraphs of general prose (lower is better).

>>> suite = general_suite_scores(task, model, tokenizer, config.eval, packs=True)  # doctest: +SKIP

Registered as the ``forgetting`` suite (``SUITE``); the retrain gate's general-ability check is its
``qa_accuracy`` (production as base, the candidate as tuned).
"""

from __future__ import annotations

from tuneloop.data.general_prompts import eval_prompts, general_paragraphs, general_questions, user_turn
from tuneloop.data.schema import Example
from tuneloop.evaluate.general import qa_accuracy, qa_hits
from tuneloop.evaluate.suite import Measure, ReportTable, Scoring, Suite
from tuneloop.evaluate.table_cells import comparison_cells, rich_table
from tuneloop.objectives import get_task
from tuneloop.objectives.heldout_loss import heldout_loss
from tuneloop.progress import status
from tuneloop.text.metrics import LOWER_IS_BETTER, rouge_l, token_f1

QA_MAX_NEW_TOKENS = 24
GATE_MEASURES = ("qa_accuracy",)  # what the retrain gate may compare: the share of general questions answered right
NOTE = (
    "The general-ability suite, asked without the run's system prompt: answer_rouge_l and answer_token_f1 "
    "score the tuned model's answers to {prompts} held-out general prompts against the base model's own answers "
    "(1.0 = unchanged); qa_accuracy is the share of {questions} general-knowledge questions answered right, "
    "qa_forgotten how many of those the base answered right the tuned model now gets wrong (lower is better); general_perplexity is measured on {paragraphs} paragraphs of general prose (lower is better)."
)


def applies(task, config) -> str | None:
    """Why the suite is not measured for ``task`` under ``config`` (None when it is)."""
    return skip_reason(task) or (None if config.eval.forgetting else "off (eval.forgetting: false)")


def skip_reason(task) -> str | None:
    """Why the suite does not apply to ``task`` (None when it does)."""
    if not task.generates:
        return f"not measured: task {task.name!r} predicts {task.predicts} and does not generate text"
    if task.peft_task_type != "CAUSAL_LM":
        return f"not measured: the general suite needs a causal language model, task {task.name!r} trains {task.peft_task_type}"
    return None


def score_general_suite(plan, model, tokenizer, scoring: Scoring) -> dict:
    with status("Forgetting: general-ability suite"):
        return general_suite_scores(scoring.task, model, tokenizer, scoring.config.eval, scoring.packs)


def general_suite_scores(task, model, tokenizer, eval_config, packs: bool) -> dict:
    """One model on the suite: its answers to the held-out prompts, QA accuracy and perplexity on general text."""
    prompts = eval_prompts()[: eval_config.forgetting_prompts]
    answers = task.answer(model, tokenizer, [user_turn(p) for p in prompts], eval_config.forgetting_max_new_tokens)
    replies = task.answer(model, tokenizer, [user_turn(q) for q, _ in general_questions()], QA_MAX_NEW_TOKENS)
    return {"answers": answers, "qa_replies": replies, "qa_accuracy": qa_accuracy(replies), **general_perplexity(model, tokenizer, packs)}


def general_perplexity(model, tokenizer, packs: bool) -> dict:
    """{"general_perplexity"} on the suite's paragraphs, every token scored (as continued pre-training would)."""
    cpt = get_task("cpt")
    tokenized = [cpt.tokenize(tokenizer, Example("general", i, text=text), None) for i, text in enumerate(general_paragraphs(), 1)]
    return {"general_perplexity": heldout_loss(model, tokenizer, tokenized, cpt, pack=packs)["perplexity"]}


def forgetting_section(plan, base: dict, tuned: dict, config) -> dict:
    """metrics.json's ``forgetting``: {"base": {...}, "tuned": {...}, "suite": sizes}."""
    pairs = list(zip(tuned["answers"], base["answers"], strict=True))
    agreement = {
        "answer_rouge_l": sum(rouge_l(t, b) for t, b in pairs) / len(pairs),
        "answer_token_f1": sum(token_f1(t, b) for t, b in pairs) / len(pairs),
    }
    forgotten = sum(was and not now for was, now in zip(qa_hits(base["qa_replies"]), qa_hits(tuned["qa_replies"])))
    return {
        "base": {"answer_rouge_l": 1.0, "answer_token_f1": 1.0, **_measures(base), "qa_forgotten": 0},
        "tuned": {**agreement, **_measures(tuned), "qa_forgotten": forgotten},
        "suite": {
            "prompts": len(pairs),
            "max_new_tokens": config.eval.forgetting_max_new_tokens,
            "questions": len(general_questions()),
            "paragraphs": len(general_paragraphs()),
        },
    }


def _measures(scores: dict) -> dict:
    return {key: value for key, value in scores.items() if key not in ("answers", "qa_replies")}


def report_rows(section: dict, metrics: dict) -> ReportTable:
    return ReportTable(NOTE.format(**section["suite"]), ["metric", "base", "tuned", "delta"], comparison_cells(section["base"], section["tuned"]))


def terminal_table(section: dict, metrics: dict):
    shown = report_rows(section, metrics)
    return rich_table("forgetting: general-ability suite, base vs tuned", shown.header, shown.rows)


def gate_measures(section: dict) -> dict[str, Measure]:
    return {name: Measure(section["base"][name], section["tuned"][name], name in LOWER_IS_BETTER) for name in GATE_MEASURES}


def answer_files(plan, base: dict, tuned: dict) -> dict[str, list[dict]]:
    return {"forgetting.jsonl": answer_rows(base, tuned)}


def answer_rows(base: dict, tuned: dict) -> list[dict]:
    """``forgetting.jsonl``: each held-out general prompt with both models' answers, then each
    general-knowledge question with both replies and whether each was right."""
    prompts = [{"prompt": p, "base": b, "tuned": t} for p, b, t in zip(eval_prompts(), base["answers"], tuned["answers"])]
    replies = zip(general_questions(), base["qa_replies"], tuned["qa_replies"], qa_hits(base["qa_replies"]), qa_hits(tuned["qa_replies"]), strict=True)
    questions = [
        {"question": q, "accepted": list(accepted), "base": b, "tuned": t, "base_right": b_right, "tuned_right": t_right}
        for (q, accepted), b, t, b_right, t_right in replies
    ]
    return prompts + questions


SUITE = Suite(
    name="forgetting",
    label="Forgetting",
    heading="Forgetting: general ability, base vs tuned",
    applies=applies,
    score=score_general_suite,
    section=forgetting_section,
    report_rows=report_rows,
    table=terminal_table,
    gate_measures=gate_measures,
    files=answer_files,
)
