"""Privacy: what a tuned model gives away about its training rows, in every ``tuneloop eval`` report.

Two attacks, each run on the base model (which never saw the data: the sanity check) and the tuned one:

* **Membership inference** (loss threshold, Yeom et al. 2018): can a row's loss tell a training row
  from a held-out (test) one? ``mia_auc`` is the ROC AUC of "lower loss = member" over
  ``eval.privacy_rows`` training rows and as many test rows (0.5: no better than a coin). The
  reference-calibrated attack (Carlini et al. 2022, "Membership inference from first principles")
  scores each row by the tuned model's loss minus the base model's (``mia_auc_calibrated``):
  a row that is merely easy is easy for both, so what stays is what tuning learnt of that row.
* **Canary exposure** (Carlini et al. 2019, "The Secret Sharer"): the secrets ``data.canaries``
  planted in training (:mod:`tuneloop.data.canaries`) are each ranked by log-perplexity among
  ``eval.privacy_candidates`` random secrets of the same format. exposure = log2|R| - log2 rank;
  with the rank estimated from the sample, exposure = -log2((c + 1) / (M + 1)) for c of M candidates
  at or below the canary's log-perplexity: 0 to log2(M + 1) bits. A secret the model never saw
  scores 1/ln 2 = 1.44 bits on average. ``canary_exposure_extrapolated`` fits a skew-normal to the
  candidates' log-perplexities and reads the canary's tail probability from it (the paper's
  section 4.3), which reaches past log2(M + 1), up to log2|R|.

The run's differential-privacy budget (``train.json``'s ``dp`` entry) is shown beside the figures.
``tuneloop audit privacy RUN`` runs this suite alone, with more rows or candidates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tuneloop.data.canaries import CANARY_SOURCE, canary_example, random_secret
from tuneloop.data.schema import Example
from tuneloop.evaluate.suite import Measure, ReportTable, Scoring, Suite
from tuneloop.evaluate.table_cells import comparison_cells
from tuneloop.objectives.heldout_loss import row_losses
from tuneloop.progress import status
from tuneloop.runs.folder import RunDir
from tuneloop.train.replay import REPLAY_SOURCE

UNSEEN_EXPOSURE = 1 / math.log(2)  # E[-log2 U] for U uniform on (0, 1]: a secret the model never saw


# --- the measures ------------------------------------------------------------------------------


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """P(a positive scores above a negative), ties counting half: the ROC AUC, by the rank-sum
    (Mann-Whitney U) formula with mid-ranks for ties.

    >>> roc_auc([3.0, 2.0], [1.0, 2.0])
    0.875
    """
    if not positives or not negatives:
        raise ValueError("the ROC AUC needs at least one positive and one negative score")
    ranked = sorted([(s, True) for s in positives] + [(s, False) for s in negatives], key=lambda item: item[0])
    rank_sum, start = 0.0, 0
    while start < len(ranked):
        end = start
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[start][0]:
            end += 1
        mid_rank = (start + end) / 2 + 1  # 1-based ranks start+1 .. end+1, averaged
        rank_sum += mid_rank * sum(is_positive for _, is_positive in ranked[start : end + 1])
        start = end + 1
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def membership_auc(member_losses: list[float], nonmember_losses: list[float]) -> float:
    """The loss-threshold attack's ROC AUC: a lower loss says "member"."""
    return roc_auc([-loss for loss in member_losses], [-loss for loss in nonmember_losses])


def exposure_by_rank(canary: float, candidates: list[float]) -> float:
    """-log2 of the canary's estimated rank fraction among the candidates' log-perplexities:
    log2(M + 1) - log2(c + 1) for c candidates at or below the canary (ties count against it)."""
    at_or_below = sum(candidate <= canary for candidate in candidates)
    return math.log2(len(candidates) + 1) - math.log2(at_or_below + 1)


def exposure_extrapolated(canary: float, candidates: list[float], space_bits: float) -> float:
    """-log2 P(log-perplexity <= the canary's) under a skew-normal fitted to the candidates, in [0, space_bits]."""
    from scipy.stats import skewnorm

    shape, location, scale = skewnorm.fit(candidates)
    log_tail = float(skewnorm.logcdf(canary, shape, location, scale))
    return min(max(-log_tail / math.log(2), 0.0), space_bits)


# --- the suite -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyPlan:
    members: list[Example]  # training rows the attack should call members
    nonmembers: list[Example]  # test rows, as many
    canaries: dict | None  # data.json's record of the planted canaries (None: none planted)
    candidates: list[str]  # random secrets of the canaries' format, none of them a canary
    dp: dict | None  # train.json's differential-privacy entry (None: trained without DP)


