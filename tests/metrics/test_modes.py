"""Mode counting on the ring-8 mixture, with samples placed at known offsets from its modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.data.toy2d import mixture_means
from gankit.metrics.modes import mixture_modes

MEANS = mixture_means("ring", 8, 1.0, 2.0)  # mode 0 is (1, 0) exactly


def at(mode, dx=0.0, dy=0.0):
    m = MEANS[mode].double()
    return [float(m[0]) + dx, float(m[1]) + dy]


def test_counts_and_reverse_kl_by_hand():
    samples = torch.tensor(
        [
            at(0),
            at(0, dx=0.02),
            at(0, dy=-0.05),  # nearest to mode 0 but 5 std away: low quality
            at(2, dx=0.01),
            at(4),
            at(4, dy=0.015),
            at(4, dx=-0.02, dy=0.02),  # 0.028 < 0.03
            [0.0, 0.0],  # centre of the ring: 100 std from every mode
        ],
        dtype=torch.float64,
    )
    out = mixture_modes(samples, MEANS, std=0.01)
    assert out["counts"] == [2, 0, 1, 0, 3, 0, 0, 0]
    assert out["modes_captured"] == 3 and out["n_modes"] == 8
    assert out["high_quality_fraction"] == pytest.approx(6 / 8)
    q = [2 / 6, 1 / 6, 3 / 6]
    expected = sum(p * math.log(p * 8) for p in q)
    assert out["reverse_kl"] == pytest.approx(expected, rel=1e-12)
    assert mixture_modes(samples.numpy(), MEANS.numpy(), 0.01, rule="euclidean") == out


def test_threshold_boundary_strict_vs_inclusive():
    # 0.5 from mode 0 with std 0.25 and threshold 2: exactly on the boundary
    samples = np.array([[1.5, 0.0], [1.0, -0.25]])
    maha = mixture_modes(samples, MEANS, std=0.25, threshold=2.0, rule="mahalanobis")
    eucl = mixture_modes(samples, MEANS, std=0.25, threshold=2.0, rule="euclidean")
    assert maha["counts"][0] == 1 and maha["high_quality_fraction"] == 0.5
    assert eucl["counts"][0] == 2 and eucl["high_quality_fraction"] == 1.0


def test_uniform_coverage_and_no_quality():
    samples = torch.cat([MEANS.double()] * 3)
    out = mixture_modes(samples, MEANS, std=0.01)
    assert out["modes_captured"] == 8 and out["counts"] == [3] * 8
    assert out["reverse_kl"] == pytest.approx(0.0, abs=1e-15)
    one_mode = mixture_modes(torch.stack([MEANS[5].double()] * 4), MEANS, std=0.01)
    assert one_mode["reverse_kl"] == pytest.approx(math.log(8))
    none = mixture_modes(np.zeros((5, 2)), MEANS, std=0.01)
    assert none["modes_captured"] == 0 and none["reverse_kl"] == math.inf


def test_bad_rule_raises():
    with pytest.raises(ValueError, match="rule"):
        mixture_modes(np.zeros((1, 2)), MEANS, std=0.01, rule="cosine")
