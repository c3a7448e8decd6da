"""Trainer callbacks: a JSONL log of every record, a rich progress bar and checkpoint manifests."""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from tuneloop.progress import console
from tuneloop.train.checkpoints import write_manifest


class JsonlLogCallback(TrainerCallback):
    """Appends every logged record (train and validation) as one JSON line to ``log.jsonl``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class CheckpointManifestCallback(TrainerCallback):
    """Once transformers has written a checkpoint, its manifest of checksums (:mod:`tuneloop.train.checkpoints`)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_manifest(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)


class RichProgressCallback(TrainerCallback):
    """Training progress on stderr: step/total, loss, validation loss, real tokens/s and ETA.

    A rich progress bar on a terminal; where stderr is not one (CI, a log file), a plain line
    every ``1/lines`` of the run (and at least every ``seconds``), after each validation and at
    the end. Every record also goes to ``log.jsonl`` (:class:`JsonlLogCallback`), never to the terminal.
    """

    def __init__(self, lines: int = 20, seconds: float = 60.0):
        self.progress = None
        self.task = None
        self.fields = {"loss": "-", "eval_loss": "-", "tps": "-"}
        self.plain = None  # PlainProgress where stderr is not a terminal
        self.lines, self.seconds = lines, seconds

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        if not sys.stderr.isatty():
            self.plain = PlainProgress(state.max_steps, state.global_step, max(1, state.max_steps // self.lines), self.seconds)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[eval_loss]}  {task.fields[tps]} tok/s"),
            TimeRemainingColumn(),
            console=console(),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, **self.fields)

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or (self.progress is None and self.plain is None):
            return
        if "loss" in logs:
            self.fields["loss"] = f"{logs['loss']:.4f}"
            self.fields["tps"] = f"{logs.get('tokens_per_s', 0):.0f}"
        if "eval_loss" in logs:
            self.fields["eval_loss"] = f"{logs['eval_loss']:.4f}"
        if self.progress is not None:
            self.progress.update(self.task, **self.fields)
        elif "loss" in logs or "eval_loss" in logs:
            self.plain.log(state.global_step, self.fields, validation="eval_loss" in logs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.plain is not None:
            self.plain.finish(state.global_step, self.fields)
            self.plain = None


class PlainProgress:
    """Periodic progress lines for a log: ``step 20/100  loss 1.2345  val 1.3012  512 tok/s  eta 0:01:05``."""

    def __init__(self, total: int, start_step: int, every: int, seconds: float):
        self.total, self.start_step, self.every, self.seconds = total, start_step, every, seconds
        self.started = self.last_printed = time.monotonic()
        self.printed_step = None

    def log(self, step: int, fields: dict, validation: bool = False) -> None:
        due = step % self.every == 0 or step >= self.total or time.monotonic() - self.last_printed >= self.seconds
        if validation or (due and step != self.printed_step):
            self.print_line(step, fields)

    def finish(self, step: int, fields: dict) -> None:
        if step != self.printed_step:
            self.print_line(step, fields)

    def print_line(self, step: int, fields: dict) -> None:
        line = f"step {step}/{self.total}  loss {fields['loss']}  val {fields['eval_loss']}  {fields['tps']} tok/s  eta {self.eta(step)}"
        print(line, file=sys.stderr, flush=True)
        self.printed_step, self.last_printed = step, time.monotonic()

    def eta(self, step: int) -> str:
        done = step - self.start_step
        if done <= 0:
            return "-"
        remaining = (time.monotonic() - self.started) / done * max(self.total - step, 0)
        return str(datetime.timedelta(seconds=round(remaining)))
