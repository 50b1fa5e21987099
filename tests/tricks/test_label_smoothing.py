"""One-sided label smoothing: the discriminator's loss written out by hand, per objective."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.config import load_recipe
from gankit.errors import ConfigError
from gankit.objectives import build_objective
from gankit.tricks import TRICKS, build_tricks

REAL = [2.0, -0.5, 0.3, -3.0, 1.25]
FAKE = [-1.5, 0.7, 0.0, 2.5]


def sigmoid(s: float) -> float:
    return 1 / (1 + math.exp(-s))


def bce_by_hand(real, fake, targets) -> float:
    """mean_i [-t_i log sig(r_i) - (1 - t_i) log(1 - sig(r_i))] + mean_j [-log(1 - sig(f_j))]"""
    real_term = sum(
        -t * math.log(sigmoid(r)) - (1 - t) * math.log(1 - sigmoid(r))
        for r, t in zip(real, targets)
    ) / len(real)
    fake_term = sum(-math.log(1 - sigmoid(f)) for f in fake) / len(fake)
    return real_term + fake_term


def least_squares_by_hand(real, fake, targets, a, b) -> float:
    real_term = sum(0.5 * (r - (a + t * (b - a))) ** 2 for r, t in zip(real, targets)) / len(real)
    return real_term + sum(0.5 * (f - a) ** 2 for f in fake) / len(fake)


def scores():
    return torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)


def smoothing(make_method, objective="non_saturating", **options):
    """The attached label smoothing trick of a tiny ring8 run, and the run's objective."""
    method = make_method(
        {"objective": {"name": objective}, "tricks": [{"name": "label_smoothing", **options}]}
    )
    return method.tricks[0], method.objective


@pytest.mark.parametrize("objective", ["non_saturating", "minimax"])
@pytest.mark.parametrize("real", [0.9, 0.75, 1.0])
def test_cross_entropy_toward_the_smoothed_target(make_method, objective, real):
    trick, obj = smoothing(make_method, objective, real=real)
    d_real, d_fake = scores()
    loss = trick.d_loss(obj, d_real, d_fake)
    assert loss.item() == pytest.approx(bce_by_hand(REAL, FAKE, [real] * len(REAL)), rel=1e-12)


def test_default_real_target_is_0_9(make_method):
    cfg = load_recipe("ring8", {"tricks": [{"name": "label_smoothing"}]})
    assert cfg.tricks[0]["real"] == 0.9 and cfg.tricks[0]["real_range"] is None
    trick, obj = smoothing(make_method)
    loss = trick.d_loss(obj, *scores())
    assert loss.item() == pytest.approx(bce_by_hand(REAL, FAKE, [0.9] * 5), rel=1e-12)
    # the smoothed loss is not the plain one (target 1): the comparison above can fail
    assert loss.item() != pytest.approx(bce_by_hand(REAL, FAKE, [1.0] * 5), rel=1e-6)


@pytest.mark.parametrize("a, b, real", [(-1.0, 2.0, 0.8), (0.0, 1.0, 0.9), (1.0, 3.0, 0.6)])
def test_least_squares_real_target_is_a_plus_t_b_minus_a(make_method, a, b, real):
    trick, obj = smoothing(make_method, "least_squares", real=real)
    obj = build_objective({"name": "least_squares", "a": a, "b": b})
    loss = trick.d_loss(obj, *scores())
    expected = least_squares_by_hand(REAL, FAKE, [real] * 5, a, b)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_least_squares_options_reach_the_trick_in_a_run(make_method):
    method = make_method(
        {
            "objective": {"name": "least_squares", "a": -1.0, "b": 2.0},
            "tricks": [{"name": "label_smoothing", "real": 0.5}],
        }
    )
    loss = method.tricks[0].d_loss(method.objective, *scores())
    assert loss.item() == pytest.approx(least_squares_by_hand(REAL, FAKE, [0.5] * 5, -1, 2))


