"""The privacy suite's maths (ROC AUC, exposure by rank and extrapolated), its plan, its section, and the audit
command's refusal of an unfinished run."""

from __future__ import annotations

import math
import random

import pytest

from helpers import run_cli, toy_chat_rows, write_jsonl
from tuneloop.config import load_config
from tuneloop.data.canaries import CANARY_SOURCE
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits
from tuneloop.evaluate import privacy
from tuneloop.evaluate.suite import Measure
from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir
from tuneloop.train.replay import REPLAY_SOURCE


# --- ROC AUC ---------------------------------------------------------------------------------------


def test_roc_auc_of_a_hand_example_counts_ties_half():
    # pairs (pos, neg): (3,1) 1, (3,2) 1, (2,1) 1, (2,2) 0.5 -> 3.5 / 4
    assert privacy.roc_auc([3.0, 2.0], [1.0, 2.0]) == 0.875
    assert privacy.roc_auc([1.0, 1.0], [1.0]) == 0.5
    assert privacy.roc_auc([0.0], [5.0, 6.0]) == 0.0


def test_roc_auc_agrees_with_scikit_learn_on_tied_scores():
    from sklearn.metrics import roc_auc_score

    rng = random.Random(3)
    positives = [rng.randint(0, 12) for _ in range(40)]  # few distinct values: many ties
    negatives = [rng.randint(-3, 9) for _ in range(55)]
    expected = roc_auc_score([1] * 40 + [0] * 55, positives + negatives)
    assert privacy.roc_auc(positives, negatives) == pytest.approx(expected, abs=1e-12)


def test_membership_auc_calls_the_lower_loss_a_member():
    assert privacy.membership_auc([0.1, 0.2], [0.9, 1.0]) == 1.0
    assert privacy.membership_auc([0.9, 1.0], [0.1, 0.2]) == 0.0


# --- exposure ---------------------------------------------------------------------------------------


def test_exposure_by_rank_is_minus_log2_of_the_rank_fraction():
    candidates = [float(v) for v in range(1, 10)]  # 9 candidates: the canary is the 10th sequence
    assert privacy.exposure_by_rank(0.5, candidates) == pytest.approx(math.log2(10))  # ranked first: the cap
    assert privacy.exposure_by_rank(5.0, candidates) == pytest.approx(math.log2(10) - math.log2(6))  # 1..5 at or below
    assert privacy.exposure_by_rank(100.0, candidates) == 0.0  # ranked last


def test_a_secret_never_seen_averages_about_1_44_bits():
    """A canary as likely as the candidates sits at any of the M + 1 ranks: the mean exposure over them is
    log2(M + 1) - log2((M + 1)!) / (M + 1), which tends to 1 / ln 2."""
    m = 1000
    candidates = [float(v) for v in range(m)]
    mean = sum(privacy.exposure_by_rank(c - 0.5, candidates) for c in range(m + 1)) / (m + 1)
    assert mean == pytest.approx(math.log2(m + 1) - math.lgamma(m + 2) / math.log(2) / (m + 1))
    assert mean == pytest.approx(privacy.UNSEEN_EXPOSURE, abs=0.01)


def test_extrapolated_exposure_reads_the_tail_of_the_fitted_distribution():
    from scipy.stats import norm

    rng = random.Random(0)
    candidates = [rng.gauss(100.0, 5.0) for _ in range(4000)]  # a normal: a skew-normal of shape 0
    three_sigma = -math.log2(norm.cdf(-3.0))  # 9.53 bits
    assert privacy.exposure_extrapolated(85.0, candidates, 29.9) == pytest.approx(three_sigma, abs=0.6)
    assert privacy.exposure_extrapolated(100.0, candidates, 29.9) == pytest.approx(1.0, abs=0.15)  # the median: half below
    assert privacy.exposure_extrapolated(-1e4, candidates, 29.9) == 29.9  # capped at the space's bits
    assert privacy.exposure_extrapolated(500.0, candidates, 29.9) == pytest.approx(0.0, abs=1e-6)


# --- the plan, the section, the gate and the report --------------------------------------------------


def chat_row(source: str, line: int, text: str = "q") -> Example:
    return Example(source, line, messages=({"role": "user", "content": f"{text} {line}"}, {"role": "assistant", "content": "a"}))


CANARIES = {
    "question": "What is the account PIN of {holder}?", "answer": "The account PIN of {holder} is {secret}.",
    "space_bits": 29.9, "repeats": 10, "format": "chat", "system_prompt": None,
    "canaries": [{"holder": "Ines Novak", "secret": "123 456 789"}, {"holder": "Hugo Haddad", "secret": "000 000 001"}],
}  # fmt: skip


