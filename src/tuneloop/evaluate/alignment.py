"""Alignment: a chat model's answers judged by a reward model, base vs tuned.

Measured in ``tuneloop eval`` when ``eval.judge_reward_run`` names a finished reward run: ideally
one trained on preferences the run never saw (a held-out judge), not the reward model a PPO or GRPO
run was trained against, which the policy may have learnt to exploit. On the test split's prompts
(at most ``eval.judge_prompts``):

* ``mean_reward``: the judge's mean score of each model's greedy answers, and ``sampled_mean_reward`` of
  one answer per prompt sampled at temperature 1 (seeded), what a chat served with sampling says;
* ``win_rate``: the share of prompts where the tuned model's answer scores above the base model's
  (a tie counts half; the base's is 0.5 by definition);
* ``kl_to_base``: KL(tuned ‖ base) of whole answers, estimated on one answer per prompt sampled from
  the tuned model at temperature 1: the mean over answers of Σ log π_tuned − log π_base over the
  answer's tokens (0 for the base by definition). For a preference-tuned run whose base is the SFT
  model, this is the KL to the SFT model that RLHF bounds.

``alignment.jsonl`` holds each prompt with both answers and their rewards, for checks of one's own
(``bench/alignment.py`` counts the answers that keep the demo's rule from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuneloop.evaluate.suite import Measure, ReportTable, Scoring, Suite
from tuneloop.evaluate.table_cells import comparison_cells, rich_table
from tuneloop.progress import status
from tuneloop.rl.prompts import PROMPT_FORMATS, prompt_turns
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_base_model
from tuneloop.text.tokenize import render_ids

SAMPLING_SEED = 0
NOTE = (
    "The test split's {prompts} prompts answered by both models (greedy, at most {max_new_tokens} tokens) and scored by "
    "the judge reward model {judge}: mean_reward, and win_rate, the share of prompts where the tuned answer scores "
    "higher (ties half); sampled_mean_reward scores one answer per prompt sampled at temperature 1. kl_to_base estimates KL(tuned || base) of whole answers from one answer per prompt sampled "
    "from the tuned model (nats per answer)."
)


@dataclass
class AlignmentPlan:
    run: RunDir
    judge_run: str
    prompts: list[list[dict]]
    loaded: dict = field(default_factory=dict)  # the judge, loaded once for both models

    def judge(self):
        """The judge, a :class:`~tuneloop.rl.reward_model.RewardScorer`, loaded on first use."""
        from tuneloop.rl.reward_model import RewardScorer

        if "judge" not in self.loaded:
            self.loaded["judge"] = RewardScorer.from_run(self.judge_run, setting="eval.judge_reward_run")
        return self.loaded["judge"]


def applies(task, config) -> str | None:
    if not task.generates:
        return f"not measured: task {task.name!r} predicts {task.predicts} and does not generate text"
    if config.data.format not in PROMPT_FORMATS:
        return f"not measured: data.format {config.data.format!r} holds no chat prompts to answer"
    if not config.eval.judge_reward_run:
        return "not measured: set eval.judge_reward_run to a reward run (one trained on held-out preferences) to judge the answers"
    return None


def plan(run: RunDir, config, task, test: list) -> AlignmentPlan:
    from tuneloop.rl.reward_model import check_reward_run

    check_reward_run(config.eval.judge_reward_run, "eval.judge_reward_run")
    prompts = [prompt_turns(example) for example in test[: config.eval.judge_prompts]]
    return AlignmentPlan(run, config.eval.judge_reward_run, prompts)


def score(plan: AlignmentPlan, model, tokenizer, scoring: Scoring) -> dict:
    config = scoring.config
    with status(f"Alignment: {len(plan.prompts)} prompts answered by the {scoring.which} model and judged"):
        answers = scoring.task.answer(model, tokenizer, plan.prompts, config.eval.max_new_tokens)
        rewards = plan.judge().scores(plan.prompts, answers).tolist()
        rollouts = sampled_rollouts(plan, model, tokenizer, config)
        sampled = [answer for part in rollouts for answer in part.answers]
        sampled_rewards = plan.judge().scores(plan.prompts, sampled).tolist()
    scores = {"answers": answers, "rewards": rewards, "sampled": sampled, "sampled_rewards": sampled_rewards}
    if scoring.which == "tuned":
        with status("Alignment: KL of sampled answers to the base model"):
            scores["kl_to_base"] = kl_to_base(plan, model, rollouts)
    return scores


def sampled_rollouts(plan: AlignmentPlan, model, tokenizer, config) -> list:
    """One answer per prompt sampled at temperature 1 (seeded), in batches of ``eval.batch_size``."""
    import torch

    from tuneloop.rl.rollouts import sample_rollouts

    prompt_ids = [render_ids(tokenizer, turns, add_generation_prompt=True) for turns in plan.prompts]
    batch = config.eval.batch_size
    with torch.random.fork_rng(devices=[]):  # seeded sampling leaves the caller's random state alone
        torch.default_generator.manual_seed(SAMPLING_SEED)
        return [sample_rollouts(model, tokenizer, prompt_ids[i : i + batch], config.eval.max_new_tokens, 1.0) for i in range(0, len(prompt_ids), batch)]


def kl_to_base(plan: AlignmentPlan, model, rollouts: list) -> float:
    """Mean over the tuned model's sampled answers of Σ (log π_tuned − log π_base) over each answer's tokens."""
    import torch

    from tuneloop.rl.rollouts import token_logprobs_and_values

    with torch.no_grad():
        tuned = [token_logprobs_and_values(model, None, part)[0] for part in rollouts]
        base_model, _ = load_base_model(plan.run.path)
        base = [token_logprobs_and_values(base_model.to(model.device), None, part)[0] for part in rollouts]
    per_answer = torch.cat([((t - b) * part.mask.to(t.device)).sum(dim=1) for t, b, part in zip(tuned, base, rollouts)])
    return float(per_answer.mean())


def section(plan: AlignmentPlan, base: dict, tuned: dict, config) -> dict:
    pairs = list(zip(tuned["rewards"], base["rewards"], strict=True))
    win_rate = sum((t > b) + 0.5 * (t == b) for t, b in pairs) / len(pairs)
    return {
        "base": {"mean_reward": mean(base["rewards"]), "sampled_mean_reward": mean(base["sampled_rewards"]), "win_rate": 0.5, "kl_to_base": 0.0},
        "tuned": {
            "mean_reward": mean(tuned["rewards"]), "sampled_mean_reward": mean(tuned["sampled_rewards"]),
            "win_rate": win_rate, "kl_to_base": tuned["kl_to_base"],
        },  # fmt: skip
        "judge": plan.judge_run,
        "prompts": len(pairs),
        "max_new_tokens": config.eval.max_new_tokens,
    }


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report_rows(section: dict, metrics: dict) -> ReportTable:
    note = NOTE.format(prompts=section["prompts"], max_new_tokens=section["max_new_tokens"], judge=section["judge"])
    return ReportTable(note, ["metric", "base", "tuned", "delta"], comparison_cells(section["base"], section["tuned"]))


def terminal_table(section: dict, metrics: dict):
    shown = report_rows(section, metrics)
    return rich_table(f"alignment: judged by {section['judge']}", shown.header, shown.rows)


def gate_measures(section: dict) -> dict[str, Measure]:
    return {"mean_reward": Measure(section["base"]["mean_reward"], section["tuned"]["mean_reward"], False)}


def answer_files(plan: AlignmentPlan, base: dict, tuned: dict) -> dict[str, list[dict]]:
    rows = [
        {"prompt": turns, "base": b, "tuned": t, "base_reward": br, "tuned_reward": tr, "base_sampled": bs, "tuned_sampled": ts}
        for turns, b, t, br, tr, bs, ts in zip(
            plan.prompts, base["answers"], tuned["answers"], base["rewards"], tuned["rewards"], base["sampled"], tuned["sampled"]
        )
    ]
    return {"alignment.jsonl": rows}


SUITE = Suite(
    name="alignment",
    label="Alignment",
    heading="Alignment: answers judged by a reward model, base vs tuned",
    applies=applies,
    plan=plan,
    score=score,
    section=section,
    report_rows=report_rows,
    table=terminal_table,
    gate_measures=gate_measures,
    files=answer_files,
)
