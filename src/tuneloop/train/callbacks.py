"""Trainer callbacks: a JSONL log of every record and a rich progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from transformers import TrainerCallback

from tuneloop.progress import console


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


class RichProgressCallback(TrainerCallback):
    """Progress bar with step, loss, validation loss, real tokens/s and ETA."""

    def __init__(self):
        self.progress = None
        self.task = None
        self.fields = {"loss": "-", "eval_loss": "-", "tps": "-"}

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[eval_loss]}  {task.fields[tps]} tok/s"),
            TimeRemainingColumn(),
            console=console(),
            disable=not sys.stderr.isatty(),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, **self.fields)

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        if "loss" in logs:
            self.fields["loss"] = f"{logs['loss']:.4f}"
            self.fields["tps"] = f"{logs.get('tokens_per_s', 0):.0f}"
        if "eval_loss" in logs:
            self.fields["eval_loss"] = f"{logs['eval_loss']:.4f}"
        self.progress.update(self.task, **self.fields)
        if not sys.stderr.isatty():
            print(json.dumps({"step": state.global_step, **logs}), file=sys.stderr, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
