"""The promotion gate: better on the new data by more than min_improvement, no regression beyond the tolerance."""

from __future__ import annotations

import pytest

from tuneloop.loop.gate import RETRAIN_CHECKS, Checks, Gate, better_by, decide
from tuneloop.text.metrics import LOWER_IS_BETTER

# Values chosen to be exact in binary, so a gain lands exactly on a threshold where a test says so.


def check(metric: str, production: float, candidate: float, lower_is_better: bool | None = None) -> dict:
    lower = metric in LOWER_IS_BETTER if lower_is_better is None else lower_is_better
    return {"metric": metric, "production": production, "candidate": candidate, "lower_is_better": lower}


def results(new=(0.5, 0.75), frozen=(0.75, 0.75), general=(0.5, 0.5), metric="accuracy", general_metric="general_accuracy") -> dict:
    """{check: result} as retrain's compare step hands them to decide; each pair is (production, candidate)."""
    return {
        "new_test": check(metric, *new),
        "frozen_test": check(metric, *frozen),
        "general": check(general_metric, *general),
    }


def verdicts(reason: str) -> dict[str, str]:
    """{check: "ok" | "FAILED"} from the reason decide returns."""
    body = reason.split(": ", 1)[1]
    return {part.split()[0]: part.rsplit(" ", 1)[1] for part in body.split("; ")}


def test_defaults():
    assert Gate() == Gate(metric="auto", tolerance=0.01, min_improvement=0.0)


@pytest.mark.parametrize(
    ("metric", "candidate", "production", "gain"),
    [
        ("accuracy", 0.75, 0.5, 0.25),
        ("accuracy", 0.5, 0.75, -0.25),
        ("loss", 1.0, 1.5, 0.5),  # lower is better: a lower loss is a gain
        ("loss", 2.0, 1.5, -0.5),
        ("perplexity", 8.0, 12.0, 4.0),
        ("perplexity", 12.0, 8.0, -4.0),
    ],
)
def test_better_by_is_positive_when_the_candidate_is_better_in_the_metrics_direction(metric, candidate, production, gain):
    assert better_by(metric in LOWER_IS_BETTER, candidate, production) == gain


def test_passes_when_the_new_data_improves_and_nothing_regresses():
    scored = results(new=(0.5, 0.75), frozen=(0.75, 0.75), general=(0.5, 0.5))
    passed, reason = decide(Gate(), scored)
    assert passed
    assert reason.startswith("gate passed: ")
    assert verdicts(reason) == {"new_test": "ok", "frozen_test": "ok", "general": "ok"}
    assert [scored[name]["gain"] for name in ("new_test", "frozen_test", "general")] == [0.25, 0.0, 0.0]  # recorded for retrain.json


def test_the_reason_carries_the_numbers_it_rests_on():
    _, reason = decide(Gate(tolerance=0.25, min_improvement=0.125), results(new=(0.5, 0.75)))
    assert "new_test accuracy: 0.5000 -> 0.7500 (gain +0.2500, needs > 0.125) ok" in reason
    assert "frozen_test accuracy: 0.7500 -> 0.7500 (gain +0.0000, needs >= -0.25) ok" in reason
    assert "general general_accuracy: 0.5000 -> 0.5000 (gain +0.0000, needs >= -0.25) ok" in reason


@pytest.mark.parametrize(
    ("new", "min_improvement"),
    [
        ((0.75, 0.75), 0.0),  # no change is not an improvement
        ((0.75, 0.5), 0.0),  # worse on the new data
        ((0.5, 0.75), 0.25),  # exactly the minimum: it must be beaten, not met
        ((0.5, 0.625), 0.25),
    ],
)
def test_refused_when_the_new_data_does_not_improve_by_more_than_the_minimum(new, min_improvement):
    passed, reason = decide(Gate(min_improvement=min_improvement), results(new=new))
    assert not passed
    assert reason.startswith("gate failed: ")
    assert verdicts(reason) == {"new_test": "FAILED", "frozen_test": "ok", "general": "ok"}