def applies(task, config) -> str | None:
    if not task.learns_text:
        return f"not measured: the privacy audit scores rows by a causal language model's per-token loss, task {task.name!r} has none"
    return None if config.eval.privacy else "off (eval.privacy: false)"


def plan(run: RunDir, config, task, test: list) -> PrivacyPlan:
    """The rows and secrets both models are scored on, drawn once (seeded by data.seed)."""
    rng = random.Random(f"privacy:{config.data.seed}")
    training = [e for e in run.split("train") if e.source not in (CANARY_SOURCE, REPLAY_SOURCE)]
    heldout = run.split("test")
    count = min(config.eval.privacy_rows, len(training), len(heldout))
    canaries = run.manifest().get("canaries")
    return PrivacyPlan(
        members=rng.sample(training, count),
        nonmembers=rng.sample(heldout, count),
        canaries=canaries,
        candidates=candidate_secrets(rng, config.eval.privacy_candidates, canaries) if canaries else [],
        dp=run.train_summary().get("dp") if run.train_summary_file.is_file() else None,
    )


def candidate_secrets(rng: random.Random, count: int, canaries: dict) -> list[str]:
    """``count`` distinct random secrets of the format, none of them a planted one."""
    planted = {canary["secret"] for canary in canaries["canaries"]}
    drawn: dict[str, None] = {}
    while len(drawn) < count:
        secret = random_secret(rng)
        if secret not in planted:
            drawn[secret] = None
    return list(drawn)


def score_privacy(plan: PrivacyPlan, model, tokenizer, scoring: Scoring) -> dict:
    """One model's loss per member and non-member row (nats per token), and, per canary, the
    log-perplexity (bits) of its own secret and of every candidate."""
    task = scoring.task
    with status(f"Privacy: losses of {len(plan.members)} training and {len(plan.nonmembers)} test rows"):
        member_losses = mean_losses(task, model, tokenizer, plan.members, scoring.config.data.max_length)
        nonmember_losses = mean_losses(task, model, tokenizer, plan.nonmembers, scoring.config.data.max_length)
    scores = {"member_losses": member_losses, "nonmember_losses": nonmember_losses}
    if plan.canaries:
        with status(f"Privacy: {len(plan.canaries['canaries'])} canaries among {len(plan.candidates)} random secrets"):
            scores["canaries"] = [secret_log_perplexities(task, model, tokenizer, plan, canary) for canary in plan.canaries["canaries"]]
    return scores


def mean_losses(task, model, tokenizer, examples: list[Example], max_length: int) -> list[float]:
    """Each example's mean cross-entropy per labelled token, over all of its pieces (cpt cuts long texts)."""
    pieces, owners = [], []
    for index, example in enumerate(examples):
        for piece in task.pieces(task.tokenize(tokenizer, example, None), max_length):
            pieces.append(piece)
            owners.append(index)
    totals, counts = [0.0] * len(examples), [0] * len(examples)
    for owner, (loss, count) in zip(owners, row_losses(model, tokenizer, pieces)):
        totals[owner] += loss
        counts[owner] += count
    return [total / max(count, 1) for total, count in zip(totals, counts)]


def secret_log_perplexities(task, model, tokenizer, plan: PrivacyPlan, canary: dict) -> dict:
    """{"canary": bits, "candidates": [bits]}: -log2 P(the answer) with the canary's secret and with each candidate's."""
    record = plan.canaries
    secrets = [canary["secret"], *plan.candidates]
    examples = [
        canary_example(record["format"], record["system_prompt"], canary["holder"], secret, record["question"], record["answer"])
        for secret in secrets
    ]
    losses = row_losses(model, tokenizer, [task.tokenize(tokenizer, example, None) for example in examples])
    bits = [loss / math.log(2) for loss, _ in losses]
    return {"canary": bits[0], "candidates": bits[1:]}


