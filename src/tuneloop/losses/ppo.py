"""The mathematical pieces of PPO for language models (RLHF): rewards with a per-token KL penalty,
KL estimators, whitening, generalised advantage estimation, and the clipped policy and value losses.

All tensors are ``[batch, tokens]`` over the generated answer, ``mask`` 1 on generated tokens and 0 on
prompt and padding. A row's generated tokens are one contiguous run (GAE walks back through it).
The trainer loop that samples answers, scores them and calls these is not built yet.

>>> import torch
>>> mask = torch.tensor([[1.0, 1.0, 0.0]])
>>> logprobs, ref_logprobs = torch.zeros(1, 3), -torch.ones(1, 3)  # log π − log π_ref = 1 per token
>>> kl_penalised_rewards(torch.tensor([1.0]), logprobs, ref_logprobs, mask, kl_coef=0.5).tolist()
[[-0.5, 0.5, 0.0]]
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (whatever the others hold); a scalar."""
    mask = mask.bool()
    return torch.where(mask, values, 0.0).sum() / mask.sum()


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance (Bessel's n − 1, as TRL) over the masked positions; a scalar."""
    count = mask.bool().sum()
    if count < 2:
        raise ValueError("masked_var needs at least two unmasked values")
    centred = values - masked_mean(values, mask)
    return masked_mean(centred**2, mask) * count / (count - 1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``values`` [batch, tokens] scaled to unit variance over the masked positions of the whole batch,
    and shifted to mean 0 when ``shift_mean``; masked-out positions come back as 0."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, 0.0)


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from tokens sampled from π: log π − log π_ref.

    Unbiased but can be negative on a single token (Schulman, "Approximating KL divergence", 2020)."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref): (r − 1) − log r with r = π_ref / π.

    Unbiased for tokens sampled from π, never negative (log r ≤ r − 1), and of lower variance than k1."""
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def kl_penalised_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards [batch, tokens] of RLHF PPO (Ziegler et al. 2019; Stiennon et al. 2020):
    −kl_coef·(log π − log π_ref) on every generated token, plus the reward model's score [batch] of
    the whole answer on its last generated token. Masked-out positions are 0. Compute it once per
    batch of rollouts, without gradients."""
    mask = mask.bool()
    rewards = torch.where(mask, -kl_coef * kl_k1(logprobs, ref_logprobs), 0.0)
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = torch.where(mask, positions, -1).argmax(dim=1)
    rows = torch.arange(mask.shape[0], device=mask.device)
    return rewards.index_put((rows, last), scores * mask.any(dim=1), accumulate=True)


@torch.no_grad()
def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), backwards over the tokens:
    δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γλ·A_{t+1}, with V and A taken as 0 after the last
    generated token. ``rewards``, ``values``, ``mask`` [batch, tokens] -> (advantages, returns =
    advantages + values), both [batch, tokens], 0 at masked-out positions, without gradients."""
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    following = torch.zeros_like(values[:, 0])
    next_value, advantages = following, []
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        following = (delta + gamma * lam * following) * mask[:, t]
        next_value = values[:, t]
        advantages.append(following)
    advantages = torch.stack(advantages[::-1], dim=1)
    return advantages, advantages + values


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017): masked mean of −min(ρA, clip(ρ, 1−ε, 1+ε)·A),
    ρ = π/π_old per token. Inputs [batch, tokens]; returns scalars (loss, fraction of tokens whose
    clipped term was the one taken, approximate KL(π_old ‖ π) by k3)."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range) * advantages
    loss = masked_mean(-torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped < unclipped).to(ratio.dtype), mask)
        approx_kl = masked_mean(kl_k3(old_logprobs, logprobs), mask)
    return loss, clip_fraction, approx_kl


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range_value: float
) -> torch.Tensor:
    """Clipped value loss: masked mean of 0.5·max((V − R)², (clip(V, V_old − ε, V_old + ε) − R)²),
    so the value head cannot gain by moving further than ε from its rollout-time estimate.
    Inputs [batch, tokens]; a scalar."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    losses = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_mean(losses, mask)
