"""Few-shot baselines: is fine-tuning better than showing the base model a few examples?

The base model gets k examples drawn (seeded) from the run's training split as prior chat turns,
then answers the same test rows the tuned model answers; both are scored with the task's own
text metrics. k = 0 is the base model as it is (its predictions from the main table are reused).
The shots are one nested draw: the 1-shot example is among the 3 shots, those among the 5.

>>> shots_for(config.eval, "sft", train_rows=432)  # doctest: +SKIP
[0, 1, 3, 5]
"""

from __future__ import annotations

import random

from tuneloop.errors import ConfigError
from tuneloop.progress import status
from tuneloop.text.generate import generate_texts
from tuneloop.text.metrics import load_metric_hook
from tuneloop.text.tokenize import render_prompt
from tuneloop.train.replay import REPLAY_SOURCE

DEFAULT_SHOTS = (0, 1, 3, 5)
FEW_SHOT_TASKS = ("sft", "qa")  # tasks whose rows are chat turns that can be shown as examples


def shots_for(eval_config, task_name: str, train_rows: int) -> list[int]:
    """The k values to evaluate; ConfigError when an explicitly asked k exceeds the training split.

    Without ``eval.few_shot`` the defaults apply as far as the training split allows.
    """
    if task_name not in FEW_SHOT_TASKS:
        return []
    if eval_config.few_shot is None:
        return [k for k in DEFAULT_SHOTS if k <= train_rows]
    too_many = [k for k in eval_config.few_shot if k > train_rows]
    if too_many:
        raise ConfigError(
            f"eval.few_shot: k={max(too_many)} needs {max(too_many)} training examples, but the training split "
            f"has {train_rows}; choose k <= {train_rows}"
        )
    return list(eval_config.few_shot)


def skip_reason(task_name: str) -> str:
    return f"not measured: task {task_name!r} has no chat examples to show (few-shot applies to {', '.join(FEW_SHOT_TASKS)})"


def company_rows(train: list) -> list:
    """Training rows drawn from the user's data (replayed general rows are no examples of the task)."""
    return [example for example in train if example.source != REPLAY_SOURCE]


def draw_shots(train: list, k_max: int, seed: int) -> list:
    """``k_max`` seeded training examples; the first k of them are the k-shot examples."""
    return random.Random(seed).sample(train, k_max) if k_max else []


def few_shot_messages(shots: list, example) -> list[dict]:
    """System turns of the test row, then each shot's turns, then the test row's own turns (no answer)."""
    system = [m for m in example.messages if m["role"] == "system"]
    shown = [m for shot in shots for m in shot.messages if m["role"] != "system"]
    asked = [m for m in example.messages[:-1] if m["role"] != "system"]
    return system + shown + asked


def few_shot_baselines(task, model, tokenizer, test: list, shots: list, ks: list[int], config, base_predictions: list[str]) -> dict:
    """{"k=K": {metric: value}} of the base model on ``test``, each k its own prompts."""
    results = {}
    for k in ks:
        if k == 0:
            predictions = base_predictions[: len(test)]
        else:
            with status(f"Few-shot baseline: the base model with {k} examples on {len(test)} test rows"):
                prompts = [render_prompt(tokenizer, few_shot_messages(shots[:k], example)) for example in test]
                predictions = generate_texts(model, tokenizer, prompts, config.eval.max_new_tokens, config.eval.batch_size)
        results[f"k={k}"] = text_scores(task, predictions, test, config)
    return results


def text_scores(task, predictions: list[str], test: list, config) -> dict:
    """The task's generated-text scores (and the user's metric hook), without held-out loss."""
    references = [example.target_text for example in test]
    scores = task.text_scores(predictions, references)
    if config.eval.metric_hook:
        scores.update(load_metric_hook(config.eval.metric_hook)(predictions, references))
    return scores