def test_an_improvement_above_the_minimum_passes():
    assert decide(Gate(min_improvement=0.125), results(new=(0.5, 0.75)))[0]


@pytest.mark.parametrize(("check_name", "argument"), [("frozen_test", "frozen"), ("general", "general")])
def test_refused_when_the_old_test_or_the_general_check_regresses_beyond_the_tolerance(check_name, argument):
    passed, reason = decide(Gate(tolerance=0.25), results(**{argument: (0.75, 0.25)}))  # down by 0.5
    assert not passed
    assert reason.startswith("gate failed: ")
    assert verdicts(reason) == {"new_test": "ok", "frozen_test": "ok", "general": "ok", check_name: "FAILED"}
    assert "0.7500 -> 0.2500 (gain -0.5000, needs >= -0.25) FAILED" in reason


@pytest.mark.parametrize("argument", ["frozen", "general"])
def test_a_regression_within_the_tolerance_passes(argument):
    assert decide(Gate(tolerance=0.25), results(**{argument: (0.75, 0.5)}))[0]  # down by exactly the tolerance


def test_every_failing_check_is_named():
    passed, reason = decide(Gate(tolerance=0.125), results(new=(0.5, 0.5), frozen=(0.75, 0.5), general=(0.5, 0.25)))
    assert not passed
    assert verdicts(reason) == {"new_test": "FAILED", "frozen_test": "FAILED", "general": "FAILED"}


def test_lower_is_better_metrics_pass_when_the_loss_falls():
    # retrain --gate-metric loss: the tests are scored by loss, the general check stays an accuracy.
    scored = results(new=(2.0, 1.5), frozen=(1.0, 1.0625), general=(0.5, 0.5), metric="loss")
    passed, reason = decide(Gate(tolerance=0.125), scored)
    assert passed, reason
    assert scored["new_test"]["gain"] == 0.5 and scored["frozen_test"]["gain"] == -0.0625


@pytest.mark.parametrize("metric", ["loss", "perplexity"])
def test_lower_is_better_metrics_are_refused_when_they_rise(metric):
    higher_on_new = results(new=(1.5, 2.0), metric=metric)  # a higher loss read as a gain would pass this
    assert verdicts(decide(Gate(), higher_on_new)[1])["new_test"] == "FAILED"
    higher_on_frozen = results(new=(2.0, 1.5), frozen=(1.0, 1.5), metric=metric)
    passed, reason = decide(Gate(tolerance=0.25), higher_on_frozen)
    assert not passed
    assert verdicts(reason) == {"new_test": "ok", "frozen_test": "FAILED", "general": "ok"}


def test_lower_is_better_checks_gain_when_the_number_falls():
    results = {"new_test": check("loss", 2.0, 1.5, True), "frozen_test": check("loss", 1.0, 1.005, True),
               "general": check("qa_accuracy", 0.75, 0.745, False)}  # fmt: skip
    promoted, reason = decide(Gate(tolerance=0.01), results)
    assert promoted, reason
    assert results["new_test"]["gain"] == 0.5 and "general qa_accuracy: 0.7500 -> 0.7450" in reason


def test_a_general_regression_beyond_the_tolerance_fails_and_a_skipped_check_passes():
    results = {"new_test": check("rouge_l", 0.2, 0.5, False), "frozen_test": check("rouge_l", 0.4, 0.4, False),
               "general": check("qa_accuracy", 0.75, 0.6, False)}  # fmt: skip
    promoted, reason = decide(Gate(tolerance=0.01), results)
    assert not promoted and "general qa_accuracy" in reason and "FAILED" in reason
    results["general"] = {"skipped": "not measured: task 'classify' predicts labels and does not generate text"}
    promoted, reason = decide(Gate(tolerance=0.01), results)
    assert promoted and "general skipped (not measured: task 'classify'" in reason


# --- the checks are the caller's: align gates on the held-out reward ----------------------------

ALIGN = Checks(improve=("reward",), hold=("frozen_test", "general"))


