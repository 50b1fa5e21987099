"""Kernel MMD^2 against a naive double sum."""

import math

import pytest
import torch

from gankit.mmd import mmd2

SIGMAS = (0.5, 1.0, 3.0)


def k(a, b):
    d2 = sum((p - q) ** 2 for p, q in zip(a, b))
    return sum(math.exp(-d2 / (2 * s * s)) for s in SIGMAS)


def naive(x, y, unbiased):
    x, y = x.flatten(1).tolist(), y.flatten(1).tolist()
    m, n = len(x), len(y)
    if unbiased:
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    else:
        xx = sum(k(a, b) for a in x for b in x) / m**2
        yy = sum(k(a, b) for a in y for b in y) / n**2
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_equals_naive_double_sum(unbiased):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.7
    got = mmd2(x, y, SIGMAS, unbiased).item()
    assert got == pytest.approx(naive(x, y, unbiased), rel=1e-9, abs=1e-12)
    # images are flattened
    got_img = mmd2(x.reshape(7, 3, 1, 1), y.reshape(5, 3, 1, 1), SIGMAS, unbiased).item()
    assert got_img == pytest.approx(got, rel=1e-12)


def test_biased_mmd_is_zero_for_identical_samples_and_positive_otherwise():
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    assert mmd2(x, x.clone(), SIGMAS, unbiased=False).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd2(x, x + 1.0, SIGMAS, unbiased=False).item() > 0.1


def test_unbiased_mmd_has_expectation_near_zero_for_one_distribution():
    g = torch.Generator().manual_seed(2)
    values = [
        mmd2(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g), SIGMAS).item()
        for _ in range(200)
    ]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    assert abs(mean) < 3 * sd / len(values) ** 0.5  # within 3 standard errors of 0
    assert min(values) < 0  # the unbiased estimate does go negative
    shifted = mmd2(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 2, SIGMAS)
    assert shifted.item() > 10 * sd
