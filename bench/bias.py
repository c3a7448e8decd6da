"""Bias from skewed data: a priority classifier trained on tickets whose priority follows the customer's
gender against one trained on the same tickets with the priority independent of the name.

    python bench/bias.py [--work bench/work/bias] [--seeds 0,1] [--rows 800] [--steps 100] [--model tiny]

For each seed, both variants through the `tuneloop` CLI as a user runs it (a finished run is reused):

1. data (tuneloop.demo.tickets, seeded): ``skewed_tickets`` (a woman's ticket "low", a man's "high",
   in 9 of 10) and ``balanced_tickets`` (the same tickets, priority high or low at random), as
   ``priority_rows``: "From: <customer>\\nSubject: <subject>" -> priority;
2. `tuneloop train --task classify` (full fine-tuning, ``--steps`` steps of ~2048 tokens, one thread);
3. `tuneloop eval`: the bias suite swaps the demographic terms of 60 test rows (gender, name origin).

The table: the counterfactual flip rate (the share of pairs whose predicted label changes with the swap),
base, tuned and Δ, the gender pairs' flip rate, the score gap (mean |Δ p(label)|) and the test accuracy.
``--model tiny`` (the default) is a random 2-layer Llama (width 64) whose tokenizer has seen the names;
``--model smollm2-135m-instruct`` the built-in model. Written to bench/results/bias.json and bias.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from commands import ROOT, tuneloop  # bench/ is the script's folder, so it is importable

from tuneloop.demo.tickets import balanced_tickets, priority_rows, skewed_tickets
from tuneloop.evaluate.bias_terms import GENDER_NAMES
from tuneloop.models.tiny import DEFAULT_CORPUS, build_tiny_llama

RESULTS = ROOT / "bench" / "results"
VARIANTS = {"skewed": skewed_tickets, "balanced": balanced_tickets}
PAIRS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "bias", help="folder for data and runs (reused)")
    parser.add_argument("--seeds", default="0,1", help="data and training seeds, comma-separated")
    parser.add_argument("--rows", type=int, default=800, help="tickets per dataset")
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--model", default="tiny", help="'tiny' (a random Llama built here) or a model name")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = tiny_model(args.work) if args.model == "tiny" else args.model
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in VARIANTS:
            runs.append(bias_run(args.work, model, variant, seed, args.rows, args.steps))
    results = {
        "command": " ".join(["python bench/bias.py", *sys.argv[1:]]),
        "machine": {"cpu": cpu_name(), "python": platform.python_version()},
        "model": args.model, "rows": args.rows, "steps": args.steps, "pairs": PAIRS,
        "runs": runs,
        "mean_flip_delta": {variant: mean([r["flip_delta"] for r in runs if r["variant"] == variant]) for variant in VARIANTS},
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "bias.md").write_text(markdown(results))
    print(markdown(results))


def tiny_model(work: Path) -> str:
    """A random 2-layer Llama whose tokenizer also learnt the gender-coded first names."""
    folder = work / "tiny-name-llama"
    if not (folder / "config.json").is_file():
        names = " ".join(name for pair in GENDER_NAMES for name in pair)
        build_tiny_llama(folder, corpus=DEFAULT_CORPUS + f" {names}" * 20)
    return str(folder)


def bias_run(work: Path, model: str, variant: str, seed: int, rows: int, steps: int) -> dict:
    out = work / f"{variant}-{seed}"
    data = work / f"{variant}-{seed}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in priority_rows(VARIANTS[variant](rows, seed))), encoding="utf-8")
    seconds = 0.0
    if not (out / "metrics.json").is_file():
        started = time.perf_counter()
        tuneloop(
            "train", "--task", "classify", "--model", model, "--data", str(data), "--format", "label", "--method", "full",
            "--lr", "2e-3", "--max-steps", str(steps), "--tokens-per-batch", "2048", "--val-fraction", "0.1", "--test-fraction", "0.25",
            "--early-stopping-patience", "0", "--threads", "1", "--bias-pairs", str(PAIRS), "--data-seed", str(seed),
            "--train-seed", str(seed), "--out", str(out),
        )  # fmt: skip
        seconds = time.perf_counter() - started
        tuneloop("eval", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    bias = metrics["bias"]
    gender = bias["counterfactual"]["per_dimension"].get("gender", {})
    return {
        "variant": variant, "seed": seed, "run": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out),
        "pairs": bias["counterfactual"]["pairs"],
        "base_flip_rate": bias["base"]["counterfactual_flip_rate"], "tuned_flip_rate": bias["tuned"]["counterfactual_flip_rate"],
        "flip_delta": bias["tuned"]["counterfactual_flip_rate"] - bias["base"]["counterfactual_flip_rate"],
        "gender_base_flip_rate": gender.get("base_flip_rate"), "gender_tuned_flip_rate": gender.get("tuned_flip_rate"),
        "base_score_gap": bias["base"]["counterfactual_score_gap"], "tuned_score_gap": bias["tuned"]["counterfactual_score_gap"],
        "base_accuracy": metrics["base"]["accuracy"], "tuned_accuracy": metrics["tuned"]["accuracy"],
        "train_seconds": seconds or None,
    }  # fmt: skip


def markdown(results: dict) -> str:
    lines = [
        f"# Bias from skewed data ({results['machine']['cpu']})",
        "",
        f"`{results['command']}`; model {results['model']}, {results['rows']} tickets per dataset, {results['steps']} steps, "
        f"{results['pairs']} counterfactual pairs per run (gender and name-origin swaps of test rows). Flip rate: the share of "
        "pairs whose predicted priority changes when only the customer's name changes; score gap: mean |Δ p(label)|.",
        "",
        "| data | seed | flip rate base | flip rate tuned | Δ | gender pairs: base | gender pairs: tuned | score gap base | score gap tuned | accuracy base | accuracy tuned | training (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['base_flip_rate']:.3f} | {r['tuned_flip_rate']:.3f} | {r['flip_delta']:+.3f} | "
            f"{fmt(r['gender_base_flip_rate'])} | {fmt(r['gender_tuned_flip_rate'])} | {r['base_score_gap']:.3f} | "
            f"{r['tuned_score_gap']:.3f} | {r['base_accuracy']:.3f} | {r['tuned_accuracy']:.3f} | {fmt_seconds(r['train_seconds'])} |"
        )
    deltas = results["mean_flip_delta"]
    lines += ["", f"Mean flip-rate Δ (tuned − base): skewed {deltas['skewed']:+.3f}, balanced {deltas['balanced']:+.3f}."]
    return "\n".join(lines) + "\n"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def fmt_seconds(value) -> str:
    return "reused" if value is None else f"{value:.0f}"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
