"""Replay rows trained toward the base model's whole next-token distribution (``data.replay_loss: kl``).

Cross-entropy on an answer the base sampled pulls the tuned model toward one draw from the base's
distribution at each position: an unbiased estimate of the KL divergence from the base, but a noisy
one when a few dozen replay rows stand for the whole of general behaviour. Here every position of
a replay row, its prompt's as well as its answer's, is scored by the exact KL divergence
``KL(base || tuned)`` of the two next-token distributions instead. With an adapter method the
base is the model itself with its adapter switched off (peft's ``disable_adapter``), so the
teacher costs one forward pass without gradients and no second copy of the weights. That pass sees only the replay examples of the batch,
cut out of their packed rows into one (each keeps its own positions, so attention stays within it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import torch

from tuneloop.errors import ConfigError
from tuneloop.text.tokenize import IGNORE, TokenizedExample


def check_unsharded(config) -> None:
    """ConfigError when KL replay would train with parameters sharded across processes (FSDP, DeepSpeed
    ZeRO-3), named by ``train.accelerate_config`` or by the environment ``accelerate launch`` sets.

    The base's forward pass runs only on batches that hold replay tokens. Under sharding every process
    must run the same forward passes, since each one gathers weights from all of them.
    """
    if config.data.replay_fraction == 0 or config.data.replay_loss != "kl":
        return
    sharding = sharding_in_file(config.train.accelerate_config) or sharding_in_environment()
    if sharding:
        raise ConfigError(
            f"data.replay_loss kl cannot train under {sharding}: the base model's forward pass runs only on batches "
            "with replay rows, and sharded processes must all run the same passes; use DDP (no "
            "--accelerate-config) or DeepSpeed ZeRO-2, or data.replay_loss tokens"
        )


def sharding_in_file(accelerate_config: str | None) -> str | None:
    import yaml

    if not accelerate_config or not Path(accelerate_config).is_file():
        return None
    settings = yaml.safe_load(Path(accelerate_config).read_text(encoding="utf-8")) or {}
    kind = str(settings.get("distributed_type", "")).upper()
    zero_stage = (settings.get("deepspeed_config") or {}).get("zero_stage")
    return "FSDP" if kind == "FSDP" else "DeepSpeed ZeRO-3" if kind == "DEEPSPEED" and zero_stage == 3 else None


def sharding_in_environment() -> str | None:
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        return "FSDP"
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true")
    return "DeepSpeed ZeRO-3" if deepspeed and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3" else None


def for_distillation(example: TokenizedExample) -> TokenizedExample:
    """``example`` marked for the KL loss, every token after its first scored (the prompt's too).

    Scoring a prompt token here asks for the base's own distribution over what follows it, never for
    the user's words themselves, and keeps the tuned model's reading of general text where the base's was.
    """
    return dataclasses.replace(example, distill=True, labels=[IGNORE, *example.input_ids[1:]])


def next_token_marks(distill_mask: torch.Tensor) -> torch.Tensor:
    """``[batch, seq]``: positions whose *next* token is marked (position ``i`` predicts token ``i + 1``)."""
    shifted = torch.zeros_like(distill_mask)
    shifted[:, :-1] = distill_mask[:, 1:]
    return shifted


def base_targets(model, head, input_ids, position_ids, keep: torch.Tensor, distill_mask: torch.Tensor | None):
    """(which kept positions are distilled ``[kept]`` bool, the base's view of those positions), or None when none are.

    The base's view is its inputs to ``head`` when the head is fused (:func:`base_head_inputs`), else its logits.
    """
    distill_keep = distilled_positions(keep, distill_mask)
    if distill_keep is None:
        return None
    segments = replay_segments(input_ids, position_ids, distill_mask, distill_keep)
    teacher = base_logits(model, *segments) if head is None else base_head_inputs(model, head, *segments)
    return distill_keep[keep], teacher


def distilled_positions(keep: torch.Tensor, distill_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[batch, seq]``: the kept positions that predict a token of their own distilled example; None when none do."""
    if distill_mask is None:
        return None
    distill_keep = keep & distill_mask & next_token_marks(distill_mask)
    return distill_keep if distill_keep.any() else None


def with_distilled_kl(model, batch: dict, keep: torch.Tensor, logits: torch.Tensor, token_losses: torch.Tensor) -> torch.Tensor:
    """``token_losses`` (``[kept]``, cross-entropies) with the KL from the base at distilled positions, the loss
    those positions train on (curriculum difficulty)."""
    found = base_targets(model, None, batch["input_ids"], batch["position_ids"], keep, batch.get("distill_mask"))
    if found is None:
        return token_losses
    distilled, teacher_logits = found
    token_losses = token_losses.clone()
    token_losses[distilled] = token_kl(logits[distilled].float(), teacher_logits)
    return token_losses


def replay_segments(input_ids, position_ids, distill_mask, distill_keep) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distilled examples' tokens alone, as one packed row: (ids, positions, positions to score), each ``[1, n]``.

    An example is whole within its row and restarts its positions at 0, so cutting it out changes no
    activation of it; the scored positions keep their row-major order, that of the full batch's.
    """
    return input_ids[distill_mask][None], position_ids[distill_mask][None], distill_keep[distill_mask][None]


@contextlib.contextmanager
def base_model(model):
    """``model`` (a peft model, possibly DDP-wrapped) with its adapter switched off, in eval mode (no dropout
    noise in the teacher) and without gradients; its training mode is restored afterwards."""
    peft_model = getattr(model, "module", model)
    if not hasattr(peft_model, "disable_adapter"):
        raise TypeError(f"replay distillation needs a peft adapter model to switch off, got {type(peft_model).__name__}")
    was_training = peft_model.training
    peft_model.eval()
    try:
        with peft_model.disable_adapter(), torch.no_grad():
            yield peft_model
    finally:
        peft_model.train(was_training)


def base_head_inputs(model, head: torch.nn.Module, input_ids, position_ids, keep: torch.Tensor) -> torch.Tensor:
    """The base model's hidden states entering ``head`` at the ``keep`` positions: ``[kept, hidden]``.

    The head itself is skipped (it gets an empty input); the caller applies it chunk by chunk.
    """
    captured = {}

    def capture(module, args):
        captured["hidden"] = args[0].reshape(-1, args[0].shape[-1])
        return (args[0][..., :0, :],)

    handle = head.register_forward_pre_hook(capture)
    try:
        with base_model(model) as base:
            base(input_ids=input_ids, position_ids=position_ids, logits_to_keep=keep, use_cache=False)
    finally:
        handle.remove()
    return captured["hidden"]


def base_logits(model, input_ids, position_ids, keep: torch.Tensor) -> torch.Tensor:
    """The base model's fp32 logits at the ``keep`` positions: ``[kept, vocab]`` (for heads that cannot be fused)."""
    with base_model(model) as base:
        return base(input_ids=input_ids, position_ids=position_ids, logits_to_keep=keep, use_cache=False).logits.float()


def mixed_loss(logits: torch.Tensor, targets: torch.Tensor, distilled: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy on the rows not ``distilled``, plus the KL divergence from ``teacher_logits`` on those that are."""
    hard = torch.nn.functional.cross_entropy(logits[~distilled], targets[~distilled], reduction="sum")
    return hard + token_kl(logits[distilled], teacher_logits).sum()


def token_kl(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``[rows]``: ``KL(softmax(teacher_logits) || softmax(logits))`` of each row."""
    log_probs, teacher_log_probs = logits.log_softmax(dim=-1), teacher_logits.log_softmax(dim=-1)
    return torch.nn.functional.kl_div(log_probs, teacher_log_probs, reduction="none", log_target=True).sum(-1)
