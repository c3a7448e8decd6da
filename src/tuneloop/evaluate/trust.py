"""The Trust entry of ``metrics.json``: the run's risks at one glance, from what the run already measured.

It gathers, without scoring anything again:

- how the training data's personal data was handled (``data.json``'s ``pii``: placeholders per type),
  and the canaries planted to audit memorisation (``data.json``'s ``canaries``);
- whether training was differentially private (``train.json``'s ``dp``: epsilon, delta);
- the gate measures of every trust suite (forgetting, privacy, bias, hallucination) base vs tuned,
  or why a suite was not measured.

The report shows it first among the suites, and the model card (``evaluate/model_card.py``) reads it.
"""

from __future__ import annotations

from tuneloop.evaluate.suite import ReportTable
from tuneloop.evaluate.suites import SUITES
from tuneloop.evaluate.table_cells import fmt, fmt_delta
from tuneloop.runs.folder import RunDir

TRUST_SUITES = ("forgetting", "privacy", "bias", "hallucination")  # the suites whose measures are risks of fine-tuning
TRUST_KEY = "trust"


def run_trust_section(run: RunDir, metrics: dict) -> dict:
    """The trust entry of a run whose suites' sections are in ``metrics``."""
    return trust_section(metrics, run.manifest(), run.train_summary() if run.train_summary_file.is_file() else {})


def trust_section(metrics: dict, manifest: dict, train_summary: dict) -> dict:
    """metrics.json's ``trust`` entry from the run's data.json, train.json and its suites' sections."""
    measures, not_measured = {}, {}
    for name in TRUST_SUITES:
        section = metrics.get(name)
        if name not in SUITES or section is None:
            not_measured[name] = "not run (tuneloop eval or tuneloop audit measures it)"
        elif "skipped" in section:
            not_measured[name] = section["skipped"]
        else:
            measures[name] = {
                measure: {"base": value.base, "tuned": value.tuned, "lower_is_better": value.lower_is_better}
                for measure, value in SUITES[name].gate_measures(section).items()
            }
    pii = manifest.get("pii")
    return {
        "personal_data": {"scrubbed": True, "placeholders": pii["placeholders"], "rows_with_pii": pii["rows_with_pii"]} if pii else {"scrubbed": False},
        "canaries": {"count": len(manifest["canaries"]["canaries"]), "repeats": manifest["canaries"]["repeats"]} if manifest.get("canaries") else None,
        "differential_privacy": {k: train_summary["dp"][k] for k in ("epsilon", "delta") if k in train_summary["dp"]} if train_summary.get("dp") else None,
        "measures": measures,
        "not_measured": not_measured,
    }


def trust_facts(section: dict) -> list[str]:
    """The data-handling and training facts as sentences."""
    pii, dp = section["personal_data"], section["differential_privacy"]
    if pii["scrubbed"]:
        found = ", ".join(f"{kind} {count}" for kind, count in pii["placeholders"].items() if count) or "none found"
        facts = [f"Personal data in the training data was replaced by typed placeholders (data.scrub_pii): {found}; {pii['rows_with_pii']} rows had some."]
    else:
        facts = ["Personal data in the training data was not scrubbed (data.scrub_pii off): the model may have seen it verbatim."]
    if dp:
        facts.append(f"Trained with differential privacy: epsilon {dp['epsilon']:.3g}, delta {dp.get('delta', float('nan')):.2g} over training rows.")
    else:
        facts.append("Trained without differential privacy (train.dp_epsilon unset): no formal bound on what it memorised.")
    if section.get("canaries"):
        facts.append(f"Canaries planted to audit memorisation: {section['canaries']['count']} secrets, each in {section['canaries']['repeats']} training rows.")
    return facts


def trust_rows(section: dict) -> ReportTable:
    """The report's Trust table: every trust measure base vs tuned, then what was not measured."""
    rows = []
    for suite, measures in section["measures"].items():
        for measure, value in measures.items():
            delta = value["tuned"] - value["base"]
            better = delta < 0 if value["lower_is_better"] else delta > 0
            colour = "num" if not delta else "num better" if better else "num worse"
            rows.append([suite, measure, (fmt(value["base"]), "num"), (fmt(value["tuned"]), "num"), (fmt_delta(delta), colour)])
    missing = "; ".join(f"{suite}: {why}" for suite, why in section["not_measured"].items())
    note = " ".join(trust_facts(section)) + (f" Not measured: {missing}." if missing else "")
    return ReportTable(note, ["suite", "measure", "base", "tuned", "delta"], rows)
