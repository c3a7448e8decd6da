"""Synthesised QA from company documents: does training on it beat the base model on held-out questions?

One pipeline, run with the ordinary commands (printed, and recorded in the result):

1. ``tuneloop data synth examples/company_docs`` with smollm2-135m-instruct (answer-first: the
   model writes a question for an answer span cut from a passage; filters drop the rest);
2. ``tuneloop data check`` on the dataset;
3. ``tuneloop train --task qa`` (LoRA): the trainer splits train/val/test itself and refuses
   leakage (no normalised prompt in two splits), so every test question is unseen in training;
4. ``tuneloop eval RUN``: base vs tuned on the test split, SQuAD exact match and token F1.

Two stricter views are computed from the run's own files, beside the headline numbers:

* test rows whose *passage* never appears in the training split (neither the question nor its
  context was trained on);
* ``HANDWRITTEN`` questions, phrased by a person rather than by the model, asked about the same
  documents with the passage as context (as ``tuneloop generate`` would: the run's system prompt,
  base vs tuned). Any that also occurs among the synthesised training questions is reported.

    python bench/synth_docs.py                          # runs/synth-docs/*, docs/results/synth_docs.*
    python bench/synth_docs.py --steps 10 --out /tmp/sd --results /tmp/sd   # a quicker look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
SYSTEM_PROMPT = "Answer with the exact words from the context, nothing else."

# (document, passage heading, question, answer): written by hand, never by the model; the answer is
# the bare span of the document ("30 minutes", not "within 30 minutes"), as a synthesised answer is.
HANDWRITTEN = (
    ("refund_policy.md", "Monthly plans", "Within how many days of the charge can a monthly subscription be fully refunded?", "14 days"),
    ("refund_policy.md", "Approvals", "Who has to approve a refund above $2,000?", "Priya Raman"),
    ("refund_policy.md", "How to ask for a refund", "Which e-mail address should customers write to for a refund?", "billing@northwind-cloud.example"),
    ("support_sla.md", "First response times", "How fast do Premier customers get a first response to a Severity 1 incident?", "30 minutes"),
    ("support_sla.md", "Uptime commitments", "What uptime does Vault guarantee on the Enterprise plan?", "99.5%"),
    ("support_sla.md", "Escalation", "Who is the support escalation manager?", "Tomas Lindqvist"),
    ("security_policy.md", "Access control", "What is the minimum length of a password?", "14 characters"),
    ("security_policy.md", "Data protection", "How often are the encryption keys rotated?", "90 days"),
    ("security_policy.md", "Audits and testing", "Which company carries out the external penetration test?", "Halvorsen Security"),
    ("products.md", "Vault", "How many versions of every file does Vault keep?", "100"),
    ("offices.md", "Austin office", "Who manages the Austin office?", "Carla Mendes"),
    ("offices.md", "Berlin office", "How many desks are there in the Berlin office?", "70"),
    ("billing_faq.txt", "Are there discounts?", "What discount do registered non-profit organisations get?", "40%"),
    ("maintenance.md", "Maintenance windows", "How long in advance are customers told about planned maintenance?", "72 hours"),
    ("remote_work_policy.txt", "Leave", "How many days of paid leave do full-time employees have per year?", "28 days"),
    ("pricing.csv", "Canvas Team", "How much does the Canvas Team plan cost per user per month?", "$12"),
)


def commands(args) -> dict[str, list[str]]:
    data, run = str(args.out / "synth.jsonl"), str(args.out / "run")
    return {
        "synth": [
            "tuneloop", "data", "synth", str(args.docs), "--out", data, "--model", MODEL,
            "--per-passage", str(args.per_passage), "--seed", str(args.seed),
        ],
        "check": ["tuneloop", "data", "check", data, "--format", "prompt_completion"],
        "train": [
            "tuneloop", "train", "--project", "synth-docs", "--model", MODEL, "--data", data, "--format", "prompt_completion",
            "--task", "qa", "--system-prompt", SYSTEM_PROMPT, "--out", run, "--max-steps", str(args.steps),
            "--lr", f"{args.lr:g}", "--tokens-per-batch", "1024", "--pack-length", "512", "--val-fraction", "0.1",
            "--test-fraction", str(args.test_fraction), "--data-seed", str(args.seed), "--eval-steps", str(max(1, args.steps // 4)),
            "--max-new-tokens", "24", "--batch-size", "16", "--few-shot", args.few_shot, "--no-forgetting",
        ],
        "eval": ["tuneloop", "eval", run],
    }  # fmt: skip


def run_step(name: str, cmd: list[str]) -> float:
    """Run one tuneloop command from the repository root; its seconds."""
    print("$", shlex.join(cmd), flush=True)
    started = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "tuneloop"), *cmd[1:]], cwd=ROOT, check=True)
    return round(time.monotonic() - started, 1)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def unseen_passage_scores(run: Path, data: Path) -> dict:
    """Base vs tuned on the test rows whose passage has no row in the training split."""
    from tuneloop.text.metrics import squad_scores

    rows = read_jsonl(data)
    passage_of = lambda source, line: rows[line - 1]["passage_id"] if (ROOT / source).resolve() == data.resolve() else None  # noqa: E731
    trained = {passage_of(ex["source"], ex["line"]) for ex in read_jsonl(run / "splits" / "train.jsonl")}
    unseen = []
    for prediction in read_jsonl(run / "predictions.jsonl"):
        source, line = prediction["source"].rsplit(":", 1)
        if passage_of(source, int(line)) not in trained:
            unseen.append(prediction)
    result = {"test_rows": len(unseen), "passages_in_train": len(trained)}
    if unseen:
        references = [p["reference"] for p in unseen]
        result["base"] = squad_scores([p["base"] for p in unseen], references)
        result["tuned"] = squad_scores([p["tuned"] for p in unseen], references)
    return result


def handwritten_prompts(docs: Path) -> list[str]:
    """The handwritten questions with their passage as context, in the dataset's own prompt format."""
    from tuneloop.data.synth import PROMPT_TEMPLATE, read_passages

    prompts = []
    for document, heading, question, _ in HANDWRITTEN:
        passages = [p for p in read_passages(docs / document) if p.title.endswith(heading)]
        if not passages:
            raise SystemExit(f"{docs / document}: no passage under the heading {heading!r}")
        prompts.append(PROMPT_TEMPLATE.format(context=passages[0].text, question=question))
    return prompts


