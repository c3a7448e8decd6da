"""``tuneloop align NAME``: one alignment round through the served model.

1. The feedback the production version's users gave since the project's last round (or, before the
   first, since production was registered): preference pairs from A/B choices and thumbs ratings,
   read from the store as ``tuneloop feedback export`` writes them. Too few preferences (ratings
   under ``--objective kto``) and the round stops before anything is written, trained or promoted.
2. The rows are split by prompt into training and held-out rows (no prompt in both; the data
   split's leakage groups).
3. A reward model (task reward, from production's base) learns the training pairs.
4. A candidate learns them from production's adapter (``method.init_from``): a short supervised
   warm-up on the chosen (or well-rated) answers, which users often picked from *another* version,
   then DPO on the pairs (KTO on the ratings when there are no pairs). DPO and KTO take their
   reference from the model with its adapter switched off, i.e. production's *base*, not production:
   they need a switchable method, and the warm-up is what keeps the first steps from tearing the
   production adapter down (pushing the rejected answers' likelihood down is the easy way out).
5. Production and candidate answer the held-out prompts greedily; the round's reward model scores
   the answers (mean reward, and the candidate's win rate: share of prompts where its answer gets
   the higher reward, ties half). Both are scored on the frozen test split of the nearest version in
   production's lineage that has one, by that run's task, and on the general-ability check, as
   ``retrain`` scores them.
6. The gate promotes when the mean reward improves and neither the frozen test nor the general check
   regresses beyond the tolerance. The candidate is registered with production as its parent, then
   promoted or archived with the gate's reason; the round (feedback ids used, scores, decision) is
   recorded in the store's ``align_rounds`` and in ``align.json``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.config import DataConfig, build_config
from tuneloop.data.formats import FORMATS
from tuneloop.data.split import split_train_val_test
from tuneloop.errors import NotFoundError, TuneloopError
from tuneloop.loop.trust_gate import judge_candidate, record_settled
from tuneloop.loop.gate import Checks, Gate, decide
from tuneloop.loop.retrain import compare_runs
from tuneloop.methods import get_method, methods_where
from tuneloop.rl.reward_model import RewardScorer
from tuneloop.runs.folder import RunDir
from tuneloop.store import sql
from tuneloop.store.db import write_transaction
from tuneloop.store.feedback_export import FeedbackExport, export_window
from tuneloop.store.rounds import Window, feedback_window, new_feedback_ids, record_round
from tuneloop.store.versions import lineage, production, register
from tuneloop.store.versions import get as get_version
from tuneloop.text.generate import generate_texts
from tuneloop.text.tokenize import render_prompt
from tuneloop.train.run import train

ALIGN_CHECKS = Checks(improve=("reward",), hold=("frozen_test", "general"))
OBJECTIVES = ("auto", "dpo", "kto")


@dataclass(frozen=True)
class AlignSettings:
    """How one round trains and judges; the defaults suit a LoRA chat model and a few dozen pairs."""

    min_preferences: int = 16  # fewer preference pairs (ratings for kto) than this: no round
    objective: str = "auto"  # dpo on pairs; kto on ratings; auto: dpo when there are pairs, else kto
    heldout_fraction: float = 0.25  # share of prompts held out for the reward comparison
    seed: int = 0
    warmup_steps: int = 60  # supervised steps on the chosen / well-rated answers before DPO / KTO (0: none)
    warmup_learning_rate: float = 1e-2
    replay: float = 1.0  # production's own training rows replayed in the warm-up, per chosen answer (against forgetting)
    steps: int = 10  # DPO / KTO steps
    learning_rate: float = 1e-3
    beta: float | None = None  # dpo.beta / kto.beta (None: the task's default)
    reward_steps: int = 40
    reward_learning_rate: float = 5e-3
    max_new_tokens: int = 32  # per held-out answer

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise TuneloopError(f"--objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if self.min_preferences < 4:
            raise TuneloopError(f"--min-preferences {self.min_preferences}: a round needs at least 4 (some to train on, some held out)")
        if not 0 < self.heldout_fraction < 1:
            raise TuneloopError(f"--heldout-fraction {self.heldout_fraction:g}: give a share between 0 and 1")


@dataclass
class Feedback:
    """What a round reads from the store."""

    window: Window
    ids: set[int]
    pairs: FeedbackExport
    ratings: FeedbackExport


def align(conn, project: str, out: Path, gate: Gate = Gate(), settings: AlignSettings = AlignSettings(), since: float | None = None) -> dict:
    """Run one round; returns what ``align.json`` records. Refuses (TuneloopError, nothing written) before training.

    ``since``: before the project's first round, read feedback recorded since then (default: when the
    production version was registered; ``retrain --align`` passes the production it started from).
    """
    current = production_version(conn, project)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TuneloopError(f"{out} already exists; choose another --out")
    config = RunDir(current.run_path).config()
    check_switchable(current, config)
    feedback = read_feedback(conn, project, since if since is not None else current.created_at)
    objective = choose_objective(settings.objective, feedback)
    check_enough(project, objective, feedback, settings.min_preferences)
    out.mkdir(parents=True, exist_ok=True)
    try:
        replayed = replay_rows(frozen_reference(conn, current), settings)
        data = write_round_data(feedback, objective, config, out / "data", settings, replayed)
        reward_run = train_reward(config, data, out / "reward", settings)
        candidate_run = train_candidate(config, current.run_path, data, objective, out, settings)
    except BaseException:
        if not any((out / name).is_dir() for name in ("reward", "candidate")):
            shutil.rmtree(out, ignore_errors=True)  # failed before any run: leave nothing behind
        raise
    results, heldout = score_round(conn, current, candidate_run, reward_run, data, gate, settings)
    return record_round_decision(conn, current, candidate_run, objective, feedback, results, heldout, gate, settings, out)


# --- 1. what the round reads ----------------------------------------------------------------


def production_version(conn, project: str):
    current = production(conn, project)
    if current is not None:
        return current
    if conn.execute(sql.PROJECT_EXISTS, (project,)).fetchone() is None:
        raise NotFoundError(f"unknown project {project!r}: no version of it is registered (tuneloop models ls lists them)")
    raise TuneloopError(f"project {project!r} has no production version to align (promote one: tuneloop models promote)")


def check_switchable(current, config) -> None:
    """DPO and KTO take their reference from the policy with its adapter off: production's method must allow it."""
    if not get_method(config.method.name).switchable:
        raise TuneloopError(
            f"align trains the candidate from {current.id}'s adapter with DPO/KTO, whose reference is the model with its "
            f"adapter switched off; {current.id} uses method {config.method.name!r}, which has none to switch off "
            f"(align a version trained with one of {', '.join(methods_where('switchable'))})"
        )


