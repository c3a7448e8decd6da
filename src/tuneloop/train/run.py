"""The training recipe, top to bottom: prepare data -> load model -> apply method -> train -> save.

Everything the user could get wrong (config, data, model path) is checked before the run
folder is created, so bad input never leaves a half-written run behind. A run that dies
mid-training leaves ``checkpoints/`` and no ``adapter/``; ``--resume`` continues it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from tuneloop.atomic import remove_staging_leftovers, staged_dir
from tuneloop.config import RunConfig
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.losses.distill import check_unsharded
from tuneloop.methods import apply_method, get_method, methods_where
from tuneloop.objectives import get_task
from tuneloop.progress import console
from tuneloop.runs.folder import RunDir, read_json
from tuneloop.train.callbacks import CheckpointManifestCallback, JsonlLogCallback, RichProgressCallback
from tuneloop.train.checkpoints import resume_checkpoint
from tuneloop.train.curriculum import check_curriculum, curriculum_rows
from tuneloop.train.dp_sgd import (
    PrivateTraining,
    check_dp_settings,
    check_grad_sample_memory,
    check_one_piece_per_row,
    dp_switched_off,
    dp_rows_per_step,
    plan_dp,
    train_with_dp,
)
from tuneloop.train.fused_lora import fuse_lora_layers
from tuneloop.train.launch import (
    check_launch,
    checkpoint_chosen_by_launcher,
    inside_launch,
    is_main_process,
    launched,
    local_processes,
    owns_run_folder,
    run_launched,
    threads_per_process,
    world_size,
)
from tuneloop.train.precision import Precision, bf16_warning, choose_precision, model_width
from tuneloop.train.prepare import PreparedData, prepare_dataset
from tuneloop.train.segmented_attention import use_segmented_attention
from tuneloop.train.trainer import TuneloopTrainer
from tuneloop.text.metrics import LOWER_IS_BETTER


def default_out_dir(project: str, kind: str = "") -> Path:
    """A fresh folder per run, ``runs/<project>/<timestamp>`` (``<kind>-<timestamp>`` for e.g. a comparison)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / project / (f"{kind}-{stamp}" if kind else stamp)


def train(config: RunConfig, resume: bool = False, callbacks: tuple = ()) -> Path:
    """Fine-tune ``config.model`` on ``config.data``; returns the run folder.

    ``callbacks`` are extra transformers TrainerCallbacks (``tuneloop tune`` prunes trials through one).

    >>> out = train(load_config("configs/support_triage.yaml"))  # doctest: +SKIP
    """
    set_threads(config.train.threads)
    out = Path(config.out) if config.out else default_out_dir(config.project)
    if not inside_launch() and owns_run_folder(config):  # the launching process of node 0 checks it for all
        check_out_dir(out, resume)
    task = get_task(config.task)
    check_launch(config, gpus=cuda_devices())
    private = config.train.dp_epsilon is not None
    if private:
        check_dp_settings(config, task, resume)
        if callbacks:
            raise ConfigError("train.dp_epsilon: DP-SGD trains in a loop of its own, which takes no Trainer callbacks")
    if resume and task.trains_itself:
        raise ConfigError(
            f"--resume: task {task.name} trains in a loop of its own, which keeps no checkpoints to continue from; "
            "start a new run (another --out)"
        )
    task.check_config(config)
    task.check_model(config.model)
    packs = get_method(config.method.name).packs_with(task)
    check_curriculum(config, packs)
    check_unsharded(config)
    tokenizer = task.load_tokenizer(config.model)
    data = prepare_dataset(config.data, tokenizer, task)
    if resume:
        check_same_data(out, data)
    # One process picks the checkpoint (and sets damaged ones aside); launched processes are told which.
    checkpoint = checkpoint_chosen_by_launcher() if inside_launch() else resume_point(out, owns_run_folder(config)) if resume else None
    if launched(config) and not inside_launch():
        run_launched(config.model_copy(update={"out": str(out)}), resume, checkpoint)
        return out
    model = load_model_with_method(task, config, data.labels)
    precision = run_precision(config, task, private, model)
    if is_main_process():
        say_precision(precision, config)
    if private:
        return train_privately(task, model, tokenizer, data, config, out, packs, precision)
    if config.train.fused_kernels:
        use_fused_kernels(model, packs)
    scorer = validation_scorer(task, tokenizer, data, config)
    if scorer is not None:
        scorer(model, data.splits.val[:1])  # an unknown metric fails here, before the run folder is written
    if is_main_process():
        write_run_header(out, config, data, resume)
    if task.trains_itself:
        return train_in_task_loop(task, model, tokenizer, data, config, out, precision)
    trainer = build_trainer(model, tokenizer, data, config, out, task, precision, scorer, callbacks)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if is_main_process():
        save_trained(trainer.accelerator.unwrap_model(trainer.model), tokenizer, config, out)
        write_train_summary(out, trainer, precision)
    return out


