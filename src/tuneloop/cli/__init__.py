"""The ``tuneloop`` command: one verb per stage of the loop.

Heavy libraries are imported inside each command so ``tuneloop --help`` answers instantly.
User mistakes (:class:`~tuneloop.errors.TuneloopError`) print one clear message and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click
import typer

from tuneloop.atomic import write_json_atomic
from tuneloop.chat import answer_prompts, chat_loop
from tuneloop.cli.audit import audit_app
from tuneloop.cli.gate_options import MAX_BIAS_INCREASE, MAX_HALLUCINATION_INCREASE, MAX_MIA_AUC, REQUIRE_DP, trust_limits
from tuneloop.cli.store import feedback_app, keys_app, models_app
from tuneloop.cli.support import user_errors
from tuneloop.config import FORMATS, DataConfig, RunConfig, format_validation_error, load_config
from tuneloop.config_flags import click_options, config_flags, overrides_from_params, parse_mapping
from tuneloop.data.pipeline import check_dataset, check_datasets
from tuneloop.data.synth import SynthSettings, synthesize
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.evaluate.heldout import evaluate_run
from tuneloop.evaluate.on_file import evaluate_file
from tuneloop.evaluate.summary import print_metrics
from tuneloop.loop.gate import Gate
from tuneloop.loop.report import print_align, print_retrain
from tuneloop.merge import export_full_model, merge_adapters, parse_weights
from tuneloop.methods import METHODS
from tuneloop.models.load import load_tokenizer
from tuneloop.monitor.report import print_report
from tuneloop.monitor.watch import Thresholds, monitor_project, write_outputs
from tuneloop.progress import quiet_libraries
from tuneloop.store.db import connect
from tuneloop.store.versions import get as get_version
from tuneloop.text.generate import chat_generator
from tuneloop.text.tokenize import token_counter
from tuneloop.train.launch import inside_launch

app = typer.Typer(
    help="Fine-tune a pre-trained language model into a measurably better specialist on your data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and validate data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(feedback_app, name="feedback")
app.add_typer(audit_app, name="audit")


@data_app.command("check")
@user_errors
def data_check(
    data: Optional[list[Path]] = typer.Argument(None, help="Data files (CSV, JSON, JSONL, Parquet, TXT/MD)."),
    config: Optional[Path] = typer.Option(
        None, "--config", help="Check the datasets of this run config instead (data and every data.mix entry, with their own formats)."
    ),
    format: Optional[str] = typer.Option(None, "--format", help=f"Row format: {', '.join(FORMATS)} (default: chat)."),
    columns: str = typer.Option("", help="Map format field to file column: prompt=question,completion=answer."),
    prompt_template: Optional[str] = typer.Option(None, help="Build the prompt from columns, e.g. 'Subject: {subject}\\n{body}'."),
    target_columns: str = typer.Option("", help="Build the completion as a JSON object of these comma-separated columns."),
    model: Optional[str] = typer.Option(None, help="Tokenizer for token lengths (default: none, lengths not shown)."),
    max_length: int = typer.Option(512, help="Rows longer than this many tokens are reported as too long."),
    rating_threshold: Optional[float] = typer.Option(
        None, help="Format ratings: a numeric label at or above this score is good, below it bad [default: 0.5]."
    ),
    pii: bool = typer.Option(
        False, "--pii", help="Find personal data as data.scrub_pii would (e-mail, phone, card, IBAN, IP, SSN, NINO, street "
        "address, name): counts per type and a few rows as they would train. Your files are not changed."
    ),
    pii_allow: str = typer.Option(
        "", "--pii-allow", help="With --pii: comma-separated words that are never personal data, e.g. product names "
        "(data.pii_allow)."
    ),
):
    """Read data files row by row and report what is usable, what is not (file:line, reason), and the split."""
    scrub = {"scrub_pii": True, "pii_allow": split_list(pii_allow)} if pii else {}
    if pii_allow and not pii:
        raise ConfigError("--pii-allow only applies with --pii")
    if config is not None:
        given = [flag for flag, value in (("data files", data), ("--format", format), ("--columns", columns),
                 ("--prompt-template", prompt_template), ("--target-columns", target_columns),
                 ("--rating-threshold", rating_threshold is not None)) if value]  # fmt: skip
        if given:
            raise ConfigError(f"--config {config} names the data and how to read it; leave out {', '.join(given)}")
        data_cfg = load_config(config).data
        if pii:
            data_cfg = data_cfg.model_copy(update={"scrub_pii": True, "pii_allow": data_cfg.pii_allow + scrub["pii_allow"]})
        check_datasets(data_cfg, token_counter_for(model))
        return
    if not data:
        raise ConfigError("no data to check: give data files, or --config CONFIG.yaml")
    cfg = data_config(
        path=[str(p) for p in data],
        format=format or "chat",
        columns=parse_mapping(columns),
        prompt_template=prompt_template,
        target_columns=split_list(target_columns) or None,
        max_length=max_length,
        **({} if rating_threshold is None else {"rating_threshold": rating_threshold}),
        **scrub,
    )
    check_dataset(cfg, token_counter_for(model))


def split_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']"""
    return [item.strip() for item in text.split(",") if item.strip()]


