"""Differentially private training: DP-SGD through Opacus, on the trainable parameters only.

Every step draws a Poisson sample of the training rows (each row in with probability
``q = expected rows / rows``), computes each row's own gradient (Opacus' per-sample gradient hooks
on the trainable layers: LoRA's ``lora_A``/``lora_B`` linears, a new head), clips it to
``train.dp_max_grad_norm``, sums, adds Gaussian noise of standard deviation
``noise_multiplier x max_grad_norm`` and divides by the expected batch. The noise multiplier is the
smallest that keeps the accountant's epsilon at most ``train.dp_epsilon`` after every planned step at
``train.dp_delta``; ``train.json`` records the epsilon the accountant gives for the steps actually
taken (early stopping may end sooner).

The privacy unit is one training row, so whatever would let one row weigh more is refused or
switched off, with the reason: packing (several rows share a batch row: off, rows trained one per
batch row), the fused LoRA kernel (it bypasses the layers the hooks watch: off), cpt documents cut into
pieces, data.mix (it repeats rows), curriculum ordering (not a Poisson sample), the KL replay loss
(it needs packed rows), several processes, resuming (the accountant's state is not checkpointed),
tasks whose row is not one example's own loss (preference pairs, the rl tasks), and a full
fine-tune whose per-example gradients would not fit ``train.dp_grad_sample_memory_gb``.

The noise and the sampling draw from generators seeded by the operating system, not by
``train.seed``: noise that a reader of ``config.yaml`` could regenerate would protect nothing. A
DP run is therefore not reproducible bit for bit.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneloop.errors import ConfigError, DataError, TuneloopError
from tuneloop.methods import get_method, methods_where
from tuneloop.objectives import TASKS, get_task
from tuneloop.progress import console, generation_progress
from tuneloop.runs.folder import RunDir
from tuneloop.text.metrics import LOWER_IS_BETTER

BYTES_PER_GRADIENT_VALUE = 4  # per-example gradients are fp32, one per trainable value and row


@dataclass(frozen=True)
class DpPlan:
    """What the run will spend: the sampling, the noise and the number of steps it was calibrated for."""

    target_epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    expected_batch_rows: int
    planned_steps: int
    max_grad_norm: float
    accountant: str
    training_rows: int


def dp_tasks() -> list[str]:
    """The tasks whose rows are each one example's own loss (``Task.dp_trainable``)."""
    return [name for name in TASKS if get_task(name).dp_trainable]


def check_dp_settings(config, task, resume: bool) -> None:
    """Refuse, before any data is read, the settings under which DP-SGD's guarantee would not hold."""
    t, d = config.train, config.data
    refusals = [
        (not task.dp_trainable,
         f"task {task.name} has no per-example loss to clip (a row of it is not one example's own loss); "
         f"DP-SGD trains: {', '.join(dp_tasks())}"),
        (not get_method(config.method.name).per_example_grads,
         f"method {config.method.name} trains parameters without a correct per-example gradient in Opacus; "
         f"DP-SGD trains with: {', '.join(methods_where('per_example_grads'))}"),
        (t.nproc > 1, "train.nproc: DP-SGD runs in one process here (per-example clipping and the noise are not set up across processes); use nproc 1"),
        (resume, "--resume: a DP run keeps no checkpoints (the accountant's state would have to resume with them); start a new run"),
        (t.save_steps > 0, "train.save_steps: a DP run keeps no checkpoints; leave it 0"),
        (t.curriculum != "none", "train.curriculum: DP-SGD's guarantee needs Poisson-sampled batches, not an ordered stream; use none"),
        (bool(d.mix), "data.mix: mixing repeats the rows of a task drawn above its size, so a row could weigh more than once; train one dataset"),
        (d.replay_fraction > 0 and d.replay_loss == "kl", "data.replay_loss kl needs packed rows, which DP-SGD switches off; use data.replay_loss tokens"),
        (t.precision in ("bf16", "fp16"), f"train.precision {t.precision}: DP-SGD trains in fp32 here (per-example gradients and noise); use auto or fp32"),
    ]
    for refused, reason in refusals:
        if refused:
            raise ConfigError(f"train.dp_epsilon is set, but {reason}")


def dp_switched_off(config, packs: bool) -> list[str]:
    """What DP-SGD turns off in this run, each with the reason (printed, and kept in ``train.json``)."""
    reasons = []
    if packs:
        reasons.append("packing off: a training row is the privacy unit, so each batch row holds one")
    if config.train.fused_kernels:
        reasons.append("fused kernels off: the fused LoRA matmuls bypass the layers whose per-example gradients Opacus hooks")
    return reasons


