"""Virtual batch norm against statistics computed by hand, and its independence from the batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gankit.methods.conditional import ConditionalGenerator
from gankit.models import build_generator
from gankit.models.vbn import VirtualBatchGenerator, VirtualBatchNorm, convert_batchnorm_to_vbn


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def vbn_layer(features: int, ref: int) -> VirtualBatchNorm:
    layer = VirtualBatchNorm(features, ref).double()
    with torch.no_grad():
        layer.weight.normal_(1.0, 0.3)
        layer.bias.normal_(0.0, 0.3)
    return layer


def test_vbn_2d_matches_hand_computation():
    n, F = 4, 3
    layer = vbn_layer(F, n)
    x = torch.randn(n + 2, F, dtype=torch.float64)
    out = layer(x).detach().numpy()
    xs, g, b = x.numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for f in range(F):
        ref = [xs[r, f] for r in range(n)]
        ref_mean, ref_sq = sum(ref) / n, sum(v * v for v in ref) / n
        for r in range(n):  # reference rows: the reference batch's own statistics
            expected = (xs[r, f] - ref_mean) / math.sqrt(ref_sq - ref_mean**2 + 1e-5) * g[f] + b[f]
            assert out[r, f] == pytest.approx(expected, abs=1e-10)
        for r in range(n, n + 2):
            v = xs[r, f]
            mean = v / (n + 1) + n / (n + 1) * ref_mean
            sq = v * v / (n + 1) + n / (n + 1) * ref_sq
            expected = (v - mean) / math.sqrt(sq - mean**2 + 1e-5) * g[f] + b[f]
            assert out[r, f] == pytest.approx(expected, abs=1e-10)


def test_vbn_4d_matches_hand_computation():
    n, C, H, W = 3, 2, 4, 5
    layer = vbn_layer(C, n)
    x = torch.randn(n + 2, C, H, W, dtype=torch.float64)
    out = layer(x).detach().numpy()
    xs, g, b = x.numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for c in range(C):
        ref_mean = xs[:n, c].mean()  # over reference rows and H, W
        ref_sq = (xs[:n, c] ** 2).mean()
        ref_out = (xs[:n, c] - ref_mean) / np.sqrt(ref_sq - ref_mean**2 + 1e-5) * g[c] + b[c]
        np.testing.assert_allclose(out[:n, c], ref_out, atol=1e-10)
        for r in range(n, n + 2):
            own_mean, own_sq = xs[r, c].mean(), (xs[r, c] ** 2).mean()
            mean = own_mean / (n + 1) + n / (n + 1) * ref_mean
            sq = own_sq / (n + 1) + n / (n + 1) * ref_sq
            expected = (xs[r, c] - mean) / np.sqrt(sq - mean**2 + 1e-5) * g[c] + b[c]
            np.testing.assert_allclose(out[r, c], expected, atol=1e-10)


@pytest.mark.parametrize("shape", [(5,), (3, 4, 4)])
def test_vbn_example_ignores_other_examples_and_order(shape):
    n = 4
    layer = vbn_layer(shape[0], n)
    ref = torch.randn(n, *shape, dtype=torch.float64)
    batch = torch.randn(6, *shape, dtype=torch.float64)
    out = layer(torch.cat([ref, batch]))[n:]
    others = torch.randn(6, *shape, dtype=torch.float64) * 5 + 3
    others[2] = batch[2]
    assert torch.allclose(layer(torch.cat([ref, others]))[n + 2], out[2], atol=1e-12)
    alone = layer(torch.cat([ref, batch[2:3]]))[n]
    assert torch.allclose(alone, out[2], atol=1e-12)
    perm = torch.randperm(6)
    assert torch.allclose(layer(torch.cat([ref, batch[perm]]))[n:], out[perm], atol=1e-12)


def test_vbn_rejects_input_without_batch_rows():
    layer = VirtualBatchNorm(3, 4)
    with pytest.raises(ValueError, match="reference batch"):
        layer(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        layer(torch.randn(6, 3, 2))


def test_convert_batchnorm_copies_parameters():
    net = nn.Sequential(
        nn.Linear(3, 4),
        nn.BatchNorm1d(4, eps=1e-3),
        nn.Sequential(nn.Conv2d(1, 2, 1)),
        nn.Sequential(nn.BatchNorm2d(2)),
    )
    with torch.no_grad():
        net[1].weight.fill_(2.0)
        net[1].bias.fill_(-1.0)
    assert convert_batchnorm_to_vbn(net, 5) == 2
    assert isinstance(net[1], VirtualBatchNorm) and isinstance(net[3][0], VirtualBatchNorm)
    assert net[1].eps == 1e-3 and net[1].reference_size == 5 and net[3][0].num_features == 2
    assert torch.equal(net[1].weight, torch.full((4,), 2.0))
    assert torch.equal(net[1].bias, torch.full((4,), -1.0))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


GENERATORS = {
    "mlp": ({"name": "mlp", "latent_dim": 4, "hidden": 16, "depth": 2}, (2,)),
    "dcgan": ({"name": "dcgan", "latent_dim": 4, "base_channels": 8}, (1, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_virtual_batch_generator_samples_are_independent(name):
    options, shape = GENERATORS[name]
    inner = build_generator(options, shape)
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in inner.modules())
    g = VirtualBatchGenerator(inner, torch.randn(8, 4)).train()
    assert sum(isinstance(m, VirtualBatchNorm) for m in g.modules()) == n_bn > 0
    assert g.out_shape == shape and g.latent_dim == 4
    z = torch.randn(6, 4)
    x = g(z)
    assert x.shape == (6, *shape)
    other = torch.randn(6, 4)
    other[3] = z[3]
    assert torch.allclose(g(other)[3], x[3], atol=1e-5)
    assert torch.allclose(g(z[3:4])[0], x[3], atol=1e-5)
    perm = torch.randperm(6)
    assert torch.allclose(g(z[perm]), x[perm], atol=1e-5)
    # plain batch norm in train mode, for contrast, couples the samples
    plain = build_generator(options, shape).train()
    assert not torch.allclose(plain(other)[3], plain(z)[3], atol=1e-5)

    state = g.state_dict()
    assert "reference_z" in state and torch.equal(state["reference_z"], g.reference_z)
    z.requires_grad_(True)
    g(z).square().sum().backward()
    assert z.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())


def test_virtual_batch_generator_needs_batchnorm():
    inner = build_generator(
        {"name": "mlp", "latent_dim": 4, "hidden": 16, "depth": 2, "batch_norm": False}, (2,)
    )
    with pytest.raises(ValueError, match="generator.batch_norm: true"):
        VirtualBatchGenerator(inner, torch.randn(8, 4))


def test_vbn_on_a_conditional_generator_keeps_each_sample_independent_of_its_batch():
    """A class-conditional G under VBN: a sample depends on its own z and label only (not on
    the rest of its batch), and on its label."""
    torch.manual_seed(0)
    base = build_generator({"name": "mlp", "latent_dim": 4 + 3, "hidden": 16, "depth": 2,
                            "batch_norm": True}, (2,))  # fmt: skip
    G = VirtualBatchGenerator(ConditionalGenerator(base, 5, 3), torch.randn(8, 4)).eval()
    G.train()  # batch statistics in use: the reference batch and each sample only
    z = torch.randn(6, 4)
    labels = torch.tensor([3, 0, 1, 4, 2, 3])
    batch = G(z, labels)
    alone = torch.cat([G(z[i : i + 1], labels[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(batch, alone)
    assert not torch.allclose(G(z[:1], 3), G(z[:1], 1))
    # labels default to i mod K, as the conditional G's own
    torch.testing.assert_close(G(z), G(z, torch.arange(6) % 5))
