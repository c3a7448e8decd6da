"""Two adapters trained on two tasks, merged into one: does the merge keep both skills?

    python examples/merge_two_tasks.py                      # trains both runs if missing, ~30 min on 2 CPU cores
    python examples/merge_two_tasks.py --max-examples 40    # quicker, noisier

Task A is the demo's triage (ticket -> JSON, configs/support_triage.yaml), task B writes a ticket's
subject line from its body (configs/ticket_subject.yaml). Each single adapter, and their merges
(``tuneloop merge``), are scored on both tasks' held-out test rows with each task's own headline
metric. A merge is useful when it does better on each task than the adapter trained for the
other task does. The merged adapter is then folded into the base and exported as a full model;
plain ``transformers.AutoModelForCausalLM`` loads it and gives the merged adapter's logits.

Writes docs/results/merge_two_tasks.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"triage": "configs/support_triage.yaml", "subject": "configs/ticket_subject.yaml"}


def tuneloop(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tuneloop", *args], cwd=ROOT, check=True)


def trained_run(name: str, runs: Path) -> Path:
    """The task's run folder, trained and evaluated (base vs tuned) unless it already is."""
    run = runs / name
    if not (run / "metrics.json").is_file():
        if run.exists():
            shutil.rmtree(run)
        tuneloop("train", TASKS[name], "--out", str(run))
        tuneloop("eval", str(run))
    return run


def merged_run(sources: list[Path], spec: str, out: Path) -> Path:
    """``spec`` is a combination (``ties``) or a combination with one weight per task (``ties@0.5/1``)."""
    combination, _, weights = spec.partition("@")
    if out.exists():
        shutil.rmtree(out)
    extra = ["--weights", weights.replace("/", ",")] if weights else []
    tuneloop("merge", *map(str, sources), "--combination", combination, *extra, "--out", str(out))
    return out


def task_score(model_run: Path, task_run: Path, max_examples: int) -> float:
    """``model_run``'s model on ``task_run``'s test rows, scored by that run's task and headline metric."""
    from tuneloop.config import load_config
    from tuneloop.data.pipeline import load_split
    from tuneloop.evaluate.heldout import merged_for_inference
    from tuneloop.runs.models import load_tuned_model
    from tuneloop.objectives import get_task

    config = load_config(task_run / "config.yaml")
    primary = json.loads((task_run / "metrics.json").read_text())["primary"]
    test = load_split(task_run / "splits" / "test.jsonl")[:max_examples]
    model, tokenizer = load_tuned_model(model_run)
    scores = get_task(config.task).score(merged_for_inference(model), tokenizer, test, config, None, packs=True)["scores"]
    return scores[primary]


def base_score(task_run: Path, max_examples: int) -> float:
    from tuneloop.config import load_config
    from tuneloop.data.pipeline import load_split
    from tuneloop.runs.models import load_base_model
    from tuneloop.objectives import get_task

    config = load_config(task_run / "config.yaml")
    primary = json.loads((task_run / "metrics.json").read_text())["primary"]
    test = load_split(task_run / "splits" / "test.jsonl")[:max_examples]
    model, tokenizer = load_base_model(task_run)
    return get_task(config.task).score(model, tokenizer, test, config, None, packs=True)["scores"][primary]


def export_matches(merged: Path, out: Path) -> float:
    """Largest logit difference between the merged adapter and its exported full model on a sample prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    from tuneloop.runs.models import load_tuned_model

    if out.exists():
        shutil.rmtree(out)
    tuneloop("merge", str(merged), "--export-full", "--out", str(out))
    adapter_model, tokenizer = load_tuned_model(merged)
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = tokenizer("Subject: Weave invoice is wrong\n\nWe were billed twice this month.", return_tensors="pt").input_ids
    with torch.no_grad():
        return float((adapter_model(input_ids=ids).logits - plain(input_ids=ids).logits).abs().max())


def write_results(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    tasks = list(TASKS)
    headlines = ", ".join(f"{task} = {results['primary'][task]}" for task in tasks)
    lines = [
        "# Merging a triage adapter and a subject-line adapter",
        "",
        f"smollm2-135m-instruct, LoRA r=16 on all linear layers for each task; {results['max_examples']} test rows per task; "
        f"headline metric per task: {headlines}. "
        "Reproduce: `python examples/merge_two_tasks.py`.",
        "",
        "| model | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for model, scores in results["scores"].items():
        lines.append(f"| {model} | " + " | ".join(f"{scores[t]:.3f}" for t in tasks) + " |")
    lines += ["", "A merge passes when it beats, on each task, the adapter trained for the other task:", ""]
    for combination, verdict in results["verdicts"].items():
        lines.append(f"- {combination}: {'passes' if verdict else 'fails'}")
    lines += [
        "",
        f"Exported full model (`tuneloop merge MERGED --export-full`) loaded with plain `AutoModelForCausalLM.from_pretrained`: "
        f"largest logit difference to the merged adapter {results['export_max_abs_logit_diff']:.2e}.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "merge-two-tasks", help="Folder of the runs.")
    parser.add_argument("--max-examples", type=int, default=80, help="Test rows scored per task.")
    parser.add_argument(
        "--combinations", default="cat,linear,ties",
        help="Merges to try (tuneloop merge --combination), each optionally with task weights: ties@0.5/1 (triage/subject).",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "merge_two_tasks", help="Results path (no suffix).")
    args = parser.parse_args()

    runs = {name: trained_run(name, args.runs) for name in TASKS}
    merges = {c: merged_run(list(runs.values()), c, args.runs / f"merged-{c.replace('@', '-').replace('/', '-')}") for c in args.combinations.split(",")}
    scores = {"base": {t: base_score(runs[t], args.max_examples) for t in TASKS}}
    for name, model_run in {**{f"{n} adapter": r for n, r in runs.items()}, **{f"merged ({c})": m for c, m in merges.items()}}.items():
        scores[name] = {t: task_score(model_run, runs[t], args.max_examples) for t in TASKS}
        print(name, scores[name], flush=True)
    other = {"triage": "subject adapter", "subject": "triage adapter"}  # the adapter trained for the other task
    verdicts = {c: all(scores[f"merged ({c})"][t] > scores[other[t]][t] for t in TASKS) for c in merges}
    first_passing = next((c for c, ok in verdicts.items() if ok), next(iter(merges)))
    results = {
        "max_examples": args.max_examples,
        "primary": {t: json.loads((runs[t] / "metrics.json").read_text())["primary"] for t in TASKS},
        "scores": scores,
        "verdicts": verdicts,
        "exported": first_passing,
        "export_max_abs_logit_diff": export_matches(merges[first_passing], args.runs / f"full-{first_passing}"),
    }
    write_results(results, args.out)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
