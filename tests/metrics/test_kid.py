"""KID against a naive double loop over pairs, plus its behaviour on equal and shifted sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.metrics.kid import kid


def naive_unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, d = len(x), len(x[0])

    def k(a, b):
        return (sum(float(a[t]) * float(b[t]) for t in range(d)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / m**2


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_estimator(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, 3))
    y = rng.standard_normal((7, 3)) * 1.5 + 0.3
    out = kid(x, torch.from_numpy(y), subset_size=7, n_subsets=1)
    assert out["mean"] == pytest.approx(naive_unbiased_mmd2(x, y), rel=1e-10, abs=1e-12)
    assert out["std"] == 0.0 and out["subset_size"] == 7 and out["n_subsets"] == 1
    assert out["subset_size_reduced"] is False
    # a full-size subset is a permutation of the whole set, so every subset gives the same value
    many = kid(x, y, subset_size=7, n_subsets=5)
    assert many["mean"] == pytest.approx(out["mean"], rel=1e-10, abs=1e-12)
    assert many["std"] < 1e-10


def test_same_distribution_near_zero_and_shift_positive():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((2000, 8))
    same = kid(real, rng.standard_normal((2000, 8)), subset_size=500, n_subsets=20)
    assert abs(same["mean"]) < 3 * same["std"] + 1e-6
    shifted = kid(real, rng.standard_normal((2000, 8)) + 0.5, subset_size=500, n_subsets=20)
    assert shifted["mean"] > 10 * same["std"]
    assert shifted["mean"] > 0.05


def test_reduced_subset_is_flagged():
    rng = np.random.default_rng(0)
    out = kid(rng.standard_normal((50, 4)), rng.standard_normal((30, 4)), subset_size=1000)
    assert out["subset_size"] == 30 and out["subset_size_reduced"] is True
    assert out["n_subsets"] == 100


def test_too_few_samples_raise():
    with pytest.raises(ValueError, match="at least 2"):
        kid(np.zeros((1, 4)), np.zeros((10, 4)))
    with pytest.raises(ValueError):
        kid(np.zeros((10, 4)), np.zeros((10, 5)))
