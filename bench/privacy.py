"""Privacy bench: what the demo's triage job gives away, without differential privacy and with DP-SGD at ε = 1, 4, 8.

The demo's job (``configs/support_triage.yaml`` on the checked-in ``examples/support_tickets.csv``,
the built-in smollm2-135m-instruct, LoRA) with ``--canaries N --canary-repeats K``: N made-up account
PINs, each in K training rows. Every arm is trained and evaluated with the ordinary ``tuneloop train`` /
``tuneloop eval`` commands (printed and recorded): the eval report's privacy section gives the
membership-inference AUC (loss threshold, and calibrated by the base model's loss) and the canaries'
exposure in bits, beside the task metric (json_field_accuracy on the test rows). The DP arms add
``--dp-epsilon E`` (``train.dp_epsilon``, DP-SGD); a build without that setting refuses it by name.

    python bench/privacy.py                         # runs/privacy/*, bench/results/privacy.{json,md}
    python bench/privacy.py --epsilons ""           # the non-DP arm alone
    python bench/privacy.py --quick --out /tmp/privacy-quick   # plumbing only, tiny model: results/privacy_quick.*

An arm whose folder holds a finished run of the same commands is not re-run; one of other settings
stops the bench.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
from pathlib import Path

from commands import ROOT, run_recorded  # bench/ is the script's folder, so it is importable

CONFIG = "configs/support_triage.yaml"
TASK_METRIC = "json_field_accuracy"
# DP-SGD's noise per step is noise multiplier x clip norm / expected rows, spread over every trainable value:
# the DP arms take ~32 rows a step (4096 tokens at the mean row length) for ~3 epochs, and a rank-4 LoRA on
# the attention's q and v projections (230k values, not the demo's 4.9M), at a higher learning rate.
DP_RECIPE = "--tokens-per-batch 4096 --max-steps 42 --eval-steps 42 --r 4 --target-modules q_proj,v_proj --lr 0.005"


def arms(epsilons: list[float], recipe: list[str], recipe_baseline: bool) -> dict[str, list[str]]:
    """Arm name -> the flags that make it differ from the shared command (the demo job as it ships). The DP
    arms train with the DP recipe (large Poisson batches, a small adapter); ``no-dp-recipe`` trains that
    recipe without DP, so the table separates what the recipe costs from what the noise costs."""
    dp_arms = {f"dp-eps{e:g}": [*recipe, "--dp-epsilon", f"{e:g}"] for e in epsilons}
    return {"no-dp": [], **dp_arms, **({"no-dp-recipe": recipe} if recipe_baseline else {})}


def commands(flags: list[str], run: Path, args) -> list[list[str]]:
    train = [
        "tuneloop", "train", CONFIG, "--out", str(run), "--max-steps", str(args.steps), "--eval-steps", str(args.steps),
        "--canaries", str(args.canaries), "--canary-repeats", str(args.repeats),
        "--few-shot", "", "--no-forgetting", "--privacy-rows", str(args.rows), "--privacy-candidates", str(args.candidates), *flags,
    ]  # fmt: skip
    if args.model:
        train += ["--model", str(args.model)]
    return [train, ["tuneloop", "eval", str(run), "--max-examples", str(args.test_rows)]]


def result_row(name: str, run: Path, cmds: list[list[str]], seconds: dict) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    train = json.loads((run / "train.json").read_text())
    privacy = metrics["privacy"]
    dp = privacy.get("dp") or {}
    return {
        "arm": name,
        "epsilon": dp.get("epsilon"),
        "delta": dp.get("delta"),
        "steps": train["steps"],
        "train_seconds": train["seconds"],
        "train_wall_seconds": seconds.get("train"),
        "eval_wall_seconds": seconds.get("eval"),
        "test_examples": metrics["test_examples"],
        "task": {role: metrics[role][TASK_METRIC] for role in ("base", "tuned")},
        "privacy": {role: privacy[role] for role in ("base", "tuned")},
        "canaries": privacy.get("canaries", []),
        "mia_rows": privacy["rows"],
        "candidates": privacy.get("candidates"),
        "max_exposure_by_rank": privacy.get("max_exposure_by_rank"),
        "space_bits": privacy.get("space_bits"),
        "commands": [shlex.join(c) for c in cmds],
    }


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(result: dict) -> str:
    rows = result["arms"]
    first = rows[0]
    lines = [
        "# Privacy audit: membership inference and canary exposure, without and with DP-SGD",
        "",
        f"Measured {result['date']} on {result['machine']} (CPU only, shared with other work): {result['model']}, "
        f"LoRA, on the support-triage job (`{CONFIG}`): `no-dp` is the job as it ships ({result['steps']} steps of "
        f"packed rows, rank-16 LoRA on every linear layer); the DP arms and `no-dp-recipe` add the DP recipe "
        f"`{result['dp_recipe']}`. Every arm has "
        f"{result['canaries']} canaries (made-up 9-digit account PINs, a {fmt(first['space_bits'], 1)}-bit space), "
        f"each in {result['repeats']} training rows. Membership inference on {first['mia_rows']} training and "
        f"{first['mia_rows']} test rows (ROC AUC; 0.5 = cannot tell them apart); exposure by rank among "
        f"{first['candidates']} random secrets (at most {fmt(first['max_exposure_by_rank'], 2)} bits; a secret never "
        f"seen scores 1.44 on average), and extrapolated by a skew-normal fit (up to {fmt(first['space_bits'], 1)}). "
        f"Task metric: {TASK_METRIC} on {first['test_examples']} test rows.",
        "",
        "| arm | ε | steps | task (base → tuned) | gain kept | MIA AUC base | MIA AUC tuned | calibrated AUC | exposure base | exposure tuned | extrapolated tuned | train s | eval s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gain = first["task"]["tuned"] - first["task"]["base"]  # the demo job's own gain, without DP
    for row in rows:
        base, tuned = row["privacy"]["base"], row["privacy"]["tuned"]
        kept = (row["task"]["tuned"] - row["task"]["base"]) / gain if gain else None
        lines.append(
            f"| {row['arm']} | {'∞ (no DP)' if row['epsilon'] is None else fmt(row['epsilon'], 2)} | {row['steps']} "
            f"| {fmt(row['task']['base'])} → {fmt(row['task']['tuned'])} | {'–' if kept is None else f'{kept:.0%}'} "
            f"| {fmt(base['mia_auc'])} | {fmt(tuned['mia_auc'])} "
            f"| {fmt(tuned['mia_auc_calibrated'])} | {fmt(base.get('canary_exposure'), 2)} | {fmt(tuned.get('canary_exposure'), 2)} "
            f"| {fmt(tuned.get('canary_exposure_extrapolated'), 2)} | {fmt(row['train_wall_seconds'], 0)} | {fmt(row['eval_wall_seconds'], 0)} |"
        )
    lines += ["", "Each canary (log-perplexity of its secret in bits, exposure by rank / extrapolated):", ""]
    lines += ["| arm | holder | secret | base log-ppl | tuned log-ppl | base exposure | tuned exposure | tuned extrapolated |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for c in row["canaries"]:
            lines.append(
                f"| {row['arm']} | {c['holder']} | {c['secret']} | {fmt(c['base_log_perplexity'], 1)} | {fmt(c['tuned_log_perplexity'], 1)} "
                f"| {fmt(c['base_exposure'], 2)} | {fmt(c['tuned_exposure'], 2)} | {fmt(c['tuned_exposure_extrapolated'], 2)} |"
            )
    lines += ["", "Commands:", ""]
    lines += [f"    {command}" for row in rows for command in row["commands"]]
    missing = result.get("arms_not_run")
    if missing:
        lines += ["", f"Not run: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epsilons", default="8,4,1", help="DP arms' ε, comma-separated, run in this order (empty: no DP arm)")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps of the demo job's arm (the demo's 60)")
    parser.add_argument("--dp-recipe", default=DP_RECIPE, help="train flags of the DP arms and of no-dp-recipe (later flags win)")
    parser.add_argument("--no-recipe-baseline", action="store_true", help="leave out the arm that trains the DP recipe without DP")
    parser.add_argument("--canaries", type=int, default=2, help="canaries planted (data.canaries)")
    parser.add_argument("--repeats", type=int, default=10, help="training rows per canary (data.canary_repeats)")
    parser.add_argument("--candidates", type=int, default=200, help="random secrets each canary is ranked among (eval.privacy_candidates)")
    parser.add_argument("--rows", type=int, default=64, help="training and test rows of the membership attack (eval.privacy_rows)")
    parser.add_argument("--test-rows", type=int, default=40, help="test rows the task metric is measured on (tuneloop eval --max-examples)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "privacy", help="folder of the arms' runs")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="folder of privacy.json and privacy.md")
    parser.add_argument("--model", type=Path, default=None, help="another model than the config's smollm2-135m-instruct")
    parser.add_argument(
        "--quick", action="store_true",
        help="a plumbing check on a tiny random model (2 steps, few rows and candidates): results named privacy_quick.*",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        from tuneloop.models.tiny import build_tiny_llama

        args.model = args.model or build_tiny_llama(args.out / "tiny-model")
        args.steps, args.test_rows, args.rows, args.candidates = 2, 4, 8, 20
        args.dp_recipe = "--tokens-per-batch 256 --max-steps 2 --eval-steps 2 --r 4 --target-modules q_proj,v_proj"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    epsilons = [float(e) for e in args.epsilons.split(",") if e.strip()]
    rows = []
    recipe = shlex.split(args.dp_recipe)
    for name, flags in arms(epsilons, recipe, not args.no_recipe_baseline).items():
        cmds = commands(flags, args.out / name, args)
        seconds = run_recorded(name, cmds, args.out / name)
        rows.append(result_row(name, args.out / name, cmds, seconds) | {"flags": shlex.join(flags)})
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "model": str(args.model) if args.model else "smollm2-135m-instruct",
        "steps": args.steps,
        "dp_recipe": args.dp_recipe,
        "canaries": args.canaries,
        "repeats": args.repeats,
        "arms": rows,
        "arms_not_run": [f"dp-eps{e:g}" for e in (8.0, 4.0, 1.0) if e not in epsilons] + (["no-dp-recipe"] if args.no_recipe_baseline else []),
    }
    name = "privacy_quick" if args.quick else "privacy"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / f"{name}.md").write_text(render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
