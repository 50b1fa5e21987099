"""Minibatch discrimination against a naive Python loop; minibatch stddev against a hand formula."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.models import build_discriminator
from gankit.models.minibatch import MinibatchDiscrimination, MinibatchStdDev


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def naive_minibatch(f: list[list[float]], T: list[list[float]], B: int, C: int, include_self):
    """Salimans et al. 2016, sec 3.2, with Python sums only."""
    N, A = len(f), len(f[0])
    M = [
        [[sum(f[i][a] * T[a][b * C + c] for a in range(A)) for c in range(C)] for b in range(B)]
        for i in range(N)
    ]
    o = []
    for i in range(N):
        row = []
        for b in range(B):
            total = 0.0
            for j in range(N):
                if j == i and not include_self:
                    continue
                total += math.exp(-sum(abs(M[i][b][c] - M[j][b][c]) for c in range(C)))
            row.append(total)
        o.append(f[i] + row)
    return o


@pytest.mark.parametrize("include_self", [False, True])
def test_minibatch_discrimination_matches_naive_loop(include_self):
    A, B, C, N = 5, 3, 4, 6
    layer = MinibatchDiscrimination(A, B, C, include_self=include_self).double()
    with torch.no_grad():
        layer.T.normal_(0.0, 0.3)  # distances of order 1, so exp(-d) is neither 0 nor 1
    f = torch.randn(N, A, dtype=torch.float64)
    expected = naive_minibatch(f.tolist(), layer.T.tolist(), B, C, include_self)
    out = layer(f)
    assert out.shape == (N, A + B)
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_minibatch_discrimination_self_term_is_one_per_kernel():
    layer = MinibatchDiscrimination(4, 3, 2)
    f = torch.randn(5, 4)
    with_self = MinibatchDiscrimination(4, 3, 2, include_self=True)
    with_self.load_state_dict(layer.state_dict())
    assert torch.allclose(with_self(f)[:, 4:] - layer(f)[:, 4:], torch.ones(5, 3), atol=1e-6)


def test_minibatch_discrimination_detects_duplicates_and_keeps_gradients():
    """Identical samples give o = N - 1 per kernel (c = 1 for every other j): collapse shows."""
    layer = MinibatchDiscrimination(8, 4, 3)
    collapsed = torch.randn(1, 8).expand(5, 8)
    assert torch.allclose(layer(collapsed)[:, 8:], torch.full((5, 4), 4.0))
    f = torch.randn(5, 8, requires_grad=True)
    layer(f)[:, 8:].sum().backward()
    assert f.grad.abs().sum() > 0 and layer.T.grad.abs().sum() > 0


def test_minibatch_discrimination_init_is_not_saturated_on_wide_features():
    """With A = 4096 unit-scale features the kernel outputs stay away from 0 (exp underflow)."""
    layer = MinibatchDiscrimination(4096, 16, 5)
    o = layer(torch.randn(32, 4096))[:, 4096:] / 31  # mean c over the other 31 samples
    assert 0.05 < o.mean() < 0.95


def test_minibatch_discrimination_on_a_discriminator_feature_dim():
    d = build_discriminator({"name": "dcgan", "base_channels": 8}, (1, 16, 16))
    layer = MinibatchDiscrimination(d.feature_dim, 10, 5)
    h = d.features(torch.randn(4, 1, 16, 16))
    assert layer(h).shape == (4, d.feature_dim + 10)


def test_minibatch_discrimination_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        MinibatchDiscrimination(5, 2, 2)(torch.randn(3, 4))


def hand_std_feature(rows: list[list[float]]) -> float:
    """Mean over features of sqrt(population variance over the rows + 1e-8)."""
    n, a = len(rows), len(rows[0])
    total = 0.0
    for k in range(a):
        col = [r[k] for r in rows]
        mu = sum(col) / n
        total += math.sqrt(sum((v - mu) ** 2 for v in col) / n + 1e-8)
    return total / a


def test_minibatch_stddev_whole_batch_matches_hand_computation():
    f = torch.randn(6, 4, dtype=torch.float64)
    out = MinibatchStdDev()(f)
    assert out.shape == (6, 5)
    assert torch.equal(out[:, :4], f)
    expected = hand_std_feature(f.tolist())
    assert torch.allclose(out[:, 4], torch.full((6,), expected, dtype=torch.float64))


def test_minibatch_stddev_groups_of_consecutive_samples():
    f = torch.randn(8, 3, dtype=torch.float64)
    out = MinibatchStdDev(group_size=4)(f)
    rows = f.tolist()
    expected = [hand_std_feature(rows[:4])] * 4 + [hand_std_feature(rows[4:])] * 4
    assert torch.allclose(out[:, 3], torch.tensor(expected, dtype=torch.float64))


def test_minibatch_stddev_small_batch_and_errors():
    f = torch.randn(3, 2, dtype=torch.float64)  # group 4 > N: one group of 3, as ProGAN
    assert torch.allclose(MinibatchStdDev(group_size=4)(f)[:, 2], MinibatchStdDev()(f)[:, 2])
    collapsed = torch.ones(4, 2)
    assert torch.allclose(MinibatchStdDev()(collapsed)[:, 2], torch.full((4,), 1e-4))
    with pytest.raises(ValueError, match="multiple"):
        MinibatchStdDev(group_size=4)(torch.randn(6, 2))
    with pytest.raises(ValueError, match="group_size"):
        MinibatchStdDev(group_size=0)