def train_in_task_loop(task, model, tokenizer, data: PreparedData, config: RunConfig, out: Path, precision: Precision) -> Path:
    """A task with a training loop of its own (ppo, grpo): its loop, then the same saving and summary."""
    started = time.perf_counter()
    summary = task.fit(model, tokenizer, data, config, out)
    seconds = time.perf_counter() - started
    save_trained(model, tokenizer, config, out)
    write_loop_summary(out, model, {**summary, "precision": precision.record()}, seconds)
    return out


def train_privately(task, model, tokenizer, data: PreparedData, config: RunConfig, out: Path, packs: bool, precision: Precision) -> Path:
    """DP-SGD (:mod:`tuneloop.train.dp_sgd`): the plan, the memory check and the per-example gradient
    hooks before the run folder is written (a refusal leaves nothing), then its loop, saving and summary."""
    check_one_piece_per_row(data, task, tokenizer, config.data.max_length)
    plan = plan_dp(config, len(data.train_tokens), dp_rows_per_step(data.train_tokens, config.train.tokens_per_batch))
    check_grad_sample_memory(model, plan, config.train.dp_grad_sample_memory_gb)
    switched_off = dp_switched_off(config, packs)
    for reason in switched_off:
        console().print(f"DP-SGD: {reason}")
    private = PrivateTraining(model, plan, config)
    scorer = validation_scorer(task, tokenizer, data, config)
    if scorer is not None:
        scorer(model, data.splits.val[:1])
    write_run_header(out, config, data)
    started = time.perf_counter()
    summary = train_with_dp(private, task, tokenizer, data, config, out, scorer)
    seconds = time.perf_counter() - started
    private.close()
    save_trained(model, tokenizer, config, out)
    summary["dp"]["switched_off"] = switched_off
    write_loop_summary(out, model, {**summary, "precision": precision.record()}, seconds)
    return out


def run_precision(config: RunConfig, task, private: bool, model) -> Precision:
    """What the run trains in and why: ``train.precision`` resolved (:mod:`tuneloop.train.precision`), or fp32
    where the loop has no other (DP-SGD; a task whose own loop does not follow the setting)."""
    if private:
        return Precision("fp32", "DP-SGD trains in fp32 (per-example gradients and noise)")
    if not task.follows_precision:
        return Precision("fp32", f"task {task.name} trains in fp32 in its own loop")
    return choose_precision(config.train.precision, width=model_width(model))


def say_precision(precision: Precision, config: RunConfig) -> None:
    console().print(f"precision {precision.name}: {precision.why}")
    warning = bf16_warning(precision) if config.train.precision == "bf16" else None
    if warning:
        console().print(f"[yellow]warning:[/yellow] {warning}")


def write_loop_summary(out: Path, model, summary: dict, seconds: float) -> None:
    """``train.json`` of a run trained outside the Trainer: the loop's summary with time and parameter counts."""
    RunDir(out).write_train_summary(
        {
            **summary,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(summary.get("real_tokens", 0) / max(seconds, 1e-9), 2),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_parameters": sum(p.numel() for p in model.parameters()),
        }
    )


