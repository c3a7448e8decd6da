"""Two-sample statistics for drift, each returning numbers computed from the samples.

* MMD² with an RBF kernel (bandwidth: median pairwise distance), p-value by permutation:
  how likely a difference this large is when both samples come from one distribution.
* Length shift: mean lengths and a permutation p-value of their difference.
* Vocabulary shift: share of live words never seen in training, and the Jensen-Shannon
  divergence of the two word distributions.
* Wilson interval for a rate (the negative-feedback share), honest at small counts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float


def mmd_permutation_test(x, y, permutations: int = 500, seed: int = 0) -> TestResult:
    """Unbiased MMD² between row sets ``x`` [n, d] and ``y`` [m, d], with a permutation p-value.

    All permutations are scored at once: with ``u`` the 0/1 membership of the first sample and
    ``v = 1 - u``, MMD² = u'Ku/(n(n-1)) + v'Kv/(m(m-1)) - 2 u'Kv/(nm) with K's diagonal zeroed.
    """
    import torch

    joined = torch.cat([x, y]).double()
    distances = torch.cdist(joined, joined).pow(2)
    positive = distances[distances > 0]
    bandwidth = positive.median() if positive.numel() else torch.tensor(1.0, dtype=torch.float64)
    kernel = torch.exp(-distances / bandwidth).fill_diagonal_(0.0)
    n, total = len(x), len(joined)
    generator = torch.Generator().manual_seed(seed)
    orders = torch.stack([torch.arange(total)] + [torch.randperm(total, generator=generator) for _ in range(permutations)])
    membership = (orders < n).double()  # row 0 is the observed split
    scores = _mmd2(kernel, membership, n, total - n)
    exceed = int((scores[1:] >= scores[0]).sum())
    return TestResult(float(scores[0]), (exceed + 1) / (permutations + 1))


def _mmd2(kernel, membership, n: int, m: int):
    """MMD² for each row of ``membership`` (1: first sample, 0: second)."""
    other = 1.0 - membership
    k_member, k_other = membership @ kernel, other @ kernel
    within_first = (k_member * membership).sum(1) / (n * (n - 1))
    within_second = (k_other * other).sum(1) / (m * (m - 1))
    between = (k_member * other).sum(1) / (n * m)
    return within_first + within_second - 2 * between


def mean_difference_test(x: list[float], y: list[float], permutations: int = 2000, seed: int = 0) -> TestResult:
    """|mean(y) - mean(x)| with a permutation p-value (no distributional assumption)."""
    import random

    observed = abs(sum(y) / len(y) - sum(x) / len(x))
    pooled, n = list(x) + list(y), len(x)
    rng = random.Random(seed)
    exceed = 0
    for _ in range(permutations):
        rng.shuffle(pooled)
        exceed += abs(sum(pooled[n:]) / (len(pooled) - n) - sum(pooled[:n]) / n) >= observed - 1e-12
    return TestResult(observed, (exceed + 1) / (permutations + 1))


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def vocabulary_shift(train_texts: list[str], live_texts: list[str]) -> dict[str, float]:
    """Out-of-vocabulary share of live words, and the JS divergence (bits, 0..1) of word frequencies."""
    train, live = Counter(w for t in train_texts for w in words(t)), Counter(w for t in live_texts for w in words(t))
    live_total = sum(live.values()) or 1
    unseen = sum(count for word, count in live.items() if word not in train) / live_total
    return {"unseen_word_share": unseen, "js_divergence": js_divergence(train, live)}


def js_divergence(p: Counter, q: Counter) -> float:
    p_total, q_total = sum(p.values()) or 1, sum(q.values()) or 1
    divergence = 0.0
    for word in p.keys() | q.keys():
        a, b = p[word] / p_total, q[word] / q_total
        middle = (a + b) / 2
        divergence += 0.5 * (a * math.log2(a / middle) if a else 0.0) + 0.5 * (b * math.log2(b / middle) if b else 0.0)
    return divergence


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (stays inside [0, 1], sensible at small n)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)