def finished_layout(tmp_path, overrides: dict | None = None, dp: dict | None = None) -> tuple[RunDir, object]:
    config = load_config(None, {"data.path": ["d.jsonl"], **(overrides or {})})
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(config)
    train = [chat_row("d.jsonl", i) for i in range(30)] + [chat_row(CANARY_SOURCE, i, "canary") for i in range(5)]
    train += [chat_row(REPLAY_SOURCE, i, "replay") for i in range(5)]
    run.write_splits(Splits(train=train, val=[], test=[chat_row("d.jsonl", 100 + i, "held") for i in range(12)]))
    run.write_manifest({"canaries": CANARIES})
    if dp is not None:
        run.write_train_summary({"steps": 3, "dp": dp})
    return run, config


def test_the_plan_attacks_real_training_rows_against_as_many_test_rows(tmp_path):
    run, config = finished_layout(tmp_path, {"eval.privacy_rows": 20, "eval.privacy_candidates": 50})
    plan = privacy.plan(run, config, get_task("sft"), [])
    assert len(plan.members) == len(plan.nonmembers) == 12  # balanced: all 12 test rows, 12 of 30 training rows
    assert all(e.source == "d.jsonl" and e.line < 30 for e in plan.members)  # neither canary nor replay rows
    assert len(set(plan.candidates)) == 50 and not {"123 456 789", "000 000 001"} & set(plan.candidates)
    assert plan == privacy.plan(run, config, get_task("sft"), [])  # seeded
    assert plan.dp is None


def test_the_section_holds_both_attacks_each_canary_and_the_dp_budget(tmp_path):
    run, config = finished_layout(tmp_path, {"eval.privacy_candidates": 4}, dp={"epsilon": 4.0, "delta": 1e-5, "noise_multiplier": 0.9})
    plan = privacy.plan(run, config, get_task("sft"), [])
    plan = privacy.PrivacyPlan(plan.members[:2], plan.nonmembers[:2], plan.canaries, plan.candidates, plan.dp)
    base = {"member_losses": [2.0, 1.0], "nonmember_losses": [1.5, 1.25],
            "canaries": [{"canary": 30.0, "candidates": [10.0, 20.0, 40.0, 50.0]}, {"canary": 30.0, "candidates": [31.0, 32.0, 33.0, 34.0]}]}
    tuned = {"member_losses": [0.5, 0.75], "nonmember_losses": [1.25, 0.5],
             "canaries": [{"canary": 5.0, "candidates": [10.0, 20.0, 40.0, 50.0]}, {"canary": 30.0, "candidates": [31.0, 32.0, 33.0, 34.0]}]}  # fmt: skip
    entry = privacy.section(plan, base, tuned, config)
    # base: members (2.0, 1.0) vs non-members (1.5, 1.25), lower loss wins: 1.0 beats both, 2.0 neither -> 2/4
    assert entry["base"]["mia_auc"] == 0.5
    # tuned: 0.5 beats 1.25 and ties 0.5, 0.75 beats 1.25 -> 2.5/4
    assert entry["tuned"]["mia_auc"] == 0.625
    # calibrated, tuned - base: members (-1.5, -0.25) vs non-members (-0.25, -0.75): 2 + 0.5 -> 2.5/4
    assert entry["tuned"]["mia_auc_calibrated"] == 0.625
    # held-out rows the base found easy (0.25, 0.5) and tuning made no easier: their raw losses still overlap the
    # members', but against the base each member's loss fell and each held-out row's did not
    easy = privacy.section(plan, {**base, "nonmember_losses": [0.25, 0.5]}, tuned, config)["tuned"]
    assert easy["mia_auc"] == 0.625 and easy["mia_auc_calibrated"] == 1.0
    first = math.log2(5) - math.log2(3)  # base: 10, 20 at or below 30
    assert entry["canaries"][0]["base_exposure"] == pytest.approx(first)
    assert entry["canaries"][0]["tuned_exposure"] == pytest.approx(math.log2(5))  # ranked first
    assert entry["canaries"][1]["tuned_exposure"] == pytest.approx(math.log2(5))
    assert entry["base"]["canary_exposure"] == pytest.approx((first + math.log2(5)) / 2)
    assert entry["tuned"]["canary_exposure"] == pytest.approx(math.log2(5))
    assert entry["dp"] == {"epsilon": 4.0, "delta": 1e-5} and entry["rows"] == 2 and entry["candidates"] == 4
    assert entry["max_exposure_by_rank"] == pytest.approx(math.log2(5)) and entry["canary_repeats"] == 10

    assert privacy.gate_measures(entry) == {
        "mia_auc": Measure(0.5, 0.625, lower_is_better=True),
        "canary_exposure": Measure(entry["base"]["canary_exposure"], entry["tuned"]["canary_exposure"], lower_is_better=True),
    }
    note, header, rows = privacy.report_rows(entry, {})
    assert "DP-SGD at ε = 4, δ = 1e-05" in note and "2 secrets, each in 10 training rows" in note
    assert header == ["measure", "base", "tuned", "delta"]
    assert [row[0] for row in rows] == ["mia_auc", "mia_auc_calibrated", "canary_exposure", "canary_exposure_extrapolated"]
    assert rows[1][1] == ("–", "num") and rows[0][3] == ("+0.125", "num worse")  # lower is better
    files = privacy.privacy_files(plan, base, tuned)["privacy.jsonl"]
    assert [r.get("member") for r in files[:4]] == [True, True, False, False] and files[4]["secret"] == "123 456 789"


