"""The LM head and its cross-entropy, fused and chunked: no ``[tokens, vocab]`` logits tensor.

SmolLM2's head is 576 x 49,152: the logits of 1,000 labelled tokens are 197 MB in fp32, kept for
the backward pass, plus as much again for log-softmax and its gradient. Here the head is applied
to a few hundred rows at a time; each chunk's loss and its gradients (``(softmax - onehot) @ W``
for the hidden states, ``(softmax - onehot)^T @ h`` for a trainable head) are computed at once and
the chunk's logits dropped, so peak memory holds one chunk of logits and the matmuls are those an
ordinary backward pass does.

:func:`head_loss` runs inside the output embedding's own forward call (a forward pre-hook), so a
head whose weights a distributed engine gathers only for its forward (FSDP, ZeRO-3) is used while
gathered, and the call still goes through the wrapped model's forward (DDP's gradient hooks see it).
"""

from __future__ import annotations

import contextlib

import torch

# Logits per chunk: 16 Mi floats (64 MB), 341 rows of a 49k vocabulary. Measured on 2 cores, the
# head's two matmuls run at 122 GFLOP/s on 85-row chunks and 155 on 256 rows or more, so rows are
# split into equal chunks of at most that size.
CHUNK_ELEMENTS = 1 << 24


class LinearCrossEntropy(torch.autograd.Function):
    """``sum_i CE(hidden_i @ weight.T + bias, targets_i)``, gradients computed chunk by chunk in the forward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):
        needs = (hidden.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        total, grads = chunked_loss_and_grads(hidden, weight, bias, targets, needs)
        ctx.save_for_backward(*(g for g in grads if g is not None))
        ctx.present = tuple(g is not None for g in grads)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        saved = iter(ctx.saved_tensors)
        grads = [next(saved) * grad_total.to(torch.float32) if present else None for present in ctx.present]
        hidden_grad, weight_grad, bias_grad = grads
        return hidden_grad, weight_grad, bias_grad, None


def chunked_loss_and_grads(hidden, weight, bias, targets, needs: tuple[bool, bool, bool]):
    """Summed fp32 loss and, where ``needs`` asks, the gradients of hidden, weight and bias."""
    most_rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
    chunks = max(1, -(-hidden.shape[0] // most_rows))  # one (empty) chunk when no position has a label
    rows = max(1, -(-hidden.shape[0] // chunks))  # equal chunks: a short last one would run slowly
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    hidden_grad = torch.empty_like(hidden) if needs[0] else None
    weight_grad = torch.zeros_like(weight, dtype=torch.float32) if needs[1] else None
    bias_grad = torch.zeros_like(bias, dtype=torch.float32) if needs[2] else None
    for start in range(0, hidden.shape[0], rows):
        h, t = hidden[start : start + rows], targets[start : start + rows]
        logits = torch.nn.functional.linear(h, weight, bias).float()
        log_norm = torch.logsumexp(logits, dim=-1)
        total += (log_norm - logits.gather(1, t[:, None]).squeeze(1)).sum()
        if not any(needs):
            continue
        probs = logits.sub_(log_norm[:, None]).exp_()  # softmax, in the logits' memory
        probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
        if needs[0]:
            hidden_grad[start : start + rows] = probs.to(weight.dtype) @ weight
        if needs[1]:
            weight_grad.addmm_(probs.T, h.float())
        if needs[2]:
            bias_grad += probs.sum(0)
    return total, (hidden_grad, weight_grad, bias_grad)


def fusable_head(model) -> torch.nn.Linear | None:
    """The output embedding, when it is a plain Linear whose logits nothing rescales after it."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    rescaled = any(getattr(config, name, None) for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
    return head if type(head) is torch.nn.Linear and not rescaled else None


@contextlib.contextmanager
def head_loss(head: torch.nn.Linear, targets: torch.Tensor):
    """Within the block, the head's forward computes the fused loss of its input rows against
    ``targets`` (into the yielded dict, key ``"loss"``) and gets an empty input, so the model
    returns ``[0, vocab]`` logits instead of computing them."""
    result: dict = {}

    def fuse(module, args):
        hidden = args[0]
        result["loss"] = LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), module.weight, module.bias, targets)
        return (hidden[..., :0, :],)

    handle = head.register_forward_pre_hook(fuse)
    try:
        yield result
    finally:
        handle.remove()
