"""The gate's trust limits: the candidate's own audits (bias, membership inference, hallucination,
differential privacy) must stay within ``Gate.trust`` before it may become production.

Each limit reads one measure of one evaluation suite (``evaluate/suites.py``) on the candidate's
run: its section in ``audit.json`` (the latest ``tuneloop audit``), else in ``metrics.json``
(``tuneloop eval``), else the suite is run now (``evaluate.audit.audit_run``) and kept there.
An "increase" is the candidate's change from its base model, as the run's report shows it; a
"cap" bounds the candidate's own value. A limit that cannot be checked (the suite does not apply
to the task) fails: no evidence is not evidence of safety.

A candidate that fails a limit stays a candidate; the store keeps the reason as a 'refuse' event.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tuneloop.errors import TuneloopError
from tuneloop.evaluate.audit import AUDIT_FILE, audit_run
from tuneloop.evaluate.suites import SUITES
from tuneloop.loop.gate import TrustLimits
from tuneloop.runs.folder import RunDir, read_json
from tuneloop.store.versions import archive, promote, refuse


class Limit(NamedTuple):
    suite: str  # the evaluation suite that measures it
    measure: str  # the suite's gate measure
    kind: str  # "increase" (candidate minus its base) or "cap" (the candidate's own value)


LIMITS: dict[str, Limit] = {
    "max_bias_increase": Limit("bias", "counterfactual_flip_rate", "increase"),
    "max_mia_auc": Limit("privacy", "mia_auc", "cap"),
    "max_hallucination_increase": Limit("hallucination", "hallucination_rate", "increase"),
}


def trust_results(limits: TrustLimits, candidate_run: str | Path) -> dict[str, dict]:
    """{limit name: {"measure", "value", "limit", "ok", ...}} for every limit that is set."""
    run = RunDir.existing(candidate_run)
    results = {}
    for name, limit in LIMITS.items():
        bound = getattr(limits, name)
        if bound is not None:
            results[name] = limit_result(limit, bound, suite_section(run, limit.suite))
    if limits.require_dp:
        results["require_dp"] = dp_result(run)
    return results


def suite_section(run: RunDir, name: str) -> dict:
    """The run's latest section of suite ``name``: audited, evaluated, or measured now."""
    audits = read_json(run.path / AUDIT_FILE) if (run.path / AUDIT_FILE).is_file() else {}
    if name in audits:
        return audits[name]
    if run.has_metrics() and name in run.metrics() and "skipped" not in run.metrics()[name]:
        return run.metrics()[name]
    try:
        return audit_run(run.path, name)
    except TuneloopError as err:  # e.g. the suite does not apply to this task
        return {"skipped": str(err)}


def limit_result(limit: Limit, bound: float, section: dict) -> dict:
    if "skipped" in section:
        return {"suite": limit.suite, "measure": limit.measure, "limit": bound, "ok": False, "why": f"not measured: {section['skipped']}"}
    measures = SUITES[limit.suite].gate_measures(section)
    if limit.measure not in measures:  # e.g. no test prompt named a demographic term
        return {"suite": limit.suite, "measure": limit.measure, "limit": bound, "ok": False, "why": f"{limit.measure} not measured on this run"}
    measure = measures[limit.measure]
    if limit.kind == "increase":
        worse_by = measure.tuned - measure.base if measure.lower_is_better else measure.base - measure.tuned
        return {"suite": limit.suite, "measure": limit.measure, "base": measure.base, "candidate": measure.tuned,
                "value": worse_by, "limit": bound, "ok": worse_by <= bound}  # fmt: skip
    return {"suite": limit.suite, "measure": limit.measure, "candidate": measure.tuned, "value": measure.tuned, "limit": bound, "ok": measure.tuned <= bound}


def dp_result(run: RunDir) -> dict:
    dp = run.train_summary().get("dp") if run.train_summary_file.is_file() else None
    if not dp:
        return {"measure": "dp_epsilon", "ok": False, "why": "trained without differential privacy"}
    return {"measure": "dp_epsilon", "value": dp["epsilon"], "delta": dp.get("delta"), "ok": True}


def decide_trust(results: dict[str, dict]) -> tuple[bool, str]:
    """(every limit held?, the reason with its numbers)."""
    reasons = [describe(name, result) for name, result in results.items()]
    passed = all(result["ok"] for result in results.values())
    return passed, ("trust limits held: " if passed else "trust limits failed: ") + "; ".join(reasons)


def describe(name: str, result: dict) -> str:
    verdict = "ok" if result["ok"] else "FAILED"
    if "why" in result:
        return f"{name}: {result['why']} {verdict}"
    if name == "require_dp":
        return f"{name}: trained at epsilon {result['value']:.3g} {verdict}"
    if "base" in result:
        return f"{name} {result['measure']}: {result['base']:.4f} -> {result['candidate']:.4f} (worse by {result['value']:+.4f}, limit {result['limit']:g}) {verdict}"
    return f"{name} {result['measure']}: {result['value']:.4f} (limit {result['limit']:g}) {verdict}"


class Settled(NamedTuple):
    promoted: bool
    reason: str
    trust: dict[str, dict]  # the trust limits' results ({} when none were set or the gate failed before them)
    action: str = "promote"  # the stage change that records it: "promote", "archive" or "refuse"


def judge_candidate(candidate_run: str | Path, limits: TrustLimits, passed: bool, reason: str) -> Settled:
    """After the gate's checks: promote the candidate when they passed and its trust limits hold; archive it when
    the checks failed; when only the trust limits failed, it stays a candidate with the reason in the store.
    Measures what the limits need (the candidate's audits) and changes nothing in the store."""
    if not passed:
        return Settled(False, reason, {}, "archive")
    trust = trust_results(limits, candidate_run) if limits.active() else {}
    trusted, why = decide_trust(trust) if trust else (True, "")
    reason = f"{reason}; {why}" if why else reason
    return Settled(trusted, reason, trust, "promote" if trusted else "refuse")


STAGE_CHANGES = {"promote": promote, "archive": archive, "refuse": refuse}


def record_settled(conn, candidate_id: str, settled: Settled) -> None:
    STAGE_CHANGES[settled.action](conn, candidate_id, settled.reason)


def settle_candidate(conn, candidate_id: str, candidate_run: str | Path, limits: TrustLimits, passed: bool, reason: str) -> Settled:
    """:func:`judge_candidate`, then its stage change in the store."""
    settled = judge_candidate(candidate_run, limits, passed, reason)
    record_settled(conn, candidate_id, settled)
    return settled
