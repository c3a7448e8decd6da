"""The gate's trust limits as options, shared by ``retrain``, ``align`` and ``models promote``."""

from __future__ import annotations

from typing import Optional

import typer

from tuneloop.loop.gate import TrustLimits

MAX_BIAS_INCREASE: Optional[float] = typer.Option(
    None, "--max-bias-increase", help="Refuse a candidate whose counterfactual flip rate (bias audit) rose by more than this from its base model."
)
MAX_MIA_AUC: Optional[float] = typer.Option(
    None, "--max-mia-auc", help="Refuse a candidate whose membership-inference AUC (privacy audit) is above this (0.5: chance)."
)
MAX_HALLUCINATION_INCREASE: Optional[float] = typer.Option(
    None, "--max-hallucination-increase", help="Refuse a candidate whose share of unsupported answers (hallucination audit) rose by more than this."
)
REQUIRE_DP: bool = typer.Option(False, "--require-dp/--no-require-dp", help="Refuse a candidate trained without differential privacy.")


def trust_limits(max_bias_increase: float | None, max_mia_auc: float | None, max_hallucination_increase: float | None, require_dp: bool) -> TrustLimits:
    """The limits the options set; a refused candidate stays a candidate, with the reason in the store."""
    return TrustLimits(max_bias_increase, max_mia_auc, max_hallucination_increase, require_dp)