def token_counter_for(model: str | None):
    """Data format -> token length of an example under ``model``'s tokenizer; None without a model."""
    if model is None:
        return None
    tokenizer = load_tokenizer(model)
    return lambda data_format: token_counter(tokenizer, data_format)


@data_app.command("synth")
@user_errors
def data_synth(
    docs: list[Path] = typer.Argument(..., help="Company documents: .txt/.md/.csv files, or folders searched for them."),
    out: Path = typer.Option(..., "--out", help="Dataset to write: .jsonl, .json, .csv or .parquet (OUT.manifest.json beside it)."),
    model: str = typer.Option("smollm2-135m-instruct", help="Causal LM that writes the questions (built-in name, folder, .gguf, hub id)."),
    generator: str = typer.Option(
        "model", help="model: the model writes a question for an answer span cut from the passage; model-qa: it writes "
        "question and answer (kept only when the passage supports the answer); rules: no model, template/cloze questions.",
    ),  # fmt: skip
    per_passage: int = typer.Option(3, help="Questions asked per passage (model-qa: one per passage)."),
    max_new_tokens: int = typer.Option(40, help="Most tokens the model writes per question."),
    min_support: float = typer.Option(0.8, help="Keep an answer only when at least this share of its words is found in the passage (0-1)."),
    seed: int = typer.Option(0, help="Seed of which facts are asked about when a passage has more than --per-passage."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N passages (a quick look)."),
    batch_size: int = typer.Option(16, help="Prompts generated at once."),
    passage_tokens: int = typer.Option(192, help="Target passage size in (estimated) tokens; longer sections are split."),
    context: bool = typer.Option(True, "--context/--no-context", help="Put the passage in each prompt (open book) or ask the bare question."),
    attempts: int = typer.Option(2, help="--generator model: tries per fact (the worked examples reordered) until a question passes the filters."),
    roundtrip: bool = typer.Option(
        True, "--roundtrip/--no-roundtrip", help="Model generators: ask the model its own question with the passage and keep the row only when it gives the answer back."
    ),
):
    """Turn company documents into question/answer rows (format prompt_completion) with provenance per row.

    Each row has prompt ("Context: PASSAGE / Question: ..."), completion (the answer) and where it came from: source, lines, passage_id, method.

    Duplicate questions, answers the passage does not support, and too short or too long questions or answers are dropped; the counts per reason are printed and kept in OUT.manifest.json. Nothing is written when no row survives.

    Train on it with: tuneloop train --data OUT --format prompt_completion --task qa
    """
    settings = SynthSettings(
        model=model, generator=generator, per_passage=per_passage, max_new_tokens=max_new_tokens, min_support=min_support,
        seed=seed, limit=limit, batch_size=batch_size, passage_tokens=passage_tokens, context=context, roundtrip=roundtrip,
        attempts=attempts,
    )  # fmt: skip
    generate = None if generator == "rules" else chat_generator(model, batch_size)
    result = synthesize(docs, out, settings, generate)
    manifest = result.manifest
    typer.echo(
        f"{manifest['rows']} rows from {manifest['passages_with_rows']}/{manifest['passages']} passages of "
        f"{len(manifest['documents'])} documents ({manifest['candidates']} candidates, {manifest['dropped']} dropped)"
    )
    for reason, count in manifest["dropped_by_reason"].items():
        typer.echo(f"  dropped {count:>4}  {reason}")
    typer.echo(f"dataset: {result.out}  manifest: {result.manifest_path}")


def data_config(**fields):
    from pydantic import ValidationError

    try:
        return DataConfig(**fields)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "flags", prefix="data.")) from None


