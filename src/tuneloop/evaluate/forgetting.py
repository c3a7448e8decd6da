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
"""

from __future__ import annotations

from tuneloop.data.general_prompts import eval_prompts, general_paragraphs, general_questions, user_turn
from tuneloop.data.schema import Example
from tuneloop.evaluate.general import qa_accuracy, qa_hits
from tuneloop.objectives import get_task
from tuneloop.objectives.heldout_loss import heldout_loss
from tuneloop.text.metrics import rouge_l, token_f1

QA_MAX_NEW_TOKENS = 24
# Metrics of the forgetting table where lower is better.


def skip_reason(task) -> str | None:
    """Why the suite does not apply to ``task`` (None when it does)."""
    if not task.generates:
        return f"not measured: task {task.name!r} predicts labels and does not generate text"
    if task.peft_task_type != "CAUSAL_LM":
        return f"not measured: the general suite needs a causal language model, task {task.name!r} trains {task.peft_task_type}"
    return None


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


def forgetting_section(base: dict, tuned: dict, eval_config) -> dict:
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
            "max_new_tokens": eval_config.forgetting_max_new_tokens,
            "questions": len(general_questions()),
            "paragraphs": len(general_paragraphs()),
        },
    }


def _measures(scores: dict) -> dict:
    return {key: value for key, value in scores.items() if key not in ("answers", "qa_replies")}


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
