"""Exact and sliced Wasserstein distances against scipy/POT 1D references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.stats
import torch

from gankit.metrics.wasserstein import sliced_wasserstein, wasserstein1


@pytest.mark.parametrize("sizes", [(40, 40), (30, 45)])
def test_exact_1d_matches_scipy(sizes):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(sizes[0]), rng.exponential(size=sizes[1])
    expected = scipy.stats.wasserstein_distance(x, y)
    assert wasserstein1(x[:, None], y[:, None]) == pytest.approx(expected, rel=1e-10)


def test_exact_hand_cases():
    assert wasserstein1(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(5.0)
    # two points each, moved up by 1: the best plan moves each straight up
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert wasserstein1(x, torch.tensor([[1.0, 1.0], [0.0, 1.0]])) == pytest.approx(1.0)
    pts = np.random.default_rng(1).standard_normal((25, 3))
    assert wasserstein1(pts, pts[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_exact_refuses_large_sets():
    with pytest.raises(ValueError, match="sliced_wasserstein"):
        wasserstein1(np.zeros((10_001, 1)), np.zeros((5, 1)))


@pytest.mark.parametrize("sizes", [(50, 50), (30, 45), (7, 3)])
def test_sliced_in_1d_is_exact(sizes):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(sizes[0]), rng.uniform(-1, 3, sizes[1])
    w1 = scipy.stats.wasserstein_distance(x, y)
    assert sliced_wasserstein(x, y, n_projections=3) == pytest.approx(w1, rel=1e-10)
    w2 = math.sqrt(ot.wasserstein_1d(x, y, p=2))
    assert sliced_wasserstein(x, y, n_projections=3, p=2) == pytest.approx(w2, rel=1e-10)


def test_sliced_equal_sets_and_images():
    pts = np.random.default_rng(3).standard_normal((20, 2, 4, 4))  # flattened to 32 values
    assert sliced_wasserstein(pts, pts[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_sliced_translation_matches_isotropic_expectation():
    # projections of x + t are those of x shifted by theta.t, so SW_p = (E|theta.t|^p)^(1/p);
    # for uniform directions in 2D, E|cos| = 2/pi and E cos^2 = 1/2
    x = np.random.default_rng(4).standard_normal((64, 2))
    t = np.array([3.0, -4.0])
    sw1 = sliced_wasserstein(x, x + t, n_projections=20_000, seed=1)
    assert sw1 == pytest.approx(2 / math.pi * 5.0, rel=0.02)
    sw2 = sliced_wasserstein(x, x + t, n_projections=20_000, seed=1, p=2)
    assert sw2 == pytest.approx(5.0 / math.sqrt(2), rel=0.02)