def read_run_config(config_file, overrides: dict, **extras) -> RunConfig:
    return load_config(config_file, overrides)


def config_command(name: str, help: str, action, extra_params: list, read=read_run_config, without: tuple[str, ...] = ()) -> click.Command:
    """A click command taking an optional YAML config plus one flag per config field (flags win);
    ``read(config_file, overrides, **extras)`` reads it (default: one validated RunConfig), and the
    config sections in ``without`` do not apply to the command and get no flags."""
    flags = config_flags(RunConfig, without)
    extra_names = [param.name for param in extra_params]

    @user_errors
    def run(config_file, **params):
        extras = {key: params.pop(key) for key in extra_names}
        overrides = overrides_from_params(flags, params)
        action(read(config_file, overrides, **extras), **extras)

    params = [click.Argument(["config_file"], required=False, type=click.Path(dir_okay=False)), *extra_params, *click_options(flags)]
    return click.Command(name, callback=run, params=params, help=help)


def train_command() -> click.Command:
    """``tuneloop train``: built from the config schema so every field is a flag."""

    def action(config, resume: bool):
        from tuneloop.train.run import train

        out = train(config, resume=resume)
        if not inside_launch():  # the launching process reports once for all of its workers
            typer.echo(f"run saved to {out}")

    return config_command(
        "train",
        "Fine-tune a model. CONFIG_FILE (YAML) is optional; every config field is also a flag and flags win.",
        action,
        [click.Option(["--resume"], is_flag=True, help="Continue the run in --out from its last checkpoint.")],
        without=("tune",),
    )


def compare_command() -> click.Command:
    """``tuneloop compare``: the train flags plus the list of methods."""

    def read(config_file, overrides: dict, methods: str) -> dict:
        from tuneloop.compare import read_compare_config

        return read_compare_config(config_file, overrides, method_names(methods))

    def action(config: dict, methods: str):
        from tuneloop.compare import compare_methods
        from tuneloop.train.run import default_out_dir

        out = Path(config.get("out") or default_out_dir(config.get("project", "default"), "compare"))
        compare_methods(config, method_names(methods), out)
        typer.echo((out / "compare.md").read_text())
        typer.echo(f"table: {out / 'compare.md'}  chart: {out / 'compare.png'}  data: {out / 'compare.json'}")

    return config_command(
        "compare",
        "Train and evaluate the same model and data with several methods; one table of trainable parameters, "
        "time, peak memory, artefact size and test metric. --out is the folder of the comparison "
        "(default: a new runs/<project>/compare-<timestamp>). "
        "Each method trains at its usual learning rate unless --lr is given.",
        action,
        [click.Option(["--methods"], default=",".join(METHODS), show_default=True, help="Comma-separated methods to compare.")],
        read,
        without=("tune",),
    )


def method_names(methods: str) -> list[str]:
    return [name.strip() for name in methods.split(",") if name.strip()]


def tune_command() -> click.Command:
    """``tuneloop tune``: the train flags plus the tune section's (--trials, --workers, --metric, ...)."""

    def action(config):
        from tuneloop.tune.study import tune

        summary = tune(config, origin=click.get_current_context().params.get("config_file") or "flags")
        out = Path(summary["test"]["run"]).parent
        typer.echo(f"trials: {out / 'trials.md'}  summary: {out / 'tune.json'}  plots: {', '.join(str(out / p) for p in summary['plots'])}")

    return config_command(
        "tune",
        "Search the config's tune.space with Optuna (TPE sampler, median pruner on validation values). Trials see "
        "only the train and validation splits; the best configuration is retrained in OUT/best and evaluated once "
        "on the test split. The study lives in OUT/study.db: run the same command again to resume it or add trials.",
        action,
        [],
    )


