"""Inception Score on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.metrics.inception_score import inception_score


def confident(classes, k, gap=50.0):
    return gap * torch.nn.functional.one_hot(torch.tensor(classes), k).double()


def test_confident_and_balanced_gives_k():
    k = 7
    logits = confident([i % k for i in range(10 * k * 3)], k)  # every split holds each class 3x
    out = inception_score(logits, splits=10)
    assert out["mean"] == pytest.approx(k, rel=1e-9)
    assert out["std"] < 1e-9 and out["splits"] == 10


def test_identical_samples_give_one():
    logits = np.tile(np.array([[0.3, -1.2, 2.0, 0.0]]), (20, 1))
    out = inception_score(logits, splits=4)
    assert out["mean"] == pytest.approx(1.0, abs=1e-12)
    assert out["std"] == pytest.approx(0.0, abs=1e-12)


def test_two_class_by_hand():
    # softmax([log 3, 0]) = (3/4, 1/4); softmax([0, 0]) = (1/2, 1/2); p(y) = (5/8, 3/8)
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]], dtype=torch.float64)
    kl1 = 0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)
    kl2 = 0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)
    out = inception_score(logits, splits=1)
    assert out["mean"] == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-12)
    assert out["std"] == 0.0


def test_marginal_is_taken_per_split():
    # split 1: classes 0 and 1 (IS 2); split 2: class 0 twice (IS 1). A global p(y) = (3/4, 1/4)
    # would give exp(mean KL) = exp((3 log(4/3) + log 4) / 4) ~ 1.75 for every sample instead.
    out = inception_score(confident([0, 1, 0, 0], 2), splits=2)
    assert out["mean"] == pytest.approx(1.5, rel=1e-9)
    assert out["std"] == pytest.approx(0.5, rel=1e-9)
    # split 1: class 0 twice, split 2: class 1 twice -> 1 per split, although the global is 2
    assert inception_score(confident([0, 0, 1, 1], 2), splits=2)["mean"] == pytest.approx(1.0)


def test_extreme_logits_stay_finite():
    out = inception_score(confident([0, 1, 2, 0], 3, gap=5000.0), splits=1)
    kl = (2 * math.log(2.0) + 2 * math.log(4.0)) / 4  # p(y) = (1/2, 1/4, 1/4)
    assert out["mean"] == pytest.approx(math.exp(kl), rel=1e-12)


def test_bad_splits_raise():
    with pytest.raises(ValueError):
        inception_score(torch.zeros(3, 4), splits=5)