@pytest.mark.parametrize("objective", ["non_saturating", "least_squares"])
def test_real_range_draws_one_target_per_example(make_method, objective):
    low, high = 0.7, 0.95
    trick, obj = smoothing(make_method, objective, real_range=[low, high])
    d_real, d_fake = scores()
    saved = {k: v.clone() for k, v in trick.state_dict().items()}
    targets = trick.targets(d_real)
    assert targets.shape == d_real.shape
    assert len(set(targets.tolist())) == len(REAL)  # per example, not one shared value
    assert all(low <= t <= high for t in targets.tolist())
    trick.load_state_dict(saved)  # the loss draws the same targets again
    loss = trick.d_loss(obj, d_real, d_fake)
    t = targets.tolist()
    if objective == "least_squares":
        expected = least_squares_by_hand(REAL, FAKE, t, 0.0, 1.0)
    else:
        expected = bce_by_hand(REAL, FAKE, t)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # the next call draws new targets
    assert not torch.equal(trick.targets(d_real), targets)


def test_real_range_is_uniform_over_the_range(make_method):
    low, high = 0.6, 0.8
    trick, _ = smoothing(make_method, real_range=[low, high])
    t = trick.targets(torch.zeros(20000, dtype=torch.float64))
    assert low <= t.min().item() < low + 0.01 and high - 0.01 < t.max().item() <= high
    assert t.mean().item() == pytest.approx((low + high) / 2, abs=0.003)
    # uniform: std (high - low) / sqrt(12); a quarter of the draws in each quarter of the range
    assert t.std().item() == pytest.approx((high - low) / math.sqrt(12), rel=0.03)
    quarter = ((t - low) / (high - low) * 4).floor().clamp(max=3)
    counts = torch.bincount(quarter.long(), minlength=4).tolist()
    assert all(abs(c - 5000) < 300 for c in counts), counts


def test_real_range_low_equals_high_is_a_fixed_target(make_method):
    trick, obj = smoothing(make_method, real_range=[0.85, 0.85])
    loss = trick.d_loss(obj, *scores())
    assert loss.item() == pytest.approx(bce_by_hand(REAL, FAKE, [0.85] * 5), rel=1e-6)


class Recorder(nn.Module):
    """D that remembers the scores it gave (one list per call)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.scores = []

    def forward(self, x):
        out = self.inner(x)
        self.scores.append(out.detach().double().tolist())
        return out


def test_the_training_step_uses_the_smoothed_loss(make_method):
    method = make_method({"tricks": [{"name": "label_smoothing", "real": 0.8}]})
    method.discriminator = Recorder(method.discriminator)
    logs = method.train_step(0)
    real, fake = method.discriminator.scores[:2]  # D(real), D(fake) of the D step
    expected = bce_by_hand(real, fake, [0.8] * len(real))
    assert logs["d_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert logs["d_loss"].item() != pytest.approx(bce_by_hand(real, fake, [1.0] * len(real)))


@pytest.mark.parametrize("objective", ["wasserstein", "wgan_gp", "hinge"])
def test_objectives_without_labels_are_refused(make_method, objective):
    with pytest.raises(ConfigError, match=f"label_smoothing.*{objective}"):
        make_method({"objective": {"name": objective}, "tricks": [{"name": "label_smoothing"}]})


@pytest.mark.parametrize(
    "options, match",
    [
        ({"real": 0.0}, r"real: must be in \(0, 1\]"),
        ({"real": -0.1}, r"real: must be in \(0, 1\]"),
        ({"real": 1.5}, r"real: must be in \(0, 1\]"),
        ({"real_range": [0.9, 0.8]}, "low <= high"),
        ({"real_range": [-0.1, 0.5]}, "0 <= low"),
        ({"real_range": [0.5, 1.2]}, "high <= 1"),
        ({"real_range": [0.5]}, r"\[low, high\]"),
        ({"real_range": [0.1, 0.2, 0.3]}, r"\[low, high\]"),
    ],
)
def test_out_of_range_options_are_refused(options, match):
    cfg = load_recipe("ring8", {"tricks": [{"name": "label_smoothing", **options}]})
    with pytest.raises(ConfigError, match=match):
        build_tricks(cfg, build_objective(cfg.objective))


def test_builder_defaults():
    trick = TRICKS.get("label_smoothing")()
    assert trick.real == 0.9 and trick.real_range is None