def section(plan: PrivacyPlan, base: dict, tuned: dict, config) -> dict:
    """metrics.json's ``privacy``: the attacks' figures for base and tuned, each canary's exposure, the DP budget."""
    calibrated = membership_auc(
        [t - b for t, b in zip(tuned["member_losses"], base["member_losses"])],
        [t - b for t, b in zip(tuned["nonmember_losses"], base["nonmember_losses"])],
    )
    entry = {
        "base": {"mia_auc": membership_auc(base["member_losses"], base["nonmember_losses"])},
        "tuned": {"mia_auc": membership_auc(tuned["member_losses"], tuned["nonmember_losses"]), "mia_auc_calibrated": calibrated},
        "rows": len(plan.members),
        "dp": dp_budget(plan.dp),
    }
    if plan.canaries:
        canaries = canary_exposures(plan, base["canaries"], tuned["canaries"])
        for which in ("base", "tuned"):
            entry[which]["canary_exposure"] = mean(c[f"{which}_exposure"] for c in canaries)
            entry[which]["canary_exposure_extrapolated"] = mean(c[f"{which}_exposure_extrapolated"] for c in canaries)
        entry["canaries"] = canaries
        entry["canary_repeats"] = plan.canaries["repeats"]
        entry["candidates"] = len(plan.candidates)
        entry["space_bits"] = plan.canaries["space_bits"]
        entry["max_exposure_by_rank"] = math.log2(len(plan.candidates) + 1)
    return entry


def canary_exposures(plan: PrivacyPlan, base: list[dict], tuned: list[dict]) -> list[dict]:
    """Per canary: its holder and secret, and for each model its log-perplexity and exposure (by rank, extrapolated)."""
    rows = []
    for canary, base_bits, tuned_bits in zip(plan.canaries["canaries"], base, tuned, strict=True):
        row = {"holder": canary["holder"], "secret": canary["secret"]}
        for which, bits in (("base", base_bits), ("tuned", tuned_bits)):
            row[f"{which}_log_perplexity"] = bits["canary"]
            row[f"{which}_exposure"] = exposure_by_rank(bits["canary"], bits["candidates"])
            row[f"{which}_exposure_extrapolated"] = exposure_extrapolated(bits["canary"], bits["candidates"], plan.canaries["space_bits"])
        rows.append(row)
    return rows


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def dp_budget(dp: dict | None) -> dict | None:
    """The (epsilon, delta) a DP-SGD run spent, from train.json's ``dp`` entry; None without DP."""
    if not dp:
        return None
    return {key: dp[key] for key in ("epsilon", "delta") if key in dp}


def report_rows(entry: dict, metrics: dict) -> ReportTable:
    return ReportTable(report_note(entry), ["measure", "base", "tuned", "delta"], comparison_cells(entry["base"], entry["tuned"]))


def report_note(entry: dict) -> str:
    dp = entry["dp"]
    trained = f"trained with DP-SGD at ε = {dp['epsilon']:g}" + (f", δ = {dp['delta']:g}" if "delta" in dp else "") if dp else "trained without differential privacy"
    note = (
        f"The run was {trained}. Membership inference on {entry['rows']} training and {entry['rows']} test rows: "
        "mia_auc is the ROC AUC of telling them apart by the model's loss (0.5: not at all; lower is better), "
        "mia_auc_calibrated the same by the tuned model's loss minus the base model's."
    )
    if "canaries" not in entry:
        return note + " No canaries were planted (data.canaries: 0), so no exposure is measured."
    return note + (
        f" Canary exposure in bits (Carlini et al. 2019): {len(entry['canaries'])} secrets, each in {entry['canary_repeats']} training rows, "
        f"ranked by log-perplexity among {entry['candidates']} random secrets of a {entry['space_bits']:.1f}-bit space; "
        f"by rank at most {entry['max_exposure_by_rank']:.2f} bits, extrapolated (skew-normal) up to {entry['space_bits']:.1f}; "
        f"a secret the model never saw scores {UNSEEN_EXPOSURE:.2f} bits on average."
    )


def gate_measures(entry: dict) -> dict[str, Measure]:
    names = ["mia_auc"] + (["canary_exposure"] if "canary_exposure" in entry["tuned"] else [])
    return {name: Measure(entry["base"][name], entry["tuned"][name], lower_is_better=True) for name in names}


def privacy_files(plan: PrivacyPlan, base: dict, tuned: dict) -> dict[str, list[dict]]:
    """``privacy.jsonl``: each attacked row with both models' losses, then each canary's figures."""
    rows = [
        {"row": f"{example.source}:{example.line}", "member": member, "base_loss": b, "tuned_loss": t}
        for examples, member, key in ((plan.members, True, "member_losses"), (plan.nonmembers, False, "nonmember_losses"))
        for example, b, t in zip(examples, base[key], tuned[key], strict=True)
    ]
    if plan.canaries:
        rows += [{"canary": True, **row} for row in canary_exposures(plan, base["canaries"], tuned["canaries"])]
    return {"privacy.jsonl": rows}


SUITE = Suite(
    name="privacy",
    label="Privacy",
    heading="Privacy: membership inference and canary exposure",
    applies=applies,
    plan=plan,
    score=score_privacy,
    section=section,
    report_rows=report_rows,
    gate_measures=gate_measures,
    files=privacy_files,
)
