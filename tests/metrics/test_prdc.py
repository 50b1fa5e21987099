"""Precision/recall and density/coverage on point sets with hand-worked radii."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gankit.metrics.prdc as prdc_module
from gankit.metrics.prdc import density_coverage, precision_recall


def col(values):
    return np.asarray(values, dtype=np.float64)[:, None]


def test_1d_hand_worked_k1():
    # real 0, 1, 3, 7 with k=1: radii 1, 1, 2, 4 -> balls [-1,1], [0,2], [1,5], [3,11]
    real = col([0, 1, 3, 7])
    # 0.5 in balls 0,1; 2 in balls 1 (on the edge), 2; 5 in balls 2 (on the edge), 3; 12, -2 none
    out = density_coverage(real, col([0.5, 2, 5, 12, -2]), k=1)
    assert out["density"] == pytest.approx(6 / 5)
    assert out["coverage"] == 1.0
    # without 5, ball 3 ([3, 11]) holds no fake sample
    out = density_coverage(real, col([0.5, 2, 12, -2]), k=1)
    assert out["density"] == pytest.approx(4 / 4)
    assert out["coverage"] == pytest.approx(3 / 4)
    assert precision_recall(real, col([0.5, 2, 5, 12, -2]), k=1)["precision"] == pytest.approx(0.6)


def test_1d_recall_k1():
    # fake 0,1,2,3 all have radius 1: real 0,1,2 are inside, 50 is not
    # real radii 1,1,1,48: fake 3 is on the edge of real 2's ball (and inside real 50's)
    out = precision_recall(col([0, 1, 2, 50]), col([0, 1, 2, 3]), k=1)
    assert out == {"precision": 1.0, "recall": 0.75}


def test_2d_hand_worked_k2():
    real = np.array([[0, 0], [1, 0], [0, 1], [10, 10]], dtype=np.float64)
    # second-nearest-neighbour radii: 1, sqrt 2, sqrt 2, sqrt 181 (the outlier's ball is huge)
    fake = torch.tensor([[0.5, 0.5], [3, 3], [20, 20], [-5, -5]], dtype=torch.float64)
    # (0.5,0.5): all four balls (|.-(10,10)| = sqrt 180.5 <= sqrt 181); (3,3): only the
    # outlier's (sqrt 98); (20,20): sqrt 200 > sqrt 181; (-5,-5): none
    out = precision_recall(real, fake, k=2)
    assert out["precision"] == pytest.approx(2 / 4)
    # fake radii (second NN among fakes): 5.5 sqrt2, 8 sqrt2, 19.5 sqrt2, 8 sqrt2; every real
    # point lies within 0.71 of (0.5,0.5) or sqrt 200 of (20,20)
    assert out["recall"] == 1.0
    dc = density_coverage(real, fake, k=2)
    assert dc["density"] == pytest.approx(5 / (2 * 4))
    assert dc["coverage"] == 1.0


def test_identical_sets():
    x = np.random.default_rng(0).standard_normal((200, 3))
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    dc = density_coverage(x, x, k=5)
    assert dc["coverage"] == 1.0
    # closed balls: each real ball holds its centre and its k neighbours, so (k+1)/k exactly
    assert dc["density"] == pytest.approx(6 / 5)


def test_same_distribution_density_near_one():
    rng = np.random.default_rng(1)
    dc = density_coverage(rng.standard_normal((2000, 4)), rng.standard_normal((2000, 4)), k=5)
    assert dc["density"] == pytest.approx(1.0, abs=0.08)
    # Naeem et al. Lemma 2: expected coverage -> 1 - 2^-k for equal sizes
    assert dc["coverage"] == pytest.approx(1 - 0.5**5, abs=0.03)


def test_disjoint_sets_give_zero():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((100, 5)), rng.standard_normal((80, 5)) + 100.0
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(real, fake) == {"density": 0.0, "coverage": 0.0}


def brute_force(real, fake, k):
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    r_real = np.sort(dist(real, real), axis=1)[:, k]
    r_fake = np.sort(dist(fake, fake), axis=1)[:, k]
    d = dist(real, fake)
    inside = d <= r_real[:, None]
    return {
        "precision": inside.any(0).mean(),
        "recall": (d <= r_fake[None, :]).any(1).mean(),
        "density": inside.sum() / (k * len(fake)),
        "coverage": inside.any(1).mean(),
    }


def test_chunked_matches_brute_force(monkeypatch):
    monkeypatch.setattr(prdc_module, "CHUNK", 7)
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((60, 3)), rng.standard_normal((45, 3)) * 1.3 + 0.2
    expected = brute_force(real, fake, k=3)
    got = {**precision_recall(real, fake, k=3), **density_coverage(real, fake, k=3)}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_bad_k_raises():
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(np.zeros((3, 2)), np.ones((5, 2)), k=3)
    assert math.isfinite(density_coverage(np.arange(8.0)[:, None], col([1.0]), k=3)["density"])
