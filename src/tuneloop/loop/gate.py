"""The promotion gate: a candidate must improve on the new data and regress nowhere else beyond a tolerance."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gate:
    metric: str = "auto"  # the task's headline metric, or any computed one (e.g. "loss")
    tolerance: float = 0.01  # largest allowed regression on the frozen test and the general check
    min_improvement: float = 0.0  # the candidate must beat production on the new data by more than this


def better_by(lower_is_better: bool, candidate: float, production: float) -> float:
    """How much better the candidate is (positive: better), whatever the metric's direction."""
    return production - candidate if lower_is_better else candidate - production


def decide(gate: Gate, results: dict) -> tuple[bool, str]:
    """``results``: {check: {"metric", "candidate", "production", "lower_is_better"}} for frozen_test,
    new_test, general; a check that could not be made is {"skipped": why} and passes.

    Returns (promote?, the reason, with the numbers it rests on).
    """
    reasons, passed = [], True
    for check in ("new_test", "frozen_test", "general"):
        result = results[check]
        if "skipped" in result:
            reasons.append(f"{check} skipped ({result['skipped']})")
            continue
        gain = better_by(result["lower_is_better"], result["candidate"], result["production"])
        result["gain"] = gain
        ok = gain > gate.min_improvement if check == "new_test" else gain >= -gate.tolerance
        passed &= ok
        need = f"> {gate.min_improvement:g}" if check == "new_test" else f">= -{gate.tolerance:g}"
        reasons.append(f"{check} {result['metric']}: {result['production']:.4f} -> {result['candidate']:.4f} (gain {gain:+.4f}, needs {need}) {'ok' if ok else 'FAILED'}")
    return passed, ("gate passed: " if passed else "gate failed: ") + "; ".join(reasons)