@app.command("eval")
@user_errors
def eval_command(
    run: Path = typer.Argument(..., help="Run folder written by `tuneloop train`."),
    max_examples: Optional[int] = typer.Option(None, help="Evaluate on at most this many test rows."),
    data: Optional[list[Path]] = typer.Option(
        None, "--data", help="Score base and tuned on this file (any format; repeat for several) instead of the run's test split; "
        "read with the run's data settings unless the flags below say otherwise. Results go to RUN/eval-NAME.json "
        "and its report, never over metrics.json.",
    ),  # fmt: skip
    format: Optional[str] = typer.Option(None, "--format", help="--data: row format, when it differs from the run's (the run's columns, template and target columns are then dropped)."),
    columns: Optional[str] = typer.Option(None, help="--data: map format field to file column: prompt=question,completion=answer."),
    prompt_template: Optional[str] = typer.Option(None, help="--data: build the prompt from columns, e.g. 'Subject: {subject}\n{body}'."),
    target_columns: Optional[str] = typer.Option(None, help="--data: build the completion as a JSON object of these comma-separated columns."),
    name: Optional[str] = typer.Option(None, help="--data: NAME of the results, RUN/eval-NAME.json (default: the first file's name)."),
    judge_reward_run: Optional[Path] = typer.Option(
        None, "--judge-reward-run", help="A reward run that judges both models' answers to the test prompts: mean reward, win rate "
        "and KL to the base in metrics.json's alignment entry (default: the run's eval.judge_reward_run).",
    ),  # fmt: skip
):
    """Evaluate base vs tuned on the run's held-out test split (metrics.json and the report), or on any file with --data."""
    reading = {
        key: value
        for key, value in (
            ("format", format),
            ("columns", parse_mapping(columns) if columns is not None else None),
            ("prompt_template", prompt_template),
            ("target_columns", [c.strip() for c in target_columns.split(",") if c.strip()] if target_columns is not None else None),
        )
        if value is not None
    }
    if not data:
        if reading or name:
            raise ConfigError("--format, --columns, --prompt-template, --target-columns and --name describe a --data file; give one")
        print_metrics(evaluate_run(run, max_examples, str(judge_reward_run) if judge_reward_run else None), run)
        return
    if judge_reward_run:
        raise ConfigError("--judge-reward-run judges the answers to the run's test prompts; it does not apply to a --data file")
    metrics, written = evaluate_file(run, [str(path) for path in data], reading, name, max_examples)
    print_eval_file(metrics, written)


def print_eval_file(metrics: dict, written: dict) -> None:
    """The table, the file's unusable rows (file:line: reason) and where the results are."""
    print_metrics(metrics, rows_named=metrics["data"]["files"])
    if metrics["dropped_rows"]:
        typer.echo(f"rows not usable ({metrics['data']['rows_dropped']}), left out:", err=True)
        for line in metrics["dropped_rows"][:10]:
            typer.echo(f"  {line}", err=True)
    typer.echo(f"results: {written['json']}  report: {written['html']} (markdown: {written['markdown']})")


@app.command("generate")
@user_errors
def generate_command(
    run: Path = typer.Argument(..., help="Run folder with a trained adapter."),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="User message; repeat for several."),
    max_new_tokens: int = typer.Option(128, help="Most tokens to generate."),
    base: bool = typer.Option(False, "--base", help="Answer with the base model (adapter disabled)."),
):
    """Answer one or more prompts with the tuned model (the run's system prompt applied)."""
    for text in answer_prompts(run, prompt, max_new_tokens, use_base=base):
        typer.echo(text)


@app.command("chat")
@user_errors
def chat_command(
    run: Path = typer.Argument(..., help="Run folder with a trained adapter."),
    max_new_tokens: int = typer.Option(256, help="Most tokens per answer."),
):
    """Chat with the tuned model in the terminal (empty line or Ctrl-D quits)."""
    chat_loop(run, max_new_tokens)


