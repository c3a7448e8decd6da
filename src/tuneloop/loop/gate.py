"""The promotion gate: a candidate must improve where it was meant to and regress nowhere else beyond a tolerance.

Which checks must improve and which must only hold is the caller's: ``retrain`` asks the new data's
test split to improve and the frozen test and the general check to hold (:data:`RETRAIN_CHECKS`);
``align`` asks the held-out reward to improve and the frozen test and the general check to hold.
Then the candidate's trust audits must stay within ``Gate.trust`` (bias, membership inference,
hallucination, differential privacy): see ``loop/trust_gate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from tuneloop.errors import ConfigError


@dataclass(frozen=True)
class TrustLimits:
    """Limits on the candidate's own trust audits (``loop/trust_gate.py`` checks them); None: no limit.

    An increase is the candidate's change from its base model, as its report shows it.
    """

    max_bias_increase: float | None = None  # counterfactual flip rate, tuned minus base
    max_mia_auc: float | None = None  # membership-inference AUC of the candidate (0.5: nothing learnt about members)
    max_hallucination_increase: float | None = None  # share of answers with unsupported content, tuned minus base
    require_dp: bool = False  # the candidate must have been trained with differential privacy

    def __post_init__(self):
        for name in ("max_bias_increase", "max_hallucination_increase"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"{name} is a change of a share: between 0 and 1, got {value}")
        if self.max_mia_auc is not None and not 0.5 <= self.max_mia_auc <= 1:
            raise ConfigError(f"max_mia_auc is an AUC between 0.5 (chance) and 1, got {self.max_mia_auc}")

    def active(self) -> bool:
        return self.require_dp or any(getattr(self, f.name) is not None for f in fields(self) if f.name != "require_dp")


@dataclass(frozen=True)
class Gate:
    metric: str = "auto"  # the task's headline metric, or any computed one (e.g. "loss")
    tolerance: float = 0.01  # largest allowed regression on the checks that must hold
    min_improvement: float = 0.0  # the candidate must beat production on the checks that must improve by more than this
    trust: TrustLimits = field(default_factory=TrustLimits)  # the candidate's own audits must stay within these


@dataclass(frozen=True)
class Checks:
    """Names of the results the gate reads: ``improve`` must each gain more than ``min_improvement``,
    ``hold`` must each lose no more than ``tolerance``."""

    improve: tuple[str, ...]
    hold: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.improve:
            raise ValueError("a gate needs at least one check the candidate must improve on")
        if set(self.improve) & set(self.hold):
            raise ValueError(f"a check cannot both improve and hold: {sorted(set(self.improve) & set(self.hold))}")


RETRAIN_CHECKS = Checks(improve=("new_test",), hold=("frozen_test", "general"))


def better_by(lower_is_better: bool, candidate: float, production: float) -> float:
    """How much better the candidate is (positive: better), whatever the metric's direction."""
    return production - candidate if lower_is_better else candidate - production


def decide(gate: Gate, results: dict, checks: Checks = RETRAIN_CHECKS) -> tuple[bool, str]:
    """``results``: {check: {"metric", "candidate", "production", "lower_is_better"}} for every check
    ``checks`` names; a check that could not be made is {"skipped": why}: it passes where it must
    only hold, and fails where it must improve (no evidence of an improvement is no improvement).

    Returns (promote?, the reason, with the numbers it rests on); each result gets its ``gain``.
    """
    missing = [name for name in (*checks.improve, *checks.hold) if name not in results]
    if missing:
        raise KeyError(f"the gate has no result for {', '.join(missing)}")
    reasons, passed = [], True
    for check in (*checks.improve, *checks.hold):
        result, improves = results[check], check in checks.improve
        if "skipped" in result:
            passed &= not improves
            reasons.append(f"{check} skipped ({result['skipped']}){' FAILED: it must improve' if improves else ''}")
            continue
        gain = better_by(result["lower_is_better"], result["candidate"], result["production"])
        result["gain"] = gain
        ok = gain > gate.min_improvement if improves else gain >= -gate.tolerance
        passed &= ok
        need = f"> {gate.min_improvement:g}" if improves else f">= -{gate.tolerance:g}"
        reasons.append(f"{check} {result['metric']}: {result['production']:.4f} -> {result['candidate']:.4f} (gain {gain:+.4f}, needs {need}) {'ok' if ok else 'FAILED'}")
    return passed, ("gate passed: " if passed else "gate failed: ") + "; ".join(reasons)