def align_results(reward=(0.25, 0.5), frozen=(0.75, 0.75), general=(0.5, 0.5)) -> dict:
    return {"reward": check("mean_reward", *reward, lower_is_better=False), "frozen_test": check("accuracy", *frozen),
            "general": check("qa_accuracy", *general)}  # fmt: skip


def test_retrain_checks_are_the_default():
    assert RETRAIN_CHECKS == Checks(improve=("new_test",), hold=("frozen_test", "general"))
    scored = results()
    assert decide(Gate(), scored) == decide(Gate(), results(), RETRAIN_CHECKS)


def test_align_checks_gate_on_the_reward_and_ignore_checks_not_named():
    scored = {**align_results(), "win_rate": check("win_rate", 0.5, 0.0, lower_is_better=False)}  # recorded, not gated
    passed, reason = decide(Gate(), scored, ALIGN)
    assert passed, reason
    assert verdicts(reason) == {"reward": "ok", "frozen_test": "ok", "general": "ok"}
    assert "reward mean_reward: 0.2500 -> 0.5000 (gain +0.2500, needs > 0)" in reason and "win_rate" not in reason


def test_align_refuses_a_reward_that_does_not_improve_and_a_frozen_regression():
    assert verdicts(decide(Gate(), align_results(reward=(0.5, 0.5)), ALIGN)[1])["reward"] == "FAILED"
    passed, reason = decide(Gate(tolerance=0.125), align_results(frozen=(0.75, 0.5)), ALIGN)
    assert not passed and verdicts(reason) == {"reward": "ok", "frozen_test": "FAILED", "general": "ok"}


def test_a_skipped_check_that_must_improve_fails_and_one_that_must_hold_passes():
    scored = align_results()
    scored["reward"] = {"skipped": "no held-out prompts"}
    passed, reason = decide(Gate(), scored, ALIGN)
    assert not passed and "reward skipped (no held-out prompts) FAILED: it must improve" in reason
    scored = align_results()
    scored["general"] = {"skipped": "task does not generate"}
    assert decide(Gate(), scored, ALIGN)[0]


def test_checks_must_name_an_improvement_and_exist_in_the_results():
    with pytest.raises(ValueError, match="at least one check"):
        Checks(improve=())
    with pytest.raises(ValueError, match="both improve and hold"):
        Checks(improve=("reward",), hold=("reward",))
    with pytest.raises(KeyError, match="no result for new_test"):
        decide(Gate(), align_results())


def test_trust_limits_are_checked_when_set_and_only_then_active():
    from tuneloop.errors import ConfigError
    from tuneloop.loop.gate import TrustLimits

    assert not TrustLimits().active() and TrustLimits(require_dp=True).active() and TrustLimits(max_bias_increase=0.0).active()
    with pytest.raises(ConfigError, match="max_bias_increase is a change of a share"):
        TrustLimits(max_bias_increase=1.5)
    with pytest.raises(ConfigError, match="between 0.5 \\(chance\\) and 1"):
        TrustLimits(max_mia_auc=0.4)


def test_decide_trust_fails_on_any_limit_and_says_each_with_its_numbers():
    from tuneloop.loop.trust_gate import decide_trust

    results = {
        "max_bias_increase": {"measure": "counterfactual_flip_rate", "base": 0.1, "candidate": 0.3, "value": 0.2, "limit": 0.05, "ok": False},
        "max_mia_auc": {"measure": "mia_auc", "candidate": 0.55, "value": 0.55, "limit": 0.6, "ok": True},
        "require_dp": {"measure": "dp_epsilon", "ok": False, "why": "trained without differential privacy"},
    }
    passed, reason = decide_trust(results)
    assert not passed and reason.startswith("trust limits failed: ")
    assert "max_bias_increase counterfactual_flip_rate: 0.1000 -> 0.3000 (worse by +0.2000, limit 0.05) FAILED" in reason
    assert "max_mia_auc mia_auc: 0.5500 (limit 0.6) ok" in reason
    assert "require_dp: trained without differential privacy FAILED" in reason
    assert decide_trust({"max_mia_auc": results["max_mia_auc"]})[0]