@app.command("merge")
@user_errors
def merge_command(
    runs: list[Path] = typer.Argument(..., help="Run folders with LoRA/rsLoRA adapters on the same base model (one run with --export-full)."),
    out: Path = typer.Option(..., "--out", help="New folder for the result; must not exist yet (or be empty)."),
    combination: str = typer.Option(
        "linear",
        help="How the adapters combine (peft): linear, cat, svd, ties, ties_svd, dare_linear, dare_ties, "
        "dare_linear_svd, dare_ties_svd, magnitude_prune, magnitude_prune_svd. linear/ties/dare_*/magnitude_prune "
        "need equal ranks; cat and *_svd do not.",
    ),
    weights: str = typer.Option("", help="One weight per run, comma-separated, in run order (default 1.0 each), e.g. 0.7,0.3."),
    density: float = typer.Option(0.5, help="ties, dare and magnitude_prune: share of each adapter's values kept, in (0, 1]."),
    seed: int = typer.Option(0, help="dare: seed of the random pruning."),
    export_full: bool = typer.Option(
        False, "--export-full", help="Instead: fold ONE run's adapter into its base and write a full safetensors model folder that plain transformers loads."
    ),
):
    """Combine adapters trained on different tasks into one, or export a run as a full model.

    The merged folder (adapter/, config.yaml, merge.json) works like a run: `tuneloop generate OUT`
    and `tuneloop chat OUT` use it, and `tuneloop merge OUT --export-full --out DIR` folds it into a full model.
    """
    if export_full:
        if len(runs) != 1:
            raise TuneloopError(f"--export-full takes exactly one run folder, got {len(runs)}; merge them first, then export the merged folder")
        typer.echo(f"full model saved to {export_full_model(runs[0], out)}")
        return
    merged = merge_adapters(runs, out, combination, parse_weights(weights), density, seed)
    typer.echo(f"merged adapter saved to {merged / 'adapter'} (sources and settings: {merged / 'merge.json'})")


