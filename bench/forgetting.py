"""Forgetting experiment: full fine-tuning vs LoRA vs LoRA + replay (token and KL), on the demo's triage job.

The same data (``configs/support_triage.yaml`` on the checked-in ``examples/support_tickets.csv``),
the same built-in model (smollm2-135m-instruct) and the same budget for every variant: ``--steps``
optimiser steps of 1,024 real tokens. Each variant is trained and evaluated with the ordinary
``tuneloop train`` / ``tuneloop eval`` commands (printed, and recorded in the result); the table
puts task quality (held-out test) beside the forgetting measures of ``tuneloop eval``:

* answer_rouge_l / answer_token_f1: the tuned model's answers to held-out general prompts scored
  against the base model's own answers (1.0 = unchanged),
* qa_accuracy: general-knowledge questions answered right, with the questions the base answered
  right and the tuned model lost, those it gained, and the mean words per reply (a terser model
  fits more answers in the QA's token budget),
* general_perplexity: on paragraphs of general prose (lower is better).

Variants: ``full`` (method full at ``--full-lr``), ``lora`` (the demo's LoRA at ``--lora-lr``),
``lora+replay`` (the same LoRA with ``--replay-fraction``: general prompts answered by the base
model mixed into the training split) and ``lora+kl-replay`` (the same replay rows trained by the
KL divergence from the base, ``--replay-loss kl``). A variant whose folder holds a finished run of
the same commands is not re-run; one of other settings stops the bench.

    python bench/forgetting.py                      # runs/forgetting/*, docs/results/forgetting/forgetting.*
    python bench/forgetting.py --steps 10 --out /tmp/fg --results /tmp/fg/results   # a quicker look
    python bench/forgetting.py --train-seed 1 --out runs/forgetting-seed1 --name steps60_seed1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from commands import ROOT, run_recorded  # bench/ is the script's folder, so it is importable

CONFIG = "configs/support_triage.yaml"
TASK_METRICS = ("json_field_accuracy", "json_valid", "exact_match")
FORGETTING_METRICS = ("answer_rouge_l", "answer_token_f1", "qa_accuracy", "general_perplexity")


def variants(
    replay_fraction: float, replay_tokens: int, full_lr: float, lora_lr: float,
    replay_temperature: float | None = None, replay_greedy_share: float | None = None,
) -> dict[str, list[str]]:
    """Variant name -> the flags that make it differ from the shared command."""
    replay = ["--replay-fraction", f"{replay_fraction:g}", "--replay-max-new-tokens", str(replay_tokens)]
    if replay_temperature is not None:
        replay += ["--replay-temperature", f"{replay_temperature:g}"]
    if replay_greedy_share is not None:
        replay += ["--replay-greedy-share", f"{replay_greedy_share:g}"]
    lora = ["--method", "lora", "--lr", f"{lora_lr:g}"]
    return {
        "lora": lora,
        "lora+replay": [*lora, *replay],
        "lora+kl-replay": [*lora, *replay, "--replay-loss", "kl"],
        "full": ["--method", "full", "--lr", f"{full_lr:g}"],
    }


def commands(name: str, flags: list[str], out: Path, steps: int, test_rows: int) -> list[list[str]]:
    run = out / name.replace("+", "-")
    train = [
        "tuneloop", "train", CONFIG, "--out", str(run), "--max-steps", str(steps), "--eval-steps", str(max(1, steps // 2)),
        "--few-shot", "", *flags,
    ]  # fmt: skip
    return [train, ["tuneloop", "eval", str(run), "--max-examples", str(test_rows)]]


def result_row(name: str, run: Path, cmds: list[list[str]]) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    train = json.loads((run / "train.json").read_text())
    data = json.loads((run / "data.json").read_text())
    replay = data.get("replay") or {}
    return {
        "variant": name,
        "method": metrics["method"],
        "learning_rate": _config_value(run, "learning_rate"),
        "train_seed": _config_value(run, "seed"),
        "steps": train["steps"],
        "real_tokens": train["real_tokens"],
        "train_seconds": train["seconds"],
        "trainable_parameters": train["trainable_parameters"],
        "replay_rows": replay.get("rows", 0),
        "replay_temperature": replay.get("temperature", 0.0),  # runs before it was recorded: greedy
        "replay_greedy_rows": replay.get("greedy_rows"),
        "replay_loss": replay.get("loss", "tokens"),
        "train_rows": data["split_sizes"]["train"],
        "test_examples": metrics["test_examples"],
        "task": {"base": {m: metrics["base"][m] for m in TASK_METRICS}, "tuned": {m: metrics["tuned"][m] for m in TASK_METRICS}},
        "forgetting": {role: {m: metrics["forgetting"][role][m] for m in FORGETTING_METRICS} for role in ("base", "tuned")},
        "forgetting_suite": metrics["forgetting"]["suite"],
        "qa_replies": qa_reply_counts(run),
        "commands": [shlex.join(c) for c in cmds],
    }


def qa_reply_counts(run: Path) -> dict | None:
    """From ``forgetting.jsonl``: questions the base got right and the tuned model lost, those it gained,
    and the mean words per reply of each model (a terser model fits more answers in the QA's token budget).
    None for runs evaluated before the file held the questions."""
    path = run / "forgetting.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    questions = [row for row in rows if "question" in row]
    if not questions:
        return None
    words = {role: sum(len(row[role].split()) for row in questions) / len(questions) for role in ("base", "tuned")}
    return {
        "lost": sum(row["base_right"] and not row["tuned_right"] for row in questions),
        "gained": sum(row["tuned_right"] and not row["base_right"] for row in questions),
        "base_words": words["base"],
        "tuned_words": words["tuned"],
    }


def _config_value(run: Path, key: str):
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["train"][key]


def render_markdown(result: dict) -> str:
    rows = result["variants"]
    base = rows[0]
    lines = [
        "# Forgetting: full fine-tuning vs LoRA vs LoRA + replay (token and KL)",
        "",
        f"Measured {result['date']} on {result['machine']} (CPU only, shared with other work), "
        f"smollm2-135m-instruct on the support-triage job (`{CONFIG}`), {result['steps']} steps of up to "
        f"{result['tokens_per_batch']:,} real tokens each for every variant. Task quality on the "
        f"{base['test_examples']} held-out test tickets; forgetting on tuneloop's general-ability suite "
        f"({base['forgetting_suite']['prompts']} held-out general prompts, {base['forgetting_suite']['questions']} "
        f"general-knowledge questions, {base['forgetting_suite']['paragraphs']} paragraphs of general prose), "
        "asked without the triage system prompt." + replay_sentence(rows),
        "",
        "| variant | lr | replay rows | train s | json_field_accuracy | exact_match | answer_rouge_l vs base | "
        "answer_token_f1 vs base | qa_accuracy | QA lost / gained | QA reply words | general_perplexity |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| base model (no training) | – | – | – | {json_field_accuracy:.3f} | {exact_match:.3f} | 1.000 | 1.000 | {qa:.3f} | – | {words} | {ppl:.2f} |".format(
            **base["task"]["base"], qa=base["forgetting"]["base"]["qa_accuracy"], words=reply_words(base["qa_replies"], "base"),
            ppl=base["forgetting"]["base"]["general_perplexity"],
        ),
    ]
    for row in rows:
        task, kept, qa = row["task"]["tuned"], row["forgetting"]["tuned"], row["qa_replies"]
        lines.append(
            f"| {row['variant']} | {row['learning_rate']:g} | {row['replay_rows']} | {row['train_seconds']:.0f} "
            f"| {task['json_field_accuracy']:.3f} | {task['exact_match']:.3f} | {kept['answer_rouge_l']:.3f} "
            f"| {kept['answer_token_f1']:.3f} | {kept['qa_accuracy']:.3f} | {lost_gained(qa)} | {reply_words(qa, 'tuned')} "
            f"| {kept['general_perplexity']:.2f} |"
        )
    lines += ["", *reading(rows)]
    lines += ["", f"Commands (from the repository root; `{result['bench_command']}` runs them all and writes this file):", "", "```bash"]
    lines += [command for row in rows for command in row["commands"]]
    lines += ["```", ""]
    return "\n".join(lines)


def lost_gained(counts: dict | None) -> str:
    """"lost / gained" general questions against the base ("–" for runs evaluated before the replies were kept)."""
    return "–" if counts is None else f"{counts['lost']} / {counts['gained']}"


def reply_words(counts: dict | None, role: str) -> str:
    return "–" if counts is None else f"{counts[f'{role}_words']:.1f}"


def replay_sentence(rows: list[dict]) -> str:
    replays = [row for row in rows if row["replay_rows"]]
    if not replays:
        return ""
    first = replays[0]
    how = "; ".join(f"{row['variant']}: {replay_answers(row)}" for row in replays)
    return f" Replay: {first['replay_rows']} general prompts answered by the base model beside the {first['train_rows']} training rows ({how})."


def replay_answers(row: dict) -> str:
    """How a variant's replay answers were made (rows from before the temperature was recorded were greedy)."""
    if not row["replay_rows"]:
        return "–"
    temperature, greedy = row.get("replay_temperature", 0.0), row.get("replay_greedy_rows") or 0
    made = "greedy" if temperature == 0 else f"sampled at temperature {temperature:g}" + (f", {greedy} of them greedy" if greedy else "")
    return made + (", trained by KL divergence from the base" if row.get("replay_loss") == "kl" else "")


def reading(rows: list[dict]) -> list[str]:
    """Sentences comparing each replay variant with plain LoRA and full fine-tuning, every figure read from the rows."""
    by_name = {row["variant"]: row for row in rows}
    replays = [row for row in rows if row["replay_rows"]]
    if not replays:
        return []
    lines = ["What the table says (computed from the numbers above):", ""]
    for replay, other in ((r, by_name[name]) for r in replays for name in ("lora", "full") if name in by_name):
        kept, other_kept = replay["forgetting"]["tuned"], other["forgetting"]["tuned"]
        task, other_task = replay["task"]["tuned"], other["task"]["tuned"]
        lines.append(
            f"- {replay['variant']} vs {other['variant']}: answer_rouge_l vs base {kept['answer_rouge_l']:.3f} vs "
            f"{other_kept['answer_rouge_l']:.3f} ({kept['answer_rouge_l'] - other_kept['answer_rouge_l']:+.3f}), "
            f"qa_accuracy {kept['qa_accuracy'] - other_kept['qa_accuracy']:+.3f}, general_perplexity "
            f"{kept['general_perplexity'] - other_kept['general_perplexity']:+.2f} (lower is better); task "
            f"json_field_accuracy {task['json_field_accuracy'] - other_task['json_field_accuracy']:+.3f}."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/forgetting"), help="Folder of the runs.")
    parser.add_argument("--results", type=Path, default=Path("docs/results/forgetting"), help="Folder of the result files.")
    parser.add_argument("--name", default="forgetting", help="Name of the result files (NAME.json, NAME.md) in that folder.")
    parser.add_argument("--steps", type=int, default=60, help="Optimiser steps of every variant.")
    parser.add_argument("--replay-fraction", type=float, default=0.24, help="Replay rows, as a share of the training split.")
    parser.add_argument("--replay-tokens", type=int, default=96, help="Tokens the base model may use per replay answer.")
    parser.add_argument(
        "--replay-temperature", type=float, default=None, help="Temperature of the replay answers (default: the config's; 0 is greedy)."
    )
    parser.add_argument(
        "--replay-greedy-share", type=float, default=None, help="Share of replay rows answered greedily (default: the config's)."
    )
    parser.add_argument("--full-lr", type=float, default=5e-5, help="Learning rate of full fine-tuning.")
    parser.add_argument("--lora-lr", type=float, default=1e-3, help="Learning rate of both LoRA variants.")
    parser.add_argument("--test-rows", type=int, default=60, help="Held-out test tickets each variant is scored on.")
    parser.add_argument(
        "--train-seed", type=int, default=None, help="Seed of every variant's init, data order and dropout (default: the config's)."
    )
    parser.add_argument("--only", default="", help="Comma-separated variants to run (default: all).")
    args = parser.parse_args()

    from tuneloop.atomic import write_json_atomic, write_text_atomic
    from tuneloop.config import load_config

    chosen = variants(args.replay_fraction, args.replay_tokens, args.full_lr, args.lora_lr, args.replay_temperature, args.replay_greedy_share)
    if args.only:
        chosen = {name: flags for name, flags in chosen.items() if name in args.only.split(",")}
    rows = []
    for name, flags in chosen.items():
        seed = ["--train-seed", str(args.train_seed)] if args.train_seed is not None else []
        cmds = commands(name, [*flags, *seed], args.out, args.steps, args.test_rows)
        run = ROOT / cmds[1][2]  # an absolute --out stays as it is
        run_recorded(name, cmds, run)
        rows.append(result_row(name, run, cmds))
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "steps": args.steps,
        "tokens_per_batch": load_config(ROOT / CONFIG).train.tokens_per_batch,
        "replay_fraction": args.replay_fraction,
        "bench_command": shlex.join(["python", "bench/forgetting.py", *sys.argv[1:]]),
        "variants": rows,
    }
    results = args.results if args.results.is_absolute() else ROOT / args.results
    write_json_atomic(results / f"{args.name}.json", result)
    write_text_atomic(results / f"{args.name}.md", render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
