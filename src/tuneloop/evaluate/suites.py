"""Every evaluation suite ``tuneloop eval`` runs, in the order metrics.json and the report show them.

``evaluate_run``, the report, the terminal summary and the retrain gate ask this mapping, never a
suite by module: a new suite is its own module and one line here (see ``evaluate/suite.py``).
"""

from __future__ import annotations

from tuneloop.evaluate import alignment, bias, few_shot, forgetting, hallucination, privacy
from tuneloop.evaluate.suite import Suite

SUITES: dict[str, Suite] = {
    few_shot.SUITE.name: few_shot.SUITE,
    forgetting.SUITE.name: forgetting.SUITE,
    alignment.SUITE.name: alignment.SUITE,
    privacy.SUITE.name: privacy.SUITE,
    hallucination.SUITE.name: hallucination.SUITE,
    bias.SUITE.name: bias.SUITE,
}
