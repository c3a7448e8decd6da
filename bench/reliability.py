"""The hostile-data and crash suites (tests/reliability), run once, their figures written down.

    python bench/reliability.py

runs ``pytest tests/reliability/test_hostile_data.py tests/reliability/test_crash_resume.py
tests/reliability/test_registry_crash.py`` and reads what the tests measured (pytest's
``record_property``, through its JUnit XML report): the hostile files and how each was answered, the
kill points and the largest difference between a resumed run's adapter and an uninterrupted one's,
the damaged-checkpoint variants. Writes ``bench/results/reliability.{json,md}``. The server's suite under
load has its own bench, ``bench/serve_reliability.py``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from commands import ROOT

SUITES = ("tests/reliability/test_hostile_data.py", "tests/reliability/test_crash_resume.py", "tests/reliability/test_registry_crash.py")


def run_suites(report: Path) -> tuple[int, float]:
    """pytest over the suites, its JUnit report at ``report``; (exit status, seconds)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1", f"--junitxml={report}", *SUITES]
    print("$ " + " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    status = subprocess.run(command, cwd=ROOT, env=env).returncode
    return status, time.perf_counter() - started


def read_report(report: Path) -> dict:
    """Each test's outcome and seconds, and every property the tests recorded, by test id."""
    tests = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else "skipped" if case.find("skipped") is not None else "passed"
        properties = {p.get("name"): ast.literal_eval(p.get("value")) for p in case.iter("property")}
        tests[f"{case.get('classname')}::{case.get('name')}"] = {"outcome": outcome, "seconds": float(case.get("time", 0)), "properties": properties}
    return tests


def figures(tests: dict) -> dict:
    recorded = [test["properties"] for test in tests.values()]
    kills = [p["kill_point"] for p in recorded if "kill_point" in p]
    hostile = next((p["hostile_data"] for p in recorded if "hostile_data" in p), {})
    damaged = next((p["damaged_variants"] for p in recorded if "damaged_variants" in p), 0)
    outcomes = [test["outcome"] for test in tests.values()]
    registry = {name.rsplit("::", 1)[1]: test["outcome"] for name, test in tests.items() if "test_registry_crash" in name}
    return {
        "registry_kills": registry,
        "tests": {"passed": outcomes.count("passed"), "failed": outcomes.count("failed"), "skipped": outcomes.count("skipped")},
        "hostile_data": hostile,
        "kill_points": kills,
        "max_abs_adapter_difference": max((k["max_abs_difference"] for k in kills), default=None),
        "damaged_checkpoint_variants": damaged,
    }


def markdown(result: dict) -> str:
    f = result["figures"]
    hostile = f["hostile_data"]
    lines = [
        "# Reliability: hostile data and crashes",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s; tests {f['tests']['passed']} passed, {f['tests']['failed']} failed).",
        "",
        "## Hostile data files through `tuneloop data check`",
        "",
        "| files | refused with one line | checked, bad rows named | problems (traceback, hang, unclear) | leftovers | slowest | 20,000-column CSV |",
        "|---|---|---|---|---|---|---|",
        f"| {hostile.get('cases')} | {hostile.get('refused')} | {hostile.get('cases', 0) - hostile.get('refused', 0)} | {hostile.get('problems')} "
        f"| {hostile.get('leftovers')} | {hostile.get('slowest', ['-', 0])[0]}: {hostile.get('slowest', ['-', 0])[1]:.2f} s | {hostile.get('twenty_thousand_columns_s', 0):.2f} s |",
        "",
        "## Training killed with SIGKILL, then `--resume`",
        "",
        "| kill point | max abs difference of the adapter from an uninterrupted run's |",
        "|---|---|",
        *[f"| {k['point']} | {k['max_abs_difference']:.3g} |" for k in f["kill_points"]],
        "",
        f"Damaged latest checkpoint: {f['damaged_checkpoint_variants']} variants (each file removed, cut to half, one byte changed; "
        "the manifest removed or unreadable; a stray file), each detected and the previous checkpoint used, with a message.",
        "",
        "## The registry killed inside a change",
        "",
        "| test | outcome |",
        "|---|---|",
        *[f"| {name} | {outcome} |" for name, outcome in f["registry_kills"].items()],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="Folder for reliability.{json,md}.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        status, seconds = run_suites(report)
        tests = read_report(report)
    result = {"command": "python bench/reliability.py", "seconds": round(seconds, 1), "exit_status": status, "figures": figures(tests), "tests": tests}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "reliability.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "reliability.md").write_text(markdown(result))
    print(markdown(result))
    if status:
        raise SystemExit(f"the suites failed (pytest exit status {status}); figures written anyway")


if __name__ == "__main__":
    main()