@app.command("serve")
@user_errors
def serve_command(
    base: str = typer.Option("smollm2-135m-instruct", help="The base model every served adapter was trained on."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    store: Optional[Path] = typer.Option(None, help="Store file (default $TUNELOOP_STORE or $TUNELOOP_HOME/store.sqlite3)."),
    max_batch: int = typer.Option(8, help="Requests generated together in one batch."),
    max_prompt_tokens: int = typer.Option(2048, help="Longest prompt accepted, in tokens."),
    max_tokens: int = typer.Option(512, help="Largest max_tokens a request may ask for."),
    log_prompts: str = typer.Option(
        "scrubbed", help="What the request log keeps of each prompt and answer: scrubbed (personal data replaced by "
        "<EMAIL_1>, <NAME_1>, ... placeholders, as data.scrub_pii does), full (as sent), or none (no text; monitoring "
        "and feedback export then have none either)."
    ),
    max_request_bytes: int = typer.Option(1_000_000, help="Largest request body accepted (413 above it, refused before it is read)."),
    api_docs: bool = typer.Option(False, help="Serve /openapi.json, /docs and /redoc (without a key)."),
):
    """OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /v1/feedback) and the web page at /.

    Requests name `base`, a version (`support-triage:v3`) or a stage (`support-triage@production`); adapters
    load on first use. Every route but /healthz and the web page needs an API key: `tuneloop keys create NAME`.
    """
    from tuneloop.serve.run import serve

    serve(base, host, port, store, max_batch, max_prompt_tokens, max_tokens, log_prompts, max_request_bytes, api_docs)


@app.command("monitor")
@user_errors
def monitor_command(
    project: str = typer.Argument(..., help="Project whose production version is watched."),
    window_hours: float = typer.Option(24.0, help="Look at requests and feedback of this many past hours."),
    out: Path = typer.Option(Path("runs/monitor"), help="Folder for monitor.json and drift.png."),
    store: Optional[Path] = typer.Option(None, help="Store file (default $TUNELOOP_STORE or $TUNELOOP_HOME/store.sqlite3)."),
    drift_p_value: float = typer.Option(0.01, help="Alert when the drift test's p-value falls below this."),
    max_negative_rate: float = typer.Option(0.3, help="Alert when the negative-feedback rate is above this (whole 95% interval)."),
    min_requests: int = typer.Option(20, help="Fewer live prompts than this: no drift verdict."),
):
    """Compare recent live prompts with the production version's training prompts and read the feedback.

    Exits 1 when an alert fires (input drift, negative feedback), 0 otherwise, so cron or CI can act on it.
    """
    import contextlib

    with contextlib.closing(connect(store)) as conn:
        report = monitor_project(conn, project, window_hours * 3600, Thresholds(drift_p_value, max_negative_rate, min_requests))
    written = write_outputs(report, out)
    print_report(report)
    typer.echo(f"details: {written}")
    if report.alerts:
        raise typer.Exit(1)


@app.command("retrain")
@user_errors
def retrain_command(
    project: str = typer.Argument(..., help="Project whose production version is retrained."),
    data: list[Path] = typer.Option(..., "--data", help="New company data (same columns/format as the production run's); repeatable."),
    out: Path = typer.Option(..., "--out", help="New folder: dataset/, candidate/ (the run), retrain.json."),
    store: Optional[Path] = typer.Option(None, help="Store file (default $TUNELOOP_STORE or $TUNELOOP_HOME/store.sqlite3)."),
    replay: float = typer.Option(0.3, help="Share of production's training rows replayed beside the new ones (against forgetting)."),
    gate_metric: str = typer.Option("auto", help="Metric the gate compares: the task's headline metric (auto) or any computed one, e.g. loss."),
    tolerance: float = typer.Option(0.01, help="Largest regression allowed on the frozen test set and the general-ability check."),
    min_improvement: float = typer.Option(0.0, help="The candidate must beat production on the new data's test split by more than this."),
    max_steps: Optional[int] = typer.Option(None, help="Training steps of the candidate (default: production's settings)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate of the candidate (default: production's)."),
    align: bool = typer.Option(False, "--align/--no-align", help="Then run `tuneloop align`'s round (default settings) into OUT/align when enough preferences are waiting."),
    min_preferences: int = typer.Option(16, help="With --align: fewest preference pairs waiting for the round to run (fewer: it is skipped)."),    max_bias_increase: Optional[float] = MAX_BIAS_INCREASE,
    max_mia_auc: Optional[float] = MAX_MIA_AUC,
    max_hallucination_increase: Optional[float] = MAX_HALLUCINATION_INCREASE,
    require_dp: bool = REQUIRE_DP,
):
    """New data + feedback (corrections as SFT rows, preferences kept as pairs) + replay -> a candidate trained
    from the production adapter -> scored against production -> promoted only if the gate passes, with the reason recorded.
    With --align, the preferences then train an alignment round (see tuneloop align) on the resulting production version.
    """
    import contextlib

    from tuneloop.loop.align import AlignSettings, align_after_retrain, preferences_waiting
    from tuneloop.loop.retrain import retrain

    overrides = {key: value for key, value in (("train.max_steps", max_steps), ("train.learning_rate", lr)) if value is not None}
    settings = AlignSettings(min_preferences=min_preferences)
    with contextlib.closing(connect(store)) as conn:
        trust = trust_limits(max_bias_increase, max_mia_auc, max_hallucination_increase, require_dp)
        record = retrain(conn, project, [str(p) for p in data], out, Gate(gate_metric, tolerance, min_improvement, trust), replay, overrides)
        print_retrain(record)
        if align:
            aligned = align_after_retrain(conn, record, out, Gate(tolerance=tolerance, trust=trust), settings)
            record["align"] = aligned if "skipped" in aligned else {k: aligned[k] for k in ("candidate", "promoted", "reason")}
            write_json_atomic(out / "retrain.json", record)
            print_align(aligned) if "skipped" not in aligned else typer.echo(f"align skipped: {aligned['skipped']}")
        else:
            waiting = preferences_waiting(conn, project, get_version(conn, record["production_before"]).created_at)
            if waiting >= min_preferences:
                typer.echo(f"{waiting} preference pairs are waiting: learn from them with tuneloop align {project} (or retrain --align)")
    typer.echo(f"details: {out / 'retrain.json'}")


@app.command("align")
@user_errors
def align_command(
    project: str = typer.Argument(..., help="Project whose production version learns from its users' preferences and ratings."),
    out: Path = typer.Option(..., "--out", help="New folder: data/, reward/ (the round's reward model), warmup/ and candidate/ (runs), align.json."),
    store: Optional[Path] = typer.Option(None, help="Store file (default $TUNELOOP_STORE or $TUNELOOP_HOME/store.sqlite3)."),
    min_preferences: int = typer.Option(16, help="Fewest preference pairs (ratings with --objective kto) since the last round; fewer: exit 2, nothing trained."),
    objective: str = typer.Option("auto", help="dpo (A/B preference pairs), kto (thumbs ratings) or auto (dpo when pairs are waiting, else kto)."),
    heldout_fraction: float = typer.Option(0.25, help="Share of prompts held out to compare production and candidate under the reward model."),
    steps: int = typer.Option(10, help="DPO/KTO steps of the candidate."),
    lr: float = typer.Option(1e-3, "--lr", help="DPO/KTO learning rate."),
    beta: Optional[float] = typer.Option(None, help="dpo.beta / kto.beta (default: the task's)."),
    warmup_steps: int = typer.Option(60, help="Supervised steps on the chosen answers before DPO/KTO (0: none)."),
    warmup_lr: float = typer.Option(1e-2, help="Learning rate of the warm-up."),
    replay: float = typer.Option(1.0, help="Production's own training rows replayed in the warm-up, per chosen answer (against forgetting)."),
    reward_steps: int = typer.Option(40, help="Steps of the round's reward model."),
    reward_lr: float = typer.Option(5e-3, help="Learning rate of the round's reward model."),
    max_new_tokens: int = typer.Option(32, help="Tokens per held-out answer of production and candidate."),
    tolerance: float = typer.Option(0.01, help="Largest regression allowed on the frozen test set and the general-ability check."),
    min_improvement: float = typer.Option(0.0, help="The candidate's mean held-out reward must beat production's by more than this."),
    gate_metric: str = typer.Option("auto", help="Frozen-test metric: the task's headline metric (auto) or any computed one, e.g. loss."),
    seed: int = typer.Option(0, help="Seed of the held-out split."),    max_bias_increase: Optional[float] = MAX_BIAS_INCREASE,
    max_mia_auc: Optional[float] = MAX_MIA_AUC,
    max_hallucination_increase: Optional[float] = MAX_HALLUCINATION_INCREASE,
    require_dp: bool = REQUIRE_DP,
):
    """One alignment round: the feedback since the last round -> a reward model and a DPO/KTO candidate from the
    production adapter -> both models scored (held-out reward and win rate, frozen test, general check) -> promoted
    only if the reward improves and nothing else regresses; the round is recorded in the store and align.json.

    Exits 2 with the counts when fewer preferences than --min-preferences are waiting (nothing is trained or promoted).
    """
    import contextlib

    from tuneloop.loop.align import AlignSettings, align

    settings = AlignSettings(
        min_preferences=min_preferences, objective=objective, heldout_fraction=heldout_fraction, seed=seed, warmup_steps=warmup_steps,
        warmup_learning_rate=warmup_lr, replay=replay, steps=steps, learning_rate=lr, beta=beta, reward_steps=reward_steps,
        reward_learning_rate=reward_lr, max_new_tokens=max_new_tokens,
    )  # fmt: skip
    with contextlib.closing(connect(store)) as conn:
        trust = trust_limits(max_bias_increase, max_mia_auc, max_hallucination_increase, require_dp)
        record = align(conn, project, out, Gate(gate_metric, tolerance, min_improvement, trust), settings)
    print_align(record)
    typer.echo(f"details: {out / 'align.json'}")


@app.command("demo")
@user_errors
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), help="Run folder for the demo."),
    rows: int = typer.Option(600, help="Support tickets to generate."),
    seed: int = typer.Option(0, help="Seed of the data generator, split and training."),
    fresh: bool = typer.Option(True, "--fresh/--keep", help="Replace an existing demo run folder."),
):
    """The main job on the built-in offline model: support-ticket triage, base vs LoRA-tuned."""
    from tuneloop.demo.run import run_demo

    run_demo(out, rows, seed, fresh)


def build_cli() -> click.Group:
    """The whole ``tuneloop`` command: typer's commands plus the schema-built ones."""
    command = typer.main.get_command(app)
    command.add_command(train_command())
    command.add_command(compare_command())
    command.add_command(tune_command())
    return command


def main() -> None:
    quiet_libraries()
    command = build_cli()
    try:
        sys.exit(command.main(prog_name="tuneloop", standalone_mode=True))
    except click.exceptions.Exit as done:  # --help of the click-built `train` command
        sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
