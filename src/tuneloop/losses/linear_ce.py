"""The LM head and its cross-entropy, fused and chunked: no ``[tokens, vocab]`` logits tensor.

SmolLM2's head is 576 x 49,152: the logits of 1,000 labelled tokens are 197 MB in fp32, kept for
the backward pass, plus as much again for log-softmax and its gradient. Here the head is applied
to a few hundred rows at a time; each chunk's loss and its gradients (``(softmax - onehot) @ W``
for the hidden states, ``(softmax - onehot)^T @ h`` for a trainable head) are computed at once and
the chunk's logits dropped, so peak memory holds one chunk of logits (three when a teacher's
distribution is the target) and the matmuls are those an ordinary backward pass does.

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
    """``sum_i CE(hidden_i @ weight.T + bias, targets_i)``, gradients computed chunk by chunk in the forward.

    ``targets`` are token ids (``[rows]`` long), or a teacher's inputs to the same head (``[rows,
    hidden]`` float): the loss is then the KL divergence from the teacher's next-token distribution,
    ``sum_i KL(softmax(teacher_i @ weight.T + bias) || softmax(hidden_i @ weight.T + bias))``, whose
    gradient in the logits is ``softmax - teacher softmax`` as the one-hot's is ``softmax - onehot``.
    """

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
        log_probs = log_softmax_of_head(h, weight, bias)
        if t.is_floating_point():  # a teacher's head inputs: KL from its distribution
            teacher_probs, kl = teacher_kl(t, weight, bias, log_probs)
            total += kl
        else:
            total -= log_probs.gather(1, t[:, None]).sum()
        if not any(needs):
            continue
        probs = log_probs.exp_()  # softmax, in the log-probabilities' memory
        if t.is_floating_point():
            probs -= teacher_probs  # d loss / d logits
        else:
            probs[torch.arange(len(t), device=t.device), t] -= 1.0
        if needs[0]:
            hidden_grad[start : start + rows] = probs.to(weight.dtype) @ weight
        if needs[1]:
            weight_grad.addmm_(probs.T, h.float())
        if needs[2]:
            bias_grad += probs.sum(0)
    return total, (hidden_grad, weight_grad, bias_grad)


def log_softmax_of_head(hidden, weight, bias) -> torch.Tensor:
    """fp32 log-softmax of the head's logits, computed in the logits' own memory."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()  # .float() of fp32 is the same tensor
    return logits.sub_(torch.logsumexp(logits, dim=-1, keepdim=True))


def teacher_kl(teacher_hidden, weight, bias, log_probs) -> tuple[torch.Tensor, torch.Tensor]:
    """(the teacher's softmax, summed ``KL(teacher || student)``) of one chunk, in two chunk-sized tensors."""
    teacher_log_probs = log_softmax_of_head(teacher_hidden, weight, bias)
    teacher_probs = teacher_log_probs.exp()
    return teacher_probs, teacher_log_probs.sub_(log_probs).mul_(teacher_probs).sum()


def fusable_head(model) -> torch.nn.Linear | None:
    """The output embedding, when it is a plain Linear whose logits nothing rescales after it."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    rescaled = any(getattr(config, name, None) for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
    return head if type(head) is torch.nn.Linear and not rescaled else None


@contextlib.contextmanager
def head_loss(head: torch.nn.Linear, targets: torch.Tensor, distilled: torch.Tensor | None = None, teacher: torch.Tensor | None = None):
    """Within the block, the head's forward computes the fused loss of its input rows against
    ``targets`` (into the yielded dict, key ``"loss"``) and gets an empty input, so the model
    returns ``[0, vocab]`` logits instead of computing them.

    ``distilled`` (``[rows]`` bool) marks the rows whose target is instead the distribution of the
    ``teacher`` head inputs (one per marked row, in order): their loss is the KL divergence from it.
    """
    result: dict = {}

    def fuse(module, args):
        hidden = args[0].reshape(-1, args[0].shape[-1])
        if distilled is None:
            result["loss"] = LinearCrossEntropy.apply(hidden, module.weight, module.bias, targets)
        else:
            hard = LinearCrossEntropy.apply(hidden[~distilled], module.weight, module.bias, targets[~distilled])
            result["loss"] = hard + LinearCrossEntropy.apply(hidden[distilled], module.weight, module.bias, teacher)
        return (args[0][..., :0, :],)

    handle = head.register_forward_pre_hook(fuse)
    try:
        yield result
    finally:
        handle.remove()