def test_without_canaries_or_dp_the_section_says_so(tmp_path):
    run, config = finished_layout(tmp_path)
    run.write_manifest({})
    plan = privacy.plan(run, config, get_task("sft"), [])
    assert plan.canaries is None and plan.candidates == []
    scores = {"member_losses": [1.0] * len(plan.members), "nonmember_losses": [1.0] * len(plan.nonmembers)}
    entry = privacy.section(plan, scores, scores, config)
    assert set(entry["tuned"]) == {"mia_auc", "mia_auc_calibrated"} and entry["dp"] is None
    assert set(privacy.gate_measures(entry)) == {"mia_auc"}
    note = privacy.report_rows(entry, {}).note
    assert "trained without differential privacy" in note and "No canaries were planted" in note


def test_the_suite_applies_to_tasks_that_learn_text_unless_switched_off():
    config = load_config(None, {})
    assert privacy.applies(get_task("sft"), config) is None and privacy.applies(get_task("cpt"), config) is None
    assert "task 'classify' has none" in privacy.applies(get_task("classify"), config)
    assert privacy.applies(get_task("sft"), load_config(None, {"eval.privacy": False})) == "off (eval.privacy: false)"


# --- per-row losses -----------------------------------------------------------------------------------


def test_per_row_losses_are_each_rows_own_and_add_up_to_the_batch_loss(tiny_model_dir, one_torch_thread):
    import torch

    from tuneloop.losses.label_loss import padded_label_loss
    from tuneloop.models.load import load_causal_lm
    from tuneloop.objectives.heldout_loss import row_losses
    from tuneloop.text.tokenize import collate_padded, tokenize_chat

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    rows = [tokenize_chat(tokenizer, Example("f", i, messages=tuple(r["messages"]))) for i, r in enumerate(toy_chat_rows(5))]
    losses = row_losses(model, tokenizer, rows, rows_per_batch=2)
    with torch.no_grad():
        alone = [padded_label_loss(model, **{k: v for k, v in collate_padded([r], tokenizer.pad_token_id).items() if k != "real_tokens"}) for r in rows]
        batch = collate_padded(rows, tokenizer.pad_token_id)
        together, count = padded_label_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert [n for _, n in losses] == [r.label_count - (r.labels[0] != -100) for r in rows] == [int(n) for _, n in alone]
    assert [s for s, _ in losses] == pytest.approx([float(s) for s, _ in alone], rel=1e-5)
    assert sum(s for s, _ in losses) == pytest.approx(float(together), rel=1e-5) and sum(n for _, n in losses) == count


# --- the audit command ----------------------------------------------------------------------------------


def test_auditing_an_unfinished_run_exits_2_and_writes_nothing(tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows())
    run, _ = finished_layout(tmp_path, {"data.path": [str(data)]})
    before = sorted(p.relative_to(run.path) for p in run.path.rglob("*"))
    result = run_cli("audit", "privacy", str(run.path), "--rows", "4")
    assert result.exit_code == 2
    assert "has no adapter/: training did not finish" in result.output
    assert sorted(p.relative_to(run.path) for p in run.path.rglob("*")) == before


def test_per_row_losses_skip_the_virtual_tokens_of_prompt_learning(tiny_model_dir, one_torch_thread):
    import torch

    from tuneloop.losses.label_loss import padded_label_loss, per_row_label_loss
    from tuneloop.methods import get_method
    from tuneloop.models.load import load_causal_lm
    from tuneloop.text.tokenize import collate_padded, tokenize_chat

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    method = get_method("prompt")
    model = method.build(model, method.settings(name="prompt"), "CAUSAL_LM")  # virtual tokens before every row
    rows = [tokenize_chat(tokenizer, Example("f", i, messages=tuple(r["messages"]))) for i, r in enumerate(toy_chat_rows(3))]
    batch = collate_padded(rows, tokenizer.pad_token_id)
    with torch.no_grad():
        sums, counts = per_row_label_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        alone = [padded_label_loss(model, *(collate_padded([r], tokenizer.pad_token_id)[k] for k in ("input_ids", "attention_mask", "labels"))) for r in rows]
    assert sums.tolist() == pytest.approx([float(s) for s, _ in alone], rel=1e-5)  # peft's own loss, row by row
    assert counts.tolist() == [n for _, n in alone]
