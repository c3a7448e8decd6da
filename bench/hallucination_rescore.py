"""The hallucination suite's answer checks on the answers an evaluated run already has, with no model loaded.

    python bench/hallucination_rescore.py RUN [--fields product] [--rows 64]

``tuneloop eval`` keeps both models' answers to the test rows in ``RUN/predictions.jsonl``. This
scores the first ``--rows`` of them exactly as the ``hallucination`` suite does (lexical support
against each row's prompt, the reference answers as the floor), in seconds: the answerable half of
the audit for a run evaluated before the suite existed, or while the CPU is taken. The unanswerable
rows need both models to answer them: ``tuneloop audit hallucination RUN`` measures everything.
Prints the measures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from tuneloop.errors import TuneloopError
from tuneloop.evaluate.hallucination import HallucinationPlan, grounded_row, section
from tuneloop.runs.folder import RunDir


def rescore(run_dir: str, fields: list[str] | None, rows: int) -> dict:
    run = RunDir.existing(run_dir)
    if not run.predictions_file.is_file():
        raise TuneloopError(f"{run.path} has no predictions.jsonl: run `tuneloop eval {run.path}` first")
    predictions = [json.loads(line) for line in run.predictions_file.read_text(encoding="utf-8").splitlines() if line.strip()][:rows]
    grounded = [grounded_row(example) for example in run.split("test")[: len(predictions)]]
    for prediction, row in zip(predictions, grounded, strict=True):
        if prediction["reference"] != row.reference:
            raise TuneloopError(f"{run.predictions_file}: its rows are not the test split's in order ({row.source}); evaluate the run again")
    plan = HallucinationPlan(grounded, [], fields, [], None)
    answers = {which: {"answers": [p[which] for p in predictions], "unanswerable_answers": []} for which in ("base", "tuned")}
    measured = section(plan, answers["base"], answers["tuned"], run.config())
    return {key: measured[key] for key in ("base", "tuned", "reference", "rows", "quoted_rows", "grounded_fields")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an evaluated run folder (it holds predictions.jsonl)")
    parser.add_argument("--fields", default=None, help="JSON answers: comma-separated fields whose values must come from the prompt (default: the run's eval.grounded_fields, else every field)")
    parser.add_argument("--rows", type=int, default=64, help="the first ROWS test answers (default 64, the suite's default)")
    args = parser.parse_args(argv)
    fields = [name.strip() for name in args.fields.split(",") if name.strip()] if args.fields else RunDir.existing(args.run).config().eval.grounded_fields
    try:
        print(json.dumps(rescore(args.run, fields, args.rows), indent=2))
    except TuneloopError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
