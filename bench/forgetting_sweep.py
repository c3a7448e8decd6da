"""One table from several ``bench/forgetting.py`` results: every variant measured, side by side.

``bench/forgetting.py`` writes one result file per setting (learning rate, replay share); this
reads any number of them and writes the variants, ordered by method, learning rate, replay rows,
steps and training seed, with the file each row came from (results from before the seed was
recorded ran with seed 0) and, where the result holds them, the general questions the tuned model
lost and gained against the base. Every figure is read from those files.

    python bench/forgetting_sweep.py docs/results/forgetting/*.json --out docs/results/forgetting/sweep.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forgetting import lost_gained, replay_answers  # bench/ is on sys.path when this script runs

COLUMNS = ("json_field_accuracy", "answer_rouge_l", "answer_token_f1", "qa_accuracy", "general_perplexity")


def sweep_rows(paths: list[Path]) -> tuple[dict, list[dict]]:
    """The base model's figures and one row per measured variant."""
    rows, base = [], None
    for path in paths:
        for variant in json.loads(path.read_text())["variants"]:
            base = base or {**variant["task"]["base"], **variant["forgetting"]["base"]}
            rows.append({
                "variant": variant["variant"], "lr": variant["learning_rate"], "replay_rows": variant["replay_rows"],
                "replay_answers": replay_answers(variant),
                "train_rows": variant["train_rows"], "steps": variant["steps"], "seed": variant.get("train_seed", 0),
                "source": path.name, "qa_lost_gained": lost_gained(variant.get("qa_replies")),
                **variant["task"]["tuned"], **variant["forgetting"]["tuned"],
            })  # fmt: skip
    rows.sort(key=lambda r: (r["variant"] != "full", r["variant"], -r["lr"], r["replay_rows"], r["replay_answers"], r["steps"], r["seed"]))
    return base, merge_repeats(rows)


def merge_repeats(rows: list[dict]) -> list[dict]:
    """One row per measured setting: a variant found in several files with the same figures lists them all
    (and takes the QA counts of whichever file has them)."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = tuple((k, v) for k, v in row.items() if k not in ("source", "qa_lost_gained"))
        if key not in merged:
            merged[key] = dict(row)
            continue
        merged[key]["source"] += ", " + row["source"]
        if merged[key]["qa_lost_gained"] == "–":
            merged[key]["qa_lost_gained"] = row["qa_lost_gained"]
    return list(merged.values())


def render(base: dict, rows: list[dict]) -> str:
    lines = [
        "# Forgetting: every variant measured",
        "",
        "The triage job on smollm2-135m-instruct, each variant trained for the steps shown and scored on the same "
        "held-out test tickets and general-ability suite (see `forgetting.md`). Higher is better except perplexity.",
        "",
        "| variant | lr | replay rows / train rows | replay answers | steps | train seed | " + " | ".join(COLUMNS)
        + " | QA lost / gained | from |",
        "|---|---:|---:|---|---:|---:|" + "---:|" * len(COLUMNS) + "---:|---|",
        "| base model | – | – | – | – | – | " + " | ".join(_figure(base, c) for c in COLUMNS) + " | – | |",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['lr']:g} | {row['replay_rows']} / {row['train_rows']} | {row['replay_answers']} | {row['steps']} | {row['seed']} | "
            + " | ".join(_figure(row, c) for c in COLUMNS) + f" | {row['qa_lost_gained']} | {row['source']} |"
        )
    return "\n".join(lines) + "\n"


def _figure(row: dict, column: str) -> str:
    return f"{row[column]:.2f}" if column == "general_perplexity" else f"{row[column]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="result JSON files of bench/forgetting.py")
    parser.add_argument("--out", type=Path, required=True, help="Markdown table to write.")
    args = parser.parse_args()
    from tuneloop.atomic import write_text_atomic

    text = render(*sweep_rows(args.results))
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