def set_threads(threads: int) -> None:
    """All cores (or ``train.threads``), shared out between the processes of a launched run."""
    import torch

    torch.set_num_threads(threads_per_process(local_processes(), threads))


def check_out_dir(out: Path, resume: bool) -> None:
    if resume and not RunDir(out).config_file.exists():
        raise TuneloopError(f"--resume: {out} holds no run to resume (no config.yaml)")
    if not resume and out.exists() and any(out.iterdir()):
        raise TuneloopError(f"run folder {out} already exists; pass --resume to continue it or choose another --out")


def check_same_data(out: Path, data: PreparedData) -> None:
    recorded = RunDir(out).manifest()["dataset_hash"]
    if recorded != data.manifest["dataset_hash"]:
        raise TuneloopError(f"--resume: the data changed since {out} was started (dataset hash differs)")


def write_run_header(out: Path, config: RunConfig, data: PreparedData, resume: bool = False) -> None:
    """config.yaml, data.json and splits/. A new run's folder appears with all three at once, so a run
    killed while writing them leaves no folder that neither a new run nor ``--resume`` would take."""
    config = config.model_copy(update={"out": str(out)})
    if resume:
        write_header_files(RunDir(out), config, data)
        return
    remove_staging_leftovers(out.parent, out.name)  # a start killed while writing its header left its staging folder
    with staged_dir(out) as folder:  # out is absent or empty (check_out_dir)
        write_header_files(RunDir(folder), config, data)


def write_header_files(run: RunDir, config: RunConfig, data: PreparedData) -> None:
    run.write_config(config)
    run.write_manifest(data.manifest)
    run.write_splits(data.splits)


def resume_point(out: Path, owner: bool = True) -> Path | None:
    """The checkpoint to continue from (:func:`resume_checkpoint`). The run folder's ``owner`` (node 0) also
    removes what the killed process left half-written, sets damaged checkpoints aside and cuts the log back
    to the records the checkpoint had logged, so the steps run again are logged once; other nodes only read."""
    if not owner:
        return resume_checkpoint(out / "checkpoints", say=lambda message: None, set_aside=False)
    for folder in (out, RunDir(out).splits_dir):
        remove_staging_leftovers(folder)  # files the killed process was writing
    checkpoint = resume_checkpoint(out / "checkpoints", say=console().print)
    RunDir(out).truncate_log(records=len(read_json(checkpoint / "trainer_state.json")["log_history"]) if checkpoint else 0)
    return checkpoint


def load_model_with_method(task, config: RunConfig, labels: list[str] | None):
    """The task's model (a new head is seeded, so evaluation can rebuild the same base) with the method applied.

    Loaded before the run folder is written: a method that cannot apply fails without leftovers.
    """
    from transformers import set_seed

    set_seed(config.train.seed)
    model = task.load_model(config.model, labels)
    set_seed(config.train.seed)
    if getattr(config.method, "init_from", None):  # only adapter methods have the setting
        model = continue_adapter(model, config)
    else:
        model = apply_method(model, config.method, task.peft_task_type)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    console().print(f"method {config.method.name}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")
    return model


def use_fused_kernels(model, packs: bool) -> None:
    """Fused LoRA layers, and per-example attention where rows are packed (both fall back per call where they do not apply)."""
    fuse_lora_layers(model)
    if packs:
        use_segmented_attention(model)


# The model an adapter sits on, by the task's peft task type: adapters continue only on the same kind.
MODEL_KINDS = {"CAUSAL_LM": "a chat (causal) language model", "SEQ_CLS": "a model with a classification or reward head", "SEQ_2_SEQ_LM": "an encoder-decoder model"}


