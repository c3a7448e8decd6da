"""The promotion gate's decision: each check's direction comes with its result; a skipped check passes."""

from __future__ import annotations

from tuneloop.loop.gate import Gate, decide


def check(metric: str, production: float, candidate: float, lower_is_better: bool) -> dict:
    return {"metric": metric, "production": production, "candidate": candidate, "lower_is_better": lower_is_better}


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