def check_one_piece_per_row(data, task, tokenizer, max_length: int) -> None:
    """A cpt document cut into several pieces would train as several examples: refuse it, naming the row."""
    if len(data.train_tokens) == len(data.splits.train):
        return
    for example in data.splits.train:
        pieces = len(task.pieces(task.tokenize(tokenizer, example, data.labels), max_length))
        if pieces > 1:
            raise DataError(
                f"{example.source}:{example.line}: this training row is longer than data.max_length ({max_length} tokens) "
                f"and would train as {pieces} pieces, so under train.dp_epsilon it would weigh as {pieces} rows; raise "
                "data.max_length above the longest document or split the documents into rows of their own"
            )


def dp_rows_per_step(train_tokens: list, tokens_per_batch: int) -> int:
    """Expected rows per step: as many rows of the mean length as ``train.tokens_per_batch`` holds, so a DP
    step sees as many real tokens on average as a packed step of the same setting."""
    mean_length = sum(len(row) for row in train_tokens) / max(len(train_tokens), 1)
    return max(1, round(tokens_per_batch / max(mean_length, 1)))


def plan_dp(config, rows: int, rows_per_step: int) -> DpPlan:
    """The noise multiplier that keeps epsilon at most ``train.dp_epsilon`` over the planned steps."""
    from opacus.accountants.utils import get_noise_multiplier

    t = config.train
    delta = t.dp_delta if t.dp_delta is not None else default_delta(rows)
    if delta >= 1 / rows:
        raise ConfigError(
            f"train.dp_delta {delta:g} is not below 1/(training rows) = 1/{rows} = {1 / rows:.3g}: with such a delta "
            f"a mechanism may publish one whole row outright; choose a delta well below {1 / rows:.3g}"
        )
    expected = min(rows_per_step, rows)
    sample_rate = expected / rows
    steps = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs / sample_rate))
    try:
        with warnings.catch_warnings():  # the search tries noises far below the answer, whose best RDP order is the largest
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            noise = get_noise_multiplier(
                target_epsilon=t.dp_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant=t.dp_accountant, epsilon_tolerance=0.01
            )
    except ValueError as err:
        raise ConfigError(f"train.dp_epsilon {t.dp_epsilon:g}: no noise reaches it over {steps} steps at sampling rate {sample_rate:.4g} ({err})") from None
    return DpPlan(t.dp_epsilon, delta, noise, sample_rate, expected, steps, t.dp_max_grad_norm, t.dp_accountant, rows)


def default_delta(rows: int) -> float:
    """1e-5, or a tenth of 1/rows where that is smaller (delta must stay well below 1/rows)."""
    return min(1e-5, 0.1 / rows)


