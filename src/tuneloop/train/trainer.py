"""transformers.Trainer with the task's label-summed loss (packed batches for causal LMs).

Only ``compute_loss`` and ``evaluate`` change: everything else (optimiser, schedule,
checkpoints, resume, callbacks, accelerate's DDP/FSDP/DeepSpeed) stays transformers' own.
The real-token and seconds counters carry over a resume (read back from the checkpoint's log history).
``evaluate`` can add task metrics scored on the validation split (``score_fn``), so early
stopping and the kept checkpoint may follow any of them, not only the loss.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from transformers import Trainer

from tuneloop.losses.label_loss import summed_label_loss


class TuneloopTrainer(Trainer):
    """Trainer whose loss is ``loss_fn(model, batch) -> (sum over labels, label count)``.

    Batches carry ``real_tokens`` (non-padding tokens) for the throughput log. The default loss
    is the causal-LM one for rows from :func:`tuneloop.text.tokenize.collate_rows`.
    ``score_fn(model) -> {metric: float}`` adds validation metrics (``eval_<metric>``) to each evaluation.
    ``perplexity``: log ``eval_perplexity`` beside the loss (False for a classifier, whose loss is
    over class labels, not a text distribution).
    """

    loss_is_scaled_for_ga = True  # normalised by the label count of the whole optimiser step

    def __init__(self, *args, loss_fn=summed_label_loss, score_fn=None, perplexity=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.score_fn = score_fn
        self.perplexity = perplexity
        self.real_tokens_seen = 0
        self.seconds_before = 0.0  # training seconds of the run before this process (a resume)
        self.train_started = time.perf_counter()

    def train(self, resume_from_checkpoint=None, **kwargs):
        if resume_from_checkpoint:
            self.real_tokens_seen, self.seconds_before = counters_at(Path(resume_from_checkpoint))
        self.train_started = time.perf_counter()
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def training_seconds(self) -> float:
        """Seconds spent training in the whole run, the processes before a resume included."""
        return self.seconds_before + time.perf_counter() - self.train_started

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        real_tokens = inputs.pop("real_tokens")
        loss_sum, count = self.loss_fn(model, inputs)
        if model.training:
            self.real_tokens_seen += self.tokens_of_all_processes(real_tokens)
        # Normalise by the label tokens of the whole optimiser step (all accumulation micro-batches,
        # all processes) so each token weighs the same whatever row or process it landed in.
        denominator = num_items_in_batch if num_items_in_batch is not None else max(count, 1)
        loss = loss_sum / denominator
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes
        return (loss, None) if return_outputs else loss

    def tokens_of_all_processes(self, real_tokens) -> int:
        if self.accelerator.num_processes == 1:
            return int(real_tokens)
        return int(self.accelerator.reduce(real_tokens.to(self.accelerator.device), reduction="sum"))

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Token-weighted validation loss (a mean of batch means would weigh tokens unequally)."""
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                batch.pop("real_tokens", None)
                loss_sum, n = self.loss_fn(model, batch)
                total += float(loss_sum)
                count += n
        totals = self.accelerator.reduce(torch.tensor([total, float(count)]), reduction="sum")
        loss = float(totals[0] / max(float(totals[1]), 1.0))
        metrics = {f"{metric_key_prefix}_loss": loss}
        if self.perplexity:
            metrics[f"{metric_key_prefix}_perplexity"] = math.exp(min(loss, 50.0))
        if self.score_fn is not None:
            with torch.no_grad():
                for name, value in self.score_fn(model).items():
                    metrics.setdefault(f"{metric_key_prefix}_{name}", value)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        model.train(was_training)
        return metrics

    def log(self, logs, start_time=None):
        if "loss" in logs:
            seconds = max(self.training_seconds(), 1e-9)
            logs["real_tokens"] = self.real_tokens_seen
            logs["train_seconds"] = round(seconds, 3)
            logs["tokens_per_s"] = round(self.real_tokens_seen / seconds, 2)
        super().log(logs, start_time)


def counters_at(checkpoint: Path) -> tuple[int, float]:
    """(real tokens, training seconds) when ``checkpoint`` was saved: its last training log record's."""
    history = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8")).get("log_history", [])
    last = next((record for record in reversed(history) if "real_tokens" in record), {})
    return int(last.get("real_tokens", 0)), float(last.get("train_seconds", 0.0))