def read_feedback(conn, project: str, since: float) -> Feedback:
    window = feedback_window(conn, project, since)
    ids = new_feedback_ids(conn, project, window)
    return Feedback(window, ids, export_window(conn, project, "preferences", ids), export_window(conn, project, "ratings", ids))


def choose_objective(objective: str, feedback: Feedback) -> str:
    if objective != "auto":
        return objective
    return "dpo" if feedback.pairs.rows or not feedback.ratings.rows else "kto"


def check_enough(project: str, objective: str, feedback: Feedback, minimum: int) -> None:
    kind = "preference pair" if objective == "dpo" else "rating"
    found = len(feedback.pairs.rows if objective == "dpo" else feedback.ratings.rows)
    if found >= minimum:
        return
    left_out = feedback.pairs.left_out if objective == "dpo" else feedback.ratings.left_out
    unusable = f" ({len(left_out)} more unusable: {left_out[0]})" if left_out else ""
    raise TuneloopError(
        f"align {project}: {found} usable {kind}{'' if found == 1 else 's'} {feedback.window.describe()}{unusable}; "
        f"a round needs at least {minimum} (--min-preferences); nothing was trained or promoted"
    )


# --- 2. the round's data --------------------------------------------------------------------


def replay_rows(reference: RunDir | None, settings: AlignSettings) -> list[dict]:
    """Conversations of the run production's frozen test comes from (its training split), seeded: the warm-up
    mixes them with the chosen answers so the frozen test is not forgotten, as ``retrain`` replays them."""
    if reference is None or not settings.replay or not reference.has_split("train"):
        return []
    rows = [{"messages": list(e.messages)} for e in reference.split("train") if e.messages and e.messages[-1]["role"] == "assistant"]
    return random.Random(settings.seed).sample(rows, len(rows))