def check_grad_sample_memory(model, plan: DpPlan, budget_gb: float) -> None:
    """Refuse a run whose per-example gradients (trainable values x expected rows x 4 bytes) exceed the budget."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    needed = trainable * plan.expected_batch_rows * BYTES_PER_GRADIENT_VALUE
    if needed > budget_gb * 1e9:
        raise ConfigError(
            f"train.dp_epsilon: per-example gradients of {trainable:,} trainable parameters x {plan.expected_batch_rows} expected rows "
            f"x {BYTES_PER_GRADIENT_VALUE} bytes = {needed / 1e9:.2f} GB exceed train.dp_grad_sample_memory_gb ({budget_gb:g}); "
            "train an adapter (method lora) or fewer rows per step (train.tokens_per_batch), or raise the budget"
        )


class PrivateTraining:
    """The model's trainable layers with per-example gradient hooks, the DP optimiser and its accountant.

    Built before the run folder is written: a trainable layer Opacus cannot compute per-example
    gradients for is refused here, with nothing left behind.
    """

    def __init__(self, model, plan: DpPlan, config):
        import torch
        from opacus import GradSampleModule
        from opacus.accountants import create_accountant
        from opacus.optimizers import DPOptimizer

        self.model, self.plan = model.to(training_device()), plan
        # The frozen embeddings give the first hooked layer inputs without gradients; its hook still gets
        # the gradient of its output, which is all a per-example gradient needs.
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect to module outputs")
        try:
            self.hooks = GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=True)
        except NotImplementedError as err:
            raise ConfigError(f"train.dp_epsilon: method {config.method.name} trains a layer without per-example gradients ({err})") from None
        self.params = [p for p in model.parameters() if p.requires_grad]
        inner = torch.optim.AdamW(self.params, lr=config.train.learning_rate, weight_decay=config.train.weight_decay)
        self.optimizer = DPOptimizer(
            inner,
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm,
            expected_batch_size=plan.expected_batch_rows,
            loss_reduction="mean",
            generator=os_seeded_generator(self.params[0].device),
        )
        self.accountant = create_accountant(plan.accountant)
        self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate))

    def step(self, physical_batches: list[list], losses_of) -> tuple[list[float], int]:
        """One DP-SGD step over the sampled rows, run as ``physical_batches`` (lists of rows) one at a time
        so that memory holds one of them: ``losses_of(rows)`` gives ``([rows] losses, real tokens)``. Each
        batch's per-example gradients are clipped and summed into the step; the noise is added once, at the
        end, and AdamW steps. No batches (an empty sample): zero rows clipped, the noise alone.
        Returns each row's loss and the real tokens seen."""
        self.optimizer.zero_grad(set_to_none=True)
        if not physical_batches:
            for p in self.params:
                p.grad_sample = p.new_zeros((0, *p.shape))
            self.optimizer.step()
            return [], 0
        row_losses, tokens = [], 0
        for index, rows in enumerate(physical_batches):
            losses, real_tokens = losses_of(rows)
            losses.mean().backward()
            self.check_one_gradient_per_row(len(losses))
            row_losses, tokens = row_losses + losses.detach().tolist(), tokens + real_tokens
            if index < len(physical_batches) - 1:
                self.optimizer.signal_skip_step(True)  # clip and add to the step's sum; no noise, no update yet
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)  # the per-example gradients go; their clipped sum stays
        self.optimizer.step()
        return row_losses, tokens

    def check_one_gradient_per_row(self, rows: int) -> None:
        """Every trainable parameter must have one gradient per sampled row: a parameter shared across the
        batch (a gradient of batch size 1) would be clipped once for all rows, weakening the guarantee."""
        for name, p in self.model.named_parameters():
            if p.requires_grad and (p.grad_sample is None or len(p.grad_sample) != rows):
                found = "none" if p.grad_sample is None else f"{len(p.grad_sample)} rows"
                raise TuneloopError(f"DP-SGD: parameter {name} got per-example gradients for {found}, not the batch's {rows} rows")

    def epsilon(self) -> float:
        return float(self.accountant.get_epsilon(delta=self.plan.delta)) if self.accountant.history else 0.0

    def close(self) -> None:
        """Remove the hooks and per-example gradients, leaving the model as it was given (for saving)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.hooks.cleanup()


def training_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def os_seeded_generator(device=None):
    import torch

    generator = torch.Generator(device=device or "cpu")
    generator.seed()  # from the operating system's entropy, never train.seed
    return generator


def poisson_batches(rows: int, sample_rate: float, steps: int):
    """``steps`` lists of row indices, each row in each list independently with probability ``sample_rate``."""
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    sampler = UniformWithReplacementSampler(num_samples=rows, sample_rate=sample_rate, generator=os_seeded_generator())
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(sampler)), steps)


def train_with_dp(private: PrivateTraining, task, tokenizer, data, config, out: Path, scorer=None) -> dict:
    """DP-SGD over the planned steps, validating as the Trainer would, early stopping on the same metric;
    the best validated weights are put back at the end. Returns the training summary for ``train.json``."""
    from transformers import get_cosine_schedule_with_warmup

    t, plan, model = config.train, private.plan, private.model
    rows = task.batch_rows(data.train_tokens, False, t.pack_length, t.seed)  # one training row per batch row
    val_rows = task.batch_rows(data.val_tokens, False, t.pack_length, t.seed)
    schedule = get_cosine_schedule_with_warmup(private.optimizer, math.ceil(t.warmup_ratio * plan.planned_steps), plan.planned_steps)
    validate_every = t.eval_steps or max(1, round(1 / plan.sample_rate))
    stopper = EarlyStopping(t.early_stopping_metric, t.early_stopping_direction, t.early_stopping_patience, t.early_stopping_min_delta)
    folder, device, real_tokens, step = RunDir(out), model.device, 0, 0
    model.train()
    with generation_progress(plan.planned_steps, "DP-SGD steps") as advance:
        for step, indices in enumerate(poisson_batches(len(rows), plan.sample_rate, plan.planned_steps), start=1):
            losses, tokens = private.step(
                physical_batches([rows[i] for i in indices], t.pack_length),
                lambda batch: sampled_losses(task, model, batch, tokenizer.pad_token_id, device),
            )
            schedule.step()
            real_tokens += tokens
            folder.append_log(step_record(step, plan, losses, schedule.get_last_lr()[0], real_tokens))
            advance(1)
            if val_rows and (step % validate_every == 0 or step == plan.planned_steps):
                scores = validation_scores(task, model, val_rows, tokenizer.pad_token_id, t.tokens_per_batch, scorer)
                folder.append_log({"step": step, "epoch": round(step * plan.sample_rate, 4), **{f"eval_{k}": v for k, v in scores.items()}, "epsilon": private.epsilon()})
                if stopper.should_stop(scores, model):
                    break
    stopper.restore_best(model)
    epsilon = private.epsilon()
    console().print(f"DP-SGD: {step} steps, (ε = {epsilon:.3f}, δ = {plan.delta:.3g}) over {plan.training_rows} training rows, noise multiplier {plan.noise_multiplier:.3f}")
    return {
        "steps": step,
        "epochs": round(step * plan.sample_rate, 4),
        "best_eval_loss": stopper.best_scores.get("loss"),
        "best_metric": {"name": f"eval_{stopper.metric}", "value": stopper.best},
        "best_checkpoint": None,
        "real_tokens": real_tokens,
        "dp": dp_record(plan, step, epsilon),
    }


def physical_batches(sampled: list, max_tokens: int) -> list[list]:
    """The sampled rows, longest first, in batches of at most ``max_tokens`` padded tokens (at least one row
    each): a step of many rows never holds all their activations and logits at once."""
    batches, width = [], 0
    for row in sorted(sampled, key=len, reverse=True):
        if batches and (len(batches[-1]) + 1) * width <= max_tokens:
            batches[-1].append(row)
        else:
            batches.append([row])
            width = len(row)
    return batches


def sampled_losses(task, model, rows: list, pad_token_id: int, device):
    """(each row's own loss ``[rows]``, the rows' real tokens)."""
    batch = {key: value.to(device) for key, value in task.collate(rows, pad_token_id).items()}
    tokens = int(batch.pop("real_tokens"))
    return task.per_example_losses(model, batch), tokens


def step_record(step: int, plan: DpPlan, losses: list[float], learning_rate: float, real_tokens: int) -> dict:
    return {
        "step": step,
        "epoch": round(step * plan.sample_rate, 4),
        "loss": sum(losses) / len(losses) if losses else None,
        "sampled_rows": len(losses),
        "learning_rate": learning_rate,
        "real_tokens": real_tokens,
    }


def validation_scores(task, model, val_rows: list, pad_token_id: int, tokens_per_batch: int, scorer=None) -> dict:
    """Token-weighted validation loss (and perplexity where the task has one), plus the scorer's task metrics."""
    import torch

    width = max(len(row) for row in val_rows)
    per_batch = max(1, tokens_per_batch // width)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(val_rows), per_batch):
            batch = {k: v.to(model.device) for k, v in task.collate(val_rows[start : start + per_batch], pad_token_id).items()}
            batch.pop("real_tokens")
            loss_sum, n = task.summed_loss(model, batch)
            total, count = total + float(loss_sum), count + n
        scores = {"loss": total / max(count, 1)}
        if task.generates and task.perplexity:
            scores["perplexity"] = math.exp(min(scores["loss"], 50.0))
        if scorer is not None:
            scores.update({k: v for k, v in scorer(model).items() if k not in scores})
    model.train()
    return scores


class EarlyStopping:
    """The validation metric's best value and the trainable weights it was reached with; stop after
    ``patience`` validations without an improvement of more than ``min_delta``."""

    def __init__(self, metric: str, direction: str, patience: int, min_delta: float):
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.maximize = direction == "maximize" or (direction == "auto" and metric not in LOWER_IS_BETTER)
        self.best, self.best_scores, self.best_weights, self.waited = None, {}, None, 0

    def should_stop(self, scores: dict, model) -> bool:
        value = scores[self.metric]
        if self.best is None or (value - self.best if self.maximize else self.best - value) > self.min_delta:
            self.best, self.best_scores, self.waited = value, scores, 0
            self.best_weights = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
            return False
        self.waited += 1
        return 0 < self.patience <= self.waited

    def restore_best(self, model) -> None:
        if self.best_weights is None:
            return
        import torch

        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.best_weights:
                    p.copy_(self.best_weights[name])


def dp_record(plan: DpPlan, steps: int, epsilon: float) -> dict:
    """``train.json``'s ``dp`` entry: the guarantee spent and what it was computed from."""
    return {
        "epsilon": round(epsilon, 4),
        "delta": plan.delta,
        "steps": steps,
        **{k: v for k, v in asdict(plan).items() if k != "delta"},
        "unit": "training row",
        "covers": "the trainable parameters (the base model and its pre-training are outside the guarantee)",
    }