def continue_adapter(model, config: RunConfig):
    """The base with ``method.init_from``'s trained adapter on it, trainable (retraining from production)."""
    from peft import PeftModel

    source = RunDir.existing(config.method.init_from)
    source_config = source.config()
    source_kind, kind = (MODEL_KINDS[get_task(name).peft_task_type] for name in (source_config.task, config.task))
    if source_kind != kind:
        raise ConfigError(
            f"method.init_from: {source.path} is a run of task {source_config.task!r}, an adapter on {source_kind}; "
            f"task {config.task!r} continues an adapter on {kind}"
        )
    if source_config.method.name != config.method.name or not get_method(config.method.name).switchable:
        raise ConfigError(
            f"method.init_from: {source.path} was trained with {source_config.method.name!r}; continuing needs the same "
            f"peft method here (method.name {config.method.name!r}), one of {', '.join(methods_where('switchable'))}"
        )
    return PeftModel.from_pretrained(model, str(source.artifact()), is_trainable=True)


def validation_scorer(task, tokenizer, data: PreparedData, config: RunConfig):
    """``score(model, rows=val split) -> {metric: float}`` when early stopping follows a task metric, else None.

    Loss and perplexity come from the trainer's own validation pass; other metrics (exact_match,
    json_field_accuracy, accuracy, ...) are the task's held-out scores, here on the validation split.
    """
    metric = config.train.early_stopping_metric
    if metric in trainer_metrics(task) or not data.splits.val:
        return None
    packs = get_method(config.method.name).packs_with(task)

    def score(model, rows=data.splits.val) -> dict:
        was_training = model.training
        scores = task.score(model, tokenizer, rows, config, data.labels, packs)["scores"]
        model.train(was_training)
        numbers = {name: float(value) for name, value in scores.items() if isinstance(value, (int, float))}
        if metric not in numbers:
            raise ConfigError(
                f"train.early_stopping_metric: task {config.task!r} scores no {metric!r} on the validation split; "
                f"choose one of: {', '.join(sorted(set(numbers) | set(trainer_metrics(task))))}"
            )
        return numbers

    return score


# Validation metrics the trainer computes itself; any other is the task's score on the validation split.
TRAINER_METRICS = ("loss", "perplexity")


def trainer_metrics(task) -> tuple[str, ...]:
    """The trainer's own validation metrics for ``task``: no perplexity for a task that does not generate
    text (a classifier's loss is over its labels) or whose loss is not a per-token cross-entropy (dpo)."""
    return TRAINER_METRICS if task.generates and task.perplexity else ("loss",)


def greater_is_better(metric: str, direction: str) -> bool:
    """``train.early_stopping_direction`` resolved: auto minimises loss and perplexity, maximises the rest."""
    return direction == "maximize" or (direction == "auto" and metric not in LOWER_IS_BETTER)


def build_trainer(model, tokenizer, data: PreparedData, config: RunConfig, out: Path, task, precision: Precision, scorer=None, extra_callbacks=()):
    from transformers import EarlyStoppingCallback
    from transformers.integrations import TensorBoardCallback
    from torch.utils.tensorboard import SummaryWriter

    t = config.train
    packs = get_method(config.method.name).packs_with(task)
    train_rows = task.batch_rows(data.train_tokens, packs, t.pack_length, t.seed)
    val_rows = task.batch_rows(data.val_tokens, packs, t.pack_length, t.seed)
    row_length = t.pack_length if packs else max(len(row) for row in train_rows)
    rows_per_step = max(1, t.tokens_per_batch // row_length)
    rows_per_pass, curriculum = len(train_rows), None
    if t.curriculum != "none":
        train_rows, curriculum = curriculum_rows(model, data.train_tokens, config, packs, rows_per_step, rows_per_pass)
    args = training_arguments(
        config, out, rows_per_process(rows_per_step), rows_per_pass, precision, has_validation=bool(val_rows), ordered=curriculum is not None
    )
    callbacks = [JsonlLogCallback(RunDir(out).log_file), RichProgressCallback(), CheckpointManifestCallback()]
    if is_main_process():  # only the main process writes into the run folder
        callbacks.append(TensorBoardCallback(SummaryWriter(str(out / "tensorboard"))))
    if val_rows and t.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(t.early_stopping_patience, t.early_stopping_min_delta))
    callbacks.extend(extra_callbacks)
    trainer = TuneloopTrainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=val_rows or None,
        data_collator=lambda rows: task.collate(rows, tokenizer.pad_token_id),
        callbacks=callbacks,
        loss_fn=task.loss_function(config),
        score_fn=scorer,
        perplexity="perplexity" in trainer_metrics(task),
    )
    trainer.curriculum = curriculum  # recorded in train.json
    remove_default_printers(trainer)
    return trainer