def write_round_data(feedback: Feedback, objective: str, config, folder: Path, settings: AlignSettings, replayed: list[dict]) -> dict:
    """Split the rows by prompt and write train/held-out files; returns the data manifest."""
    pairs, ratings = list(feedback.pairs.rows), list(feedback.ratings.rows)
    if objective == "kto":
        pairs = rating_pairs(ratings)  # the reward model still learns from pairs: a good and a bad answer to one prompt
        if len(pairs) < 2:
            raise TuneloopError(
                f"align with kto: the ratings give {len(pairs)} pair(s) of a good and a bad answer to the same prompt; "
                "the round's reward model needs at least 2 (collect A/B preferences, or more ratings)"
            )
    system_prompt = config.data.system_prompt
    train_rows, heldout_rows = split_by_prompt({"pairs": pairs, "ratings": ratings}, system_prompt, settings)
    if not heldout_rows["pairs"] or len(train_rows["pairs"]) < 2:
        raise TuneloopError(
            f"align: {len(pairs)} pairs over too few distinct prompts to hold some out and train on the rest "
            f"({len(train_rows['pairs'])} to train, {len(heldout_rows['pairs'])} held out)"
        )
    files = {}
    for split, rows in (("train", train_rows), ("heldout", heldout_rows)):
        for kind, kind_rows in rows.items():
            files[f"{split}_{kind}"] = write_rows(folder / f"{split}_{kind}.jsonl", kind_rows)
    chosen = [chat_row(r["prompt"], r["chosen"]) for r in train_rows["pairs"]] if objective == "dpo" else [
        chat_row(r["prompt"], r["completion"]) for r in train_rows["ratings"] if r["label"]
    ]  # fmt: skip
    replayed = replayed[: round(settings.replay * len(chosen))]
    files["warmup"] = write_rows(folder / "warmup.jsonl", chosen + replayed)
    manifest = {
        "objective": objective, "system_prompt": system_prompt, "files": {k: str(v) for k, v in files.items()},
        "rows": {f"{s}_{k}": len(v) for s, rows in (("train", train_rows), ("heldout", heldout_rows)) for k, v in rows.items()},
        "heldout_prompts": heldout_prompts(heldout_rows, system_prompt), "warmup_rows": len(chosen), "replayed_rows": len(replayed),
    }  # fmt: skip
    write_json_atomic(folder / "manifest.json", manifest)
    return manifest


def rating_pairs(ratings: list[dict]) -> list[dict]:
    """Pairs of a well-rated and a badly rated answer to the same prompt (each good answer with each bad one)."""
    by_prompt: dict[str, dict[bool, list[dict]]] = {}
    for row in ratings:
        by_prompt.setdefault(json.dumps(row["prompt"], sort_keys=True), {True: [], False: []})[bool(row["label"])].append(row)
    return [
        {"prompt": good["prompt"], "chosen": good["completion"], "rejected": bad["completion"], "feedback": good["feedback"] + bad["feedback"]}
        for sides in by_prompt.values() for good in sides[True] for bad in sides[False] if good["completion"] != bad["completion"]
    ]  # fmt: skip


def split_by_prompt(rows: dict[str, list[dict]], system_prompt: str | None, settings: AlignSettings):
    """({kind: training rows}, {kind: held-out rows}): whole prompt groups, so no prompt is on both sides."""
    examples = []
    for kind, kind_rows in rows.items():
        cfg = DataConfig(format=kind, system_prompt=system_prompt)
        for index, row in enumerate(kind_rows):
            examples.append(dataclasses.replace(FORMATS[kind](row, cfg), source=kind, line=index))
    splits = split_train_val_test(examples, 0.0, settings.heldout_fraction, settings.seed, stratify=False)
    pick = lambda chosen: {kind: [rows[kind][e.line] for e in chosen if e.source == kind] for kind in rows}  # noqa: E731
    return pick(splits.train), pick(splits.test)


