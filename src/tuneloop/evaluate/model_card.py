"""``MODEL_CARD.md``: a run described in the Hugging Face model-card layout, written beside its report.

Metadata (YAML front matter: base model, library, tags, metrics) for a hub, then the card's usual
sections: model details, intended use and limits, training data and its personal-data handling,
training procedure (with differential privacy), evaluation, and the trust audits (forgetting,
bias, privacy, hallucination) base vs tuned. Everything in it is read from the run's files
(config.yaml, data.json, train.json, metrics.json); a section the run did not measure says so.
"""

from __future__ import annotations

from tuneloop import __version__
from tuneloop.atomic import write_text_atomic
from tuneloop.evaluate.report import TRUST_HEADING, md_table, metric_rows, suite_sections
from tuneloop.evaluate.table_cells import cell_text, fmt, fmt_delta
from tuneloop.evaluate.trust import TRUST_KEY
from tuneloop.runs.folder import RunDir

MODEL_CARD = "MODEL_CARD.md"


def write_model_card(run: RunDir, metrics: dict) -> None:
    write_text_atomic(run.path / MODEL_CARD, model_card(run, metrics))


def model_card(run: RunDir, metrics: dict) -> str:
    config, manifest = run.config(), run.manifest()
    summary = run.train_summary() if run.train_summary_file.is_file() else {}
    parts = [
        front_matter(config, run.method().artifact, metrics),
        f"# {config.project}: {run.path.name}\n",
        f"{config.task} fine-tune of `{config.model.name}` with {config.method.name}, trained and evaluated by tuneloop {__version__}.\n",
        details(config, summary),
        intended_use(config, metrics),
        training_data(manifest),
        training_procedure(config, summary),
        evaluation(metrics),
        trust(metrics),
    ]
    return "\n".join(parts)


def front_matter(config, artifact: str, metrics: dict) -> str:
    tags = ["tuneloop", config.task, config.method.name]
    lines = ["---", f"base_model: {config.model.name}", f"library_name: {'peft' if artifact == 'adapter' else 'transformers'}", "tags:"]
    lines += [f"- {tag}" for tag in tags]
    tuned = metrics.get("tuned") or {}
    if tuned:
        lines.append("metrics:")
        lines += [f"- {name}" for name in tuned]
    return "\n".join([*lines, "---", ""])


def details(config, summary: dict) -> str:
    rows = [
        ["base model", config.model.name],
        ["task", config.task],
        ["method", config.method.name],
        ["trainable parameters", fmt(summary.get("trainable_parameters"))],
        ["total parameters", fmt(summary.get("total_parameters"))],
    ]
    return "## Model details\n\n" + md_table(["", ""], rows) + "\n"


def intended_use(config, metrics: dict) -> str:
    rows = metrics.get("test_examples")
    return (
        "## Intended use and limits\n\n"
        f"For the `{config.task}` task of project `{config.project}`, on data like its training files. It was measured on "
        f"{rows if rows is not None else 'no'} held-out rows of that data only; answers outside that distribution, and any use "
        "where a wrong answer harms a person without a human check, are out of scope. The trust audits below say what it may "
        "have memorised, whom it may treat differently and what it may make up.\n"
    )


def training_data(manifest: dict) -> str:
    if not manifest:
        return "## Training data\n\nNot recorded (no data.json in the run).\n"
    files = ", ".join(f"`{source['path']}`" for source in manifest.get("sources", [])) or "none recorded"
    sizes = ", ".join(f"{name} {size}" for name, size in (manifest.get("split_sizes") or {}).items())
    text = (
        f"## Training data\n\nFiles: {files} (format {manifest.get('format')}); {manifest.get('rows_kept')} of "
        f"{manifest.get('rows_read')} rows kept ({manifest.get('rows_dropped')} dropped by validation); splits: {sizes}; "
        f"dataset hash `{manifest.get('dataset_hash')}`.\n\n"
    )
    pii = manifest.get("pii")
    if pii:
        found = ", ".join(f"{kind} {count}" for kind, count in pii["placeholders"].items() if count) or "none found"
        return text + f"Personal data: replaced by typed placeholders before training (data.scrub_pii): {found}; {pii['rows_with_pii']} rows had some.\n"
    return text + "Personal data: not scrubbed (data.scrub_pii off); the model may have seen names, contacts and numbers verbatim.\n"


def training_procedure(config, summary: dict) -> str:
    train = config.train
    rows = [
        ["steps", fmt(summary.get("steps"))],
        ["learning rate", fmt(train.learning_rate)],
        ["time (s)", fmt(summary.get("seconds"))],
    ]
    dp = summary.get("dp")
    privacy = (
        f"Differential privacy (DP-SGD, Opacus): epsilon {dp['epsilon']:.3g}, delta {dp.get('delta', float('nan')):.2g} over training rows."
        if dp
        else "Differential privacy: none (train.dp_epsilon unset)."
    )
    return "## Training procedure\n\n" + md_table(["", ""], rows) + f"\n{privacy}\n"


def evaluation(metrics: dict) -> str:
    if not metrics.get("tuned"):
        return "## Evaluation\n\nNot evaluated yet (tuneloop eval RUN).\n"
    rows = [[r["name"] + (" (primary)" if r["primary"] else ""), fmt(r["base"]), fmt(r["tuned"]), fmt_delta(r["delta"])] for r in metric_rows(metrics)]
    return f"## Evaluation\n\nBase vs tuned on {metrics.get('test_examples')} held-out test rows.\n\n" + md_table(["metric", "base", "tuned", "delta"], rows)


def trust(metrics: dict) -> str:
    if TRUST_KEY not in metrics:
        return "## Trust\n\nNot measured yet (tuneloop eval RUN).\n"
    parts = ["## Trust\n"]
    for heading, (note, header, rows) in suite_sections(metrics):
        if heading == TRUST_HEADING or rows or note:
            parts.append(f"### {heading}\n\n{note}\n")
            if rows:
                parts.append(md_table(header, [[cell_text(cell) for cell in row] for row in rows]))
    return "\n".join(parts)