def rows_per_process(rows_per_step: int) -> int:
    """Each of N processes takes 1/N of the step's rows, so the global batch does not change with N."""
    processes = world_size()
    if rows_per_step % processes:
        raise ConfigError(
            f"train.tokens_per_batch gives {rows_per_step} rows per step, which {processes} processes cannot share "
            f"evenly; raise tokens_per_batch to a multiple of {processes} rows"
        )
    return rows_per_step // processes


def remove_default_printers(trainer) -> None:
    """Our progress bar and JSONL log replace transformers' tqdm bar and dict printer."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)


def training_arguments(
    config: RunConfig, out: Path, rows_per_step: int, train_rows: int, precision: Precision, has_validation: bool, ordered: bool = False
):
    """transformers' arguments for the run; ``train_rows`` is one pass's rows.

    ``ordered``: the training rows are a curriculum stream that already holds every pass, read in order.
    """
    from transformers import TrainingArguments

    t = config.train
    steps_per_epoch = max(1, math.ceil(train_rows / rows_per_step))
    eval_every = t.eval_steps or steps_per_epoch
    save_every = t.save_steps or eval_every
    if has_validation and save_every % eval_every:
        raise ConfigError(
            f"train.save_steps ({save_every}) must be a multiple of train.eval_steps ({eval_every}) "
            "so the best validation checkpoint is on disk"
        )
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=rows_per_step,
        per_device_eval_batch_size=rows_per_step,
        num_train_epochs=1 if ordered else t.epochs,
        train_sampling_strategy="sequential" if ordered else "random",
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        lr_scheduler_type="cosine",
        logging_steps=1,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=eval_every,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=2,
        load_best_model_at_end=has_validation,
        metric_for_best_model=f"eval_{t.early_stopping_metric}",
        greater_is_better=greater_is_better(t.early_stopping_metric, t.early_stopping_direction),
        seed=t.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        use_cpu=not _cuda_available(),
        **precision.trainer_flags(),
        dataloader_num_workers=0,
    )


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def save_trained(model, tokenizer, config: RunConfig, out: Path) -> None:
    """What the method trained, with the tokenizer, into ``adapter/`` or ``model/`` (atomically)."""
    method = get_method(config.method.name)
    with staged_dir(out / method.artifact) as tmp:
        method.save(model, tmp)
        tokenizer.save_pretrained(tmp)


def write_train_summary(out: Path, trainer, precision: Precision) -> None:
    """``train.json``: steps, best checkpoint, and tokens and seconds of the whole run, across resumes."""
    state = trainer.state
    seconds = trainer.training_seconds()
    RunDir(out).write_train_summary(
        {
            "steps": state.global_step,
            "epochs": state.epoch,
            "best_eval_loss": state.best_metric if trainer.args.metric_for_best_model == "eval_loss" else None,
            "best_metric": {"name": trainer.args.metric_for_best_model, "value": state.best_metric},
            "best_checkpoint": state.best_model_checkpoint,
            "real_tokens": trainer.real_tokens_seen,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(trainer.real_tokens_seen / max(seconds, 1e-9), 2),
            "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "total_parameters": sum(p.numel() for p in trainer.model.parameters()),
            "curriculum": getattr(trainer, "curriculum", None),
            "precision": precision.record(),
        },
    )
