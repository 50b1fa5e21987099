"""Stacked MNIST mode histogram, worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.metrics.stacked import stacked_mode_histogram


def test_stacked_mode_histogram_by_hand():
    digits = np.array([[1, 2, 3], [1, 2, 3], [0, 0, 0], [9, 9, 9]])
    out = stacked_mode_histogram(digits)
    assert out["modes_hit"] == 3 and out["n_modes"] == 1000
    expected = 0.5 * math.log(0.5 * 1000) + 2 * 0.25 * math.log(0.25 * 1000)
    assert out["reverse_kl"] == pytest.approx(expected, rel=1e-12)
    # 123 and 321 are distinct modes; all 1000 once each is uniform
    assert stacked_mode_histogram(torch.tensor([[1, 2, 3], [3, 2, 1]]))["modes_hit"] == 2
    everything = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    full = stacked_mode_histogram(everything)
    assert full["modes_hit"] == 1000 and full["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        stacked_mode_histogram(np.array([[1, 2, 10]]))
