"""PPO's pieces against the maths: hand-computed rewards, GAE, whitening and clipped losses, and the
KL estimators against the exact KL of two small categorical distributions."""

from __future__ import annotations

import math

import pytest
import torch

from tuneloop.losses.ppo import (
    gae,
    kl_k1,
    kl_k3,
    kl_penalised_rewards,
    masked_mean,
    masked_whiten,
    policy_loss,
    value_loss,
)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=1e-6, rtol=1e-6)


def test_rewards_penalise_each_token_and_add_the_score_on_the_last_generated_one():
    scores = torch.tensor([2.0, -1.0])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-1.0, -1.0, -1.0, -1.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5, 0.0], [-2.0, -1.0, -3.0, -1.0]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]])  # row 0: padding after; row 1: a prompt token before
    rewards = kl_penalised_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.1)
    close(rewards, [[-0.05, 0.1, 0.0 + 2.0, 0.0], [0.0, 0.0, -0.2 - 1.0, 0.0]])


def test_rewards_of_a_row_without_generated_tokens_are_zero():
    rewards = kl_penalised_rewards(torch.tensor([5.0]), torch.zeros(1, 3), torch.ones(1, 3), torch.zeros(1, 3), 0.1)
    close(rewards, [[0.0, 0.0, 0.0]])


def categorical_samples(seed: int = 0, draws: int = 200_000):
    p = torch.tensor([0.5, 0.25, 0.15, 0.1], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.3, 0.2], dtype=torch.float64)
    tokens = torch.multinomial(p, draws, replacement=True, generator=torch.Generator().manual_seed(seed))
    return p.log()[tokens], q.log()[tokens], float((p * (p / q).log()).sum())


def test_k1_and_k3_estimate_the_true_kl_from_samples_of_the_policy():
    logprobs, ref_logprobs, true_kl = categorical_samples()
    assert true_kl > 0.1  # the two distributions really differ
    assert abs(kl_k1(logprobs, ref_logprobs).mean().item() - true_kl) < 1e-2
    assert abs(kl_k3(logprobs, ref_logprobs).mean().item() - true_kl) < 1e-2


def test_k3_is_never_negative_and_zero_only_where_the_two_agree():
    logprobs = torch.linspace(-6, 0, 25).repeat(25, 1)
    ref_logprobs = logprobs.T
    k3 = kl_k3(logprobs, ref_logprobs)
    assert (k3 >= 0).all()
    assert (k3 == 0).equal(logprobs == ref_logprobs)
    assert (kl_k1(logprobs, ref_logprobs) < 0).any()  # k1 alone can go negative on a token


def test_whiten_by_hand_over_masked_positions_only():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -50.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    # unmasked 1, 2, 3, 4, 5: mean 3, unbiased variance (4 + 1 + 0 + 1 + 4) / 4 = 2.5
    sd = math.sqrt(2.5 + 1e-8)
    close(masked_whiten(values, mask), [[-2 / sd, -1 / sd, 0.0, 0.0], [1 / sd, 2 / sd, 0.0, 0.0]])
    unshifted = [[3 - 2 / sd, 3 - 1 / sd, 3.0, 0.0], [3 + 1 / sd, 3 + 2 / sd, 0.0, 0.0]]
    close(masked_whiten(values, mask, shift_mean=False), unshifted)


def test_masked_positions_do_not_change_whitening():
    torch.manual_seed(0)
    values, mask = torch.randn(3, 5), torch.rand(3, 5) > 0.4
    changed = torch.where(mask, values, torch.randn(3, 5) * 1e4)
    close(masked_whiten(changed, mask), masked_whiten(values, mask))
    close(masked_mean(masked_whiten(values, mask), mask), 0.0)


# One trajectory of three generated tokens, then two masked-out ones whose rewards and values must not count.
REWARDS = torch.tensor([[0.0, 0.0, 1.0, 5.0, 5.0]])
VALUES = torch.tensor([[0.5, 0.4, 0.6, 9.0, 9.0]])
MASK = torch.tensor([[1, 1, 1, 0, 0]])