def handwritten_scores(run: Path, docs: Path, data: Path) -> dict:
    """Base vs tuned on the handwritten questions; the questions also present among synthesised rows are counted."""
    from tuneloop.chat import answer_prompts
    from tuneloop.data.schema import normalise_text
    from tuneloop.text.metrics import squad_scores

    prompts = handwritten_prompts(docs)
    references = [answer for *_, answer in HANDWRITTEN]
    synthesised = {normalise_text(row["prompt"].rsplit("Question: ", 1)[-1]) for row in read_jsonl(data)}
    base = answer_prompts(run, prompts, 24, use_base=True)
    tuned = answer_prompts(run, prompts, 24)
    return {
        "questions": len(prompts),
        "also_synthesised": sum(normalise_text(q) in synthesised for _, _, q, _ in HANDWRITTEN),
        "base": squad_scores(base, references),
        "tuned": squad_scores(tuned, references),
        "answers": [
            {"question": q, "reference": a, "base": b, "tuned": t} for (_, _, q, a), b, t in zip(HANDWRITTEN, base, tuned)
        ],
    }


def collect(args, cmds: dict, seconds: dict, reused: bool) -> dict:
    run, data = args.out / "run", args.out / "synth.jsonl"
    manifest = json.loads((args.out / "synth.manifest.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    train = json.loads((run / "train.json").read_text())
    split = json.loads((run / "data.json").read_text())
    predictions = read_jsonl(run / "predictions.jsonl")
    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "model": MODEL,
        "documents": [d["path"] for d in manifest["documents"]],
        "synth": {key: manifest[key] for key in ("passages", "passages_with_rows", "candidates", "rows", "dropped", "dropped_by_reason", "seconds")},
        "split_sizes": split["split_sizes"],
        "train": {"steps": train["steps"], "seconds": train["seconds"], "real_tokens": train["real_tokens"], "learning_rate": args.lr},
        "test": {"examples": metrics["test_examples"], "primary": metrics["primary"], "base": metrics["base"], "tuned": metrics["tuned"]},
        "few_shot": metrics.get("few_shot"),
        "unseen_passages": unseen_passage_scores(run, data),
        "handwritten": handwritten_scores(run, args.docs, data),
        "examples": predictions[:6],
        "seconds": seconds,
        "reused_data": reused,
        "commands": [shlex.join(cmd) for cmd in cmds.values()],
    }


def score_row(name: str, n: int, base: dict, tuned: dict) -> str:
    return (
        f"| {name} | {n} | {base['exact_match']:.3f} | {tuned['exact_match']:.3f} "
        f"| {base['f1']:.3f} | {tuned['f1']:.3f} | {tuned['f1'] - base['f1']:+.3f} |"
    )


def render_markdown(result: dict) -> str:
    synth, test, unseen, hand = result["synth"], result["test"], result["unseen_passages"], result["handwritten"]
    lines = [
        "# Synthesised QA from company documents: base vs tuned",
        "",
        f"Measured {result['date']} on {result['machine']} with {result['model']}: `tuneloop data synth` on the "
        f"{len(result['documents'])} documents of `examples/company_docs/` made {synth['rows']} rows from "
        f"{synth['passages_with_rows']}/{synth['passages']} passages in {synth['seconds']:.0f} s "
        f"({synth['candidates']} candidates, {synth['dropped']} dropped: "
        + ", ".join(f"{reason} {count}" for reason, count in synth["dropped_by_reason"].items())
        + f"). LoRA, {result['train']['steps']} steps of up to 1,024 real tokens ({result['train']['seconds']:.0f} s). "
        f"Split by the trainer: {result['split_sizes']['train']} train / {result['split_sizes']['val']} val / "
        f"{result['split_sizes']['test']} test rows, no prompt in two splits.",
        "",
        "Prompts hold the passage as context and the question; scores are SQuAD exact match and token F1 of the "
        "generated answer against the span from the document.",
        "",
        "| held-out questions | n | EM base | EM tuned | F1 base | F1 tuned | F1 gain |",
        "|---|---:|---:|---:|---:|---:|---:|",
        score_row("synthesised test split (`tuneloop eval`)", test["examples"], test["base"], test["tuned"]),
    ]
    if unseen["test_rows"]:
        lines.append(score_row("  of which: passage not in training", unseen["test_rows"], unseen["base"], unseen["tuned"]))
    lines.append(score_row("handwritten questions (not model-written)", hand["questions"], hand["base"], hand["tuned"]))
    lines += few_shot_lines(result.get("few_shot"))
    lines += [
        "",
        f"{hand['also_synthesised']} of the {hand['questions']} handwritten questions also occur (normalised) among the synthesised rows.",
        "",
        "Handwritten questions, answers of both models:",
        "",
        "| question | reference | base | tuned |",
        "|---|---|---|---|",
    ]
    cell = lambda text: text.replace("|", "\\|").replace("\n", " ")[:80]  # noqa: E731
    lines += [f"| {cell(a['question'])} | {cell(a['reference'])} | {cell(a['base'])} | {cell(a['tuned'])} |" for a in hand["answers"]]
    if result.get("load_average"):
        lines += ["", f"Load average (1, 5, 15 min) when the results were collected: {', '.join(map(str, result['load_average']))} on {result['machine']}: the timings above include any other work the machine did meanwhile."]
    invocation = result.get("bench_command") or "python bench/synth_docs.py"
    lines += ["", f"Commands (from the repository root; `{invocation}` ran them and wrote this file):", "", "```bash"]
    if result["reused_data"]:
        lines.append("# the dataset was reused from an earlier synth run (--reuse-data): its settings are in the manifest")
    lines += result["commands"] + ["```", ""]
    return "\n".join(lines)


def few_shot_lines(few_shot: dict | None) -> list[str]:
    if not few_shot or "scores" not in few_shot:
        return []
    rows = []
    for name, scores in few_shot["scores"].items():
        if name.startswith("k=") and name != "k=0" and "f1" in scores:
            k = name.removeprefix("k=")
            rows.append(f"| base model, {k} training example(s) in the prompt (few-shot) | {few_shot['test_examples']} | {scores['exact_match']:.3f} | – | {scores['f1']:.3f} | – | – |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=Path("examples/company_docs"), help="Folder of company documents.")
    parser.add_argument("--out", type=Path, default=Path("runs/synth-docs"), help="Folder for the dataset and the run (replaced).")
    parser.add_argument("--results", type=Path, default=Path("docs/results"), help="Folder of synth_docs.json and synth_docs.md.")
    parser.add_argument("--steps", type=int, default=40, help="LoRA optimiser steps (the checkpoint with the best validation loss is kept).")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="Share of the rows the trainer holds out for the test.")
    parser.add_argument("--lr", type=float, default=1e-3, help="Peak learning rate.")
    parser.add_argument("--per-passage", type=int, default=4, help="Questions asked per passage.")
    parser.add_argument("--few-shot", default="3", help="Few-shot baselines of the base model (k values; empty: off).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the fact choice and of the split.")
    parser.add_argument("--reuse-data", action="store_true", help="Keep OUT/synth.jsonl when it exists (retrain and re-evaluate only).")
    parser.add_argument("--collect-only", action="store_true", help="Run nothing: recompute the result files from the finished OUT/run.")
    args = parser.parse_args()

    import shutil

    from tuneloop.atomic import write_json_atomic, write_text_atomic

    cmds = commands(args)  # paths as given: the recorded commands work from the repository root
    args.docs, args.out, args.results = (p if p.is_absolute() else ROOT / p for p in (args.docs, args.out, args.results))
    previous = args.results / "synth_docs.json"
    if args.collect_only:
        recorded = json.loads(previous.read_text())
        seconds, reuse, invocation = recorded["seconds"], recorded["reused_data"], recorded.get("bench_command")
    else:
        if (args.out / "run").exists():
            shutil.rmtree(args.out / "run")  # the trainer refuses to reuse a finished run folder
        reuse = args.reuse_data and (args.out / "synth.manifest.json").is_file()
        if reuse:
            print(f"reusing {args.out / 'synth.jsonl'} (--reuse-data)", flush=True)
        seconds = {name: run_step(name, cmd) for name, cmd in cmds.items() if not (reuse and name == "synth")}
        invocation = shlex.join(["python", "bench/synth_docs.py", *sys.argv[1:]])
    result = collect(args, cmds, seconds, reuse)
    result["bench_command"] = invocation
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    write_json_atomic(args.results / "synth_docs.json", result)
    write_text_atomic(args.results / "synth_docs.md", render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