def heldout_prompts(heldout_rows: dict[str, list[dict]], system_prompt: str | None) -> list[list[dict]]:
    """Each held-out prompt once, as the served model reads it (the version's system prompt first)."""
    seen, prompts = set(), []
    for row in heldout_rows["pairs"] + heldout_rows["ratings"]:
        turns = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        if system_prompt and turns[0]["role"] != "system":
            turns = [{"role": "system", "content": system_prompt}, *turns]
        key = json.dumps(turns, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(turns)
    return prompts


def chat_row(prompt, answer: str) -> dict:
    turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    return {"messages": [*turns, {"role": "assistant", "content": answer}]}


def write_rows(path: Path, rows: list[dict]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


# --- 3, 4. the reward model and the candidate -----------------------------------------------


def run_config(config, *, task: str, data: dict, out: Path, method: dict, train: dict, **sections):
    """A run config on production's model: production's settings where they carry over, the round's own data and steps."""
    raw = config.model_dump(mode="json")
    data_settings = {
        "path": [data["path"]], "format": data["format"], "columns": {}, "prompt_template": None, "target_columns": None,
        "system_prompt": data.get("system_prompt"), "val_fraction": 0.0, "test_fraction": 0.0, "val_path": None,
        "test_path": None, "replay_fraction": 0.0, "mix": [],
    }  # fmt: skip
    raw["data"].update(data_settings)
    raw["method"].update(method)
    raw["train"].update({"early_stopping_patience": 0, "curriculum": "none", "save_steps": 0, **train})
    raw["eval"]["primary"] = "auto"
    for name in ("dpo", "kto", "ppo", "grpo"):
        raw.pop(name, None)  # the objective sections: defaults, except the one the task sets below
    raw.update(task=task, out=str(out), **sections)
    return build_config(raw, f"align ({task})")


def train_reward(config, data: dict, out: Path, settings: AlignSettings) -> Path:
    """A reward model on the training pairs, from production's base (a fresh adapter and score head)."""
    files = data["files"]
    return train(run_config(
        config, task="reward", out=out, method={"init_from": None},
        data={"path": files["train_pairs"], "format": "pairs", "system_prompt": data["system_prompt"]},
        train={"max_steps": settings.reward_steps, "learning_rate": settings.reward_learning_rate},
    ))  # fmt: skip


def train_candidate(config, production_run: Path, data: dict, objective: str, out: Path, settings: AlignSettings) -> Path:
    """Warm-up on the chosen answers from production's adapter, then DPO (or KTO) from there."""
    files, start = data["files"], Path(production_run)
    if settings.warmup_steps and data["warmup_rows"]:
        start = train(run_config(
            config, task="sft", out=out / "warmup", method={"init_from": str(start)},
            data={"path": files["warmup"], "format": "chat", "system_prompt": data["system_prompt"]},
            train={"max_steps": settings.warmup_steps, "learning_rate": settings.warmup_learning_rate},
        ))  # fmt: skip
    source = files["train_pairs"] if objective == "dpo" else files["train_ratings"]
    sections = {objective: {"beta": settings.beta}} if settings.beta is not None else {}
    return train(run_config(
        config, task=objective, out=out / "candidate", method={"init_from": str(start)},
        data={"path": source, "format": "pairs" if objective == "dpo" else "ratings", "system_prompt": data["system_prompt"]},
        train={"max_steps": settings.steps, "learning_rate": settings.learning_rate}, **sections,
    ))  # fmt: skip


# --- 5. scoring -----------------------------------------------------------------------------


def frozen_reference(conn, current) -> RunDir | None:
    """The nearest run in production's lineage with a non-empty test split (align's and retrain's own runs hold none)."""
    for version in lineage(conn, current.id):
        run = RunDir(version.run_path)
        if run.has_split("test") and run.split("test"):
            return run
    return None


def score_round(conn, current, candidate_run: Path, reward_run: Path, data: dict, gate: Gate, settings: AlignSettings):
    """(the gate's results, the held-out answers with their rewards)."""
    prompts = data["heldout_prompts"]
    answers: dict[str, list[str]] = {}

    def answer(role, model, tokenizer):
        rendered = [render_prompt(tokenizer, turns) for turns in prompts]
        answers[role] = generate_texts(model, tokenizer, rendered, settings.max_new_tokens)

    reference = frozen_reference(conn, current)
    config = reference.config() if reference is not None else RunDir(current.run_path).config()
    tests = {"frozen_test": reference.split("test")} if reference is not None else {}
    results = compare_runs(current.run_path, candidate_run, tests, reference or RunDir(current.run_path), config, gate, also=answer)
    if reference is None:
        results["frozen_test"] = {"skipped": f"no version in {current.id}'s lineage has a test split"}
    else:
        results["frozen_test"]["split_of"] = str(reference.path)
    scorer = RewardScorer.from_run(reward_run, setting="align's reward model")
    rewards = {role: scorer.scores(prompts, answers[role]).tolist() for role in ("production", "candidate")}
    del scorer
    results["reward"] = reward_check(rewards["production"], rewards["candidate"])
    heldout = [
        {"prompt": turns, "production": answers["production"][i], "candidate": answers["candidate"][i],
         "production_reward": rewards["production"][i], "candidate_reward": rewards["candidate"][i]}
        for i, turns in enumerate(prompts)
    ]  # fmt: skip
    return results, heldout


def reward_check(production_rewards: list[float], candidate_rewards: list[float]) -> dict:
    """The gate's reward check: mean reward of each model's held-out answers; the win rate rides along."""
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    return {
        "metric": "mean_reward", "production": mean(production_rewards), "candidate": mean(candidate_rewards),
        "lower_is_better": False, "win_rate": win_rate(production_rewards, candidate_rewards), "prompts": len(candidate_rewards),
    }  # fmt: skip


def win_rate(production_rewards: list[float], candidate_rewards: list[float]) -> float:
    """Share of prompts where the candidate's answer gets the higher reward; a tie counts half."""
    wins = sum(1.0 if c > p else 0.5 if c == p else 0.0 for p, c in zip(production_rewards, candidate_rewards))
    return wins / len(candidate_rewards)


# --- 6. the decision ------------------------------------------------------------------------


def record_round_decision(conn, current, candidate_run, objective, feedback: Feedback, results, heldout, gate, settings, out: Path) -> dict:
    promoted, reason, trust, _ = settled = judge_candidate(candidate_run, gate.trust, *decide(gate, results, ALIGN_CHECKS))
    used = sorted({source["feedback_id"] for export in (feedback.pairs, feedback.ratings) for row in export.rows for source in row["feedback"]})
    with write_transaction(conn):  # the candidate, its stage and the round land together or not at all
        candidate = register(conn, candidate_run, current.project, parent=current.id)
        record_settled(conn, candidate.id, settled)
        stored = record_round(
            conn, project=current.project, production_id=current.id, candidate_id=candidate.id, objective=objective,
            feedback_ids=used, feedback_through=feedback.window.through, scores=strip(results), promoted=promoted, reason=reason,
        )  # fmt: skip
    record = {
        "project": current.project, "round": stored.id, "production_before": current.id, "candidate": candidate.id,
        "objective": objective, "promoted": promoted, "reason": reason, "gate": dataclasses.asdict(gate),
        "settings": dataclasses.asdict(settings), "checks": results, "trust": trust,
        "feedback": {"ids": used, "through": feedback.window.through, "pairs": len(feedback.pairs.rows), "ratings": len(feedback.ratings.rows),
                     "left_out": [str(left) for left in feedback.pairs.left_out + feedback.ratings.left_out]},
        "heldout": heldout, "runs": {"reward": str(out / "reward"), "candidate": str(candidate_run)},
    }  # fmt: skip
    write_json_atomic(out / "align.json", record)
    return record


def strip(results: dict) -> dict:
    """The checks without their full score tables, for the store."""
    return {name: {k: v for k, v in check.items() if k != "all"} for name, check in results.items()}


# --- retrain --align ------------------------------------------------------------------------


def preferences_waiting(conn, project: str, since: float) -> int:
    """Usable preference pairs a round would read now (``since``: before the first round)."""
    return len(read_feedback(conn, project, since).pairs.rows)


def align_after_retrain(conn, retrain_record: dict, out: Path, gate: Gate, settings: AlignSettings) -> dict:
    """``retrain --align``: the same round on whatever is production after retraining (the new candidate when
    it passed), over the preferences given since the production retrain started from; skipped (not an error)
    when fewer than ``settings.min_preferences`` are waiting. Returns the round's record or ``{"skipped": why}``."""
    before = get_version(conn, retrain_record["production_before"])
    waiting = preferences_waiting(conn, before.project, before.created_at)
    if waiting < settings.min_preferences:
        return {"skipped": f"{waiting} preference pair(s) waiting; align needs at least {settings.min_preferences} (--min-preferences)"}
    return align(conn, before.project, Path(out) / "align", gate, settings, since=before.created_at)