def test_gae_by_hand_with_a_masked_tail():
    advantages, returns = gae(REWARDS, VALUES, MASK, gamma=0.9, lam=0.8)
    d2 = 1.0 + 0.9 * 0.0 - 0.6  # 0.4: no value after the last generated token
    d1 = 0.0 + 0.9 * 0.6 - 0.4  # 0.14
    d0 = 0.0 + 0.9 * 0.4 - 0.5  # -0.14
    a2 = d2  # 0.4
    a1 = d1 + 0.9 * 0.8 * a2  # 0.428
    a0 = d0 + 0.9 * 0.8 * a1  # 0.16816
    close(advantages, [[a0, a1, a2, 0.0, 0.0]])
    close(returns, [[a0 + 0.5, a1 + 0.4, a2 + 0.6, 0.0, 0.0]])
    close(advantages, [[0.16816, 0.428, 0.4, 0.0, 0.0]])


def test_gae_with_lambda_zero_is_the_one_step_td_error():
    advantages, _ = gae(REWARDS, VALUES, MASK, gamma=0.9, lam=0.0)
    close(advantages, [[0.9 * 0.4 - 0.5, 0.9 * 0.6 - 0.4, 1.0 - 0.6, 0.0, 0.0]])


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value(gamma):
    torch.manual_seed(0)
    rewards, values = torch.randn(2, 6), torch.randn(2, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=gamma, lam=1.0)
    expected = torch.zeros(2, 6)
    for row in range(2):
        steps = mask[row].nonzero().flatten().tolist()
        for t in steps:
            discounted = sum(gamma ** (k - t) * rewards[row, k] for k in steps if k >= t)
            expected[row, t] = discounted - values[row, t]
    close(advantages, expected)
    close(returns, torch.where(mask.bool(), advantages + values, 0.0))


def test_policy_loss_clips_by_hand():
    epsilon = 0.2
    ratio = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.1, 50.0]])
    advantages = torch.tensor([[1.0, -1.0, 1.0, -1.0, 2.0, 3.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])  # the last token's huge ratio is masked out
    old_logprobs = torch.tensor([[-1.0, -2.0, -0.3, -4.0, -1.5, -0.1]])
    logprobs = (old_logprobs + ratio.log()).requires_grad_()
    loss, clip_fraction, approx_kl = policy_loss(logprobs, old_logprobs, advantages, mask, epsilon)
    # ρ=1.5, A>0: clipped to 1.2 | ρ=1.5, A<0: not clipped | ρ=0.5, A>0: not clipped
    # ρ=0.5, A<0: clipped to 0.8 | ρ=1.1 inside the range
    per_token = [-1.2, 1.5, -0.5, 0.8, -2.2]
    close(loss, sum(per_token) / 5)
    close(clip_fraction, 2 / 5)
    close(approx_kl, sum(r - 1 - math.log(r) for r in [1.5, 1.5, 0.5, 0.5, 1.1]) / 5)
    loss.backward()
    # d(−ρA)/d log π = −ρA on unclipped tokens, 0 where the clipped term was taken or masked
    close(logprobs.grad, [[0.0, 1.5 / 5, -0.5 / 5, 0.0, -2.2 / 5, 0.0]])


def test_policy_loss_at_the_old_policy_is_minus_the_mean_advantage():
    advantages, mask = torch.tensor([[1.0, -3.0, 2.0]]), torch.ones(1, 3)
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    loss, clip_fraction, approx_kl = policy_loss(logprobs, logprobs, advantages, mask, 0.2)
    close(loss, 0.0)
    close(clip_fraction, 0.0)
    close(approx_kl, 0.0)


def test_value_loss_by_hand():
    values = torch.tensor([[1.0, 1.0, 0.6, 100.0]], requires_grad=True)
    old_values = torch.tensor([[0.5, 0.5, 0.5, 0.0]])
    returns = torch.tensor([[1.0, 0.0, 2.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss = value_loss(values, old_values, returns, mask, clip_range_value=0.2)
    # V moved 0.5 from V_old, clipped to 0.7: max(0², 0.3²) = 0.09 | max(1², 0.7²) = 1 | inside: 1.4² = 1.96
    close(loss, 0.5 * (0.09 + 1.0 + 1.96) / 3)
    loss.backward()
    # the first token's loss is the clipped term, constant in V: no gradient; the others 0.5·2(V − R)/3
    close(values.grad, [[0.0, 1.0 / 3, -1.4 / 3, 0.0]])
