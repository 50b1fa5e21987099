"""DCGAN and MLP models: shapes, structure, init, and Maxout against a naive loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.models import build_discriminator, build_generator
from gankit.models.layers import Maxout

SIZES = [8, 16, 28, 32, 64]  # 128 and 256 px: tests/models/test_dcgan_sizes.py (small widths)
# stride-2 stages from the smallest map (4x4, 7x7 for 28 px) up to the image, by hand
STAGES = {8: 1, 16: 2, 28: 2, 32: 3, 64: 4}
START = {8: 4, 16: 4, 28: 7, 32: 4, 64: 4}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def count(module: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


# ----------------------------------------------------------------------------- DCGAN shapes


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    shape = (channels, size, size)
    G = build_generator({"name": "dcgan", "latent_dim": 16}, shape)
    D = build_discriminator({"name": "dcgan"}, shape)
    with torch.no_grad():
        x = G(torch.randn(2, 16))
        scores = D(x)
        h = D.features(x)
    assert x.shape == (2, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert scores.shape == (2,)
    # 64 * 2^(stages-1) channels at the smallest map, by hand
    width = 64 * 2 ** (STAGES[size] - 1)
    assert h.shape == (2, width * START[size] ** 2)
    with torch.no_grad():
        assert torch.equal(D.head(h), scores)
    assert count(G, nn.ConvTranspose2d) == STAGES[size]
    assert count(D, nn.Conv2d) == STAGES[size]
    (unflatten,) = [m for m in G.modules() if isinstance(m, nn.Unflatten)]
    assert tuple(unflatten.unflattened_size) == (width, START[size], START[size])


def test_generator_output_in_range_for_large_latents():
    G = build_generator({"name": "dcgan", "latent_dim": 16, "init": "default"}, (3, 16, 16))
    x = G(torch.randn(8, 16) * 100)
    assert torch.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1
    assert isinstance(list(G.modules())[-1], nn.Tanh)


@pytest.mark.parametrize("bad", [(1, 20, 20), (3, 12, 12), (1, 512, 512), (3, 4, 4)])
def test_unsupported_size_names_supported_sizes(bad):
    for build in (
        lambda: build_generator({"name": "dcgan", "latent_dim": 16}, bad),
        lambda: build_discriminator({"name": "dcgan"}, bad),
    ):
        with pytest.raises(ConfigError) as err:
            build()
        msg = str(err.value)
        assert f"{bad[1]}x{bad[1]}" in msg
        assert "8, 16, 28, 32, 64, 128, 256 px" in msg


def test_non_square_or_flat_data_rejected():
    with pytest.raises(ConfigError):
        build_discriminator({"name": "dcgan"}, (1, 16, 8))
    with pytest.raises(ConfigError):
        build_generator({"name": "dcgan", "latent_dim": 4}, (2,))


# ----------------------------------------------------------------------------- DCGAN norms


def test_discriminator_batch_norm():
    D = build_discriminator({"name": "dcgan"}, (3, 32, 32))  # 3 convs
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert count(D, nn.BatchNorm2d) == 2  # not after the first conv
    assert count(D, nn.GroupNorm) == 0
    assert convs[0].bias is not None
    assert all(c.bias is None for c in convs[1:])  # BN's shift makes the bias redundant
    body = list(D.body)
    assert isinstance(body[0], nn.Conv2d) and isinstance(body[1], nn.LeakyReLU)
    assert body[1].negative_slope == pytest.approx(0.2)
    assert [m.num_features for m in D.modules() if isinstance(m, nn.BatchNorm2d)] == [128, 256]


def test_discriminator_layer_norm():
    D = build_discriminator({"name": "dcgan", "norm": "layer"}, (1, 32, 32))
    norms = [m for m in D.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2
    assert all(n.num_groups == 1 for n in norms)
    assert [n.num_channels for n in norms] == [128, 256]
    assert count(D, nn.modules.batchnorm._BatchNorm) == 0
    # per-sample: a sample's score does not depend on the rest of the batch
    x = torch.randn(4, 1, 32, 32)
    assert torch.allclose(D(x)[:1], D(x[:1]), atol=1e-6)


def test_group_norm_one_group_is_layer_norm_by_hand():
    D = build_discriminator({"name": "dcgan", "norm": "layer"}, (1, 16, 16))
    (gn,) = [m for m in D.modules() if isinstance(m, nn.GroupNorm)]
    with torch.no_grad():
        gn.weight.fill_(1.0)
        gn.bias.fill_(0.0)
    h = torch.randn(2, gn.num_channels, 3, 3)
    out = gn(h)
    for i in range(2):
        vals = h[i].flatten().tolist()
        mu = sum(vals) / len(vals)
        var = sum((v - mu) ** 2 for v in vals) / len(vals)
        want = [(v - mu) / math.sqrt(var + gn.eps) for v in vals]
        assert out[i].flatten().tolist() == pytest.approx(want, abs=1e-5)


def test_discriminator_no_norm():
    D = build_discriminator({"name": "dcgan", "norm": "none"}, (1, 64, 64))
    assert count(D, nn.modules.batchnorm._BatchNorm) == 0
    assert count(D, nn.GroupNorm) == 0
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.bias is not None for c in convs)


def test_generator_norms():
    G = build_generator({"name": "dcgan", "latent_dim": 8}, (1, 32, 32))
    assert count(G, nn.BatchNorm2d) == 3  # after the projection and each hidden ConvT
    assert G.project.bias is None
    G0 = build_generator({"name": "dcgan", "latent_dim": 8, "norm": "none"}, (1, 32, 32))
    assert count(G0, nn.modules.batchnorm._BatchNorm) == 0
    assert G0.project.bias is not None
    with pytest.raises(ConfigError):
        build_generator({"name": "dcgan", "latent_dim": 8, "norm": "layer"}, (1, 32, 32))
    with pytest.raises(ConfigError):
        build_discriminator({"name": "dcgan", "norm": "instance"}, (1, 32, 32))


# ----------------------------------------------------------------------------- DCGAN init


def _std(t: torch.Tensor) -> tuple[float, float]:
    vals = t.detach().flatten().tolist()
    mu = sum(vals) / len(vals)
    return mu, math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))


def test_dcgan_init_std():
    G = build_generator({"name": "dcgan", "latent_dim": 16}, (3, 64, 64))
    mu, sd = _std(G.project.weight)  # 8192 x 16 weights
    assert G.project.weight.numel() == 8192 * 16
    assert abs(mu) < 1e-3
    assert sd == pytest.approx(0.02, rel=0.03)
    D = build_discriminator({"name": "dcgan"}, (3, 64, 64))
    big = max((m for m in D.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())
    assert big.weight.numel() == 512 * 256 * 16
    w = big.weight.detach()
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    for bn in (m for m in D.modules() if isinstance(m, nn.BatchNorm2d)):
        assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
        assert bn.weight.std().item() < 0.04
        assert torch.all(bn.bias == 0)
    assert torch.all(D.out.bias == 0)


def test_default_init_differs():
    G = build_generator({"name": "dcgan", "latent_dim": 16, "init": "default"}, (3, 64, 64))
    # PyTorch's default Linear init is U(-1/sqrt(16), 1/sqrt(16)): std 0.25/sqrt(3) ~ 0.144
    assert G.project.weight.std().item() == pytest.approx(0.25 / math.sqrt(3), rel=0.05)


# ----------------------------------------------------------------------------- Maxout


def test_maxout_against_naive_loop():
    m = Maxout(3, 4, 5)
    x = torch.randn(6, 3)
    out = m(x)
    assert out.shape == (6, 4)
    W = m.linear.weight.tolist()  # (4 * 5, 3)
    b = m.linear.bias.tolist()
    xs = x.tolist()
    for n in range(6):
        for j in range(4):
            pieces = []
            for k in range(5):
                row = j * 5 + k  # unit j owns rows j*pieces .. j*pieces + pieces - 1
                pieces.append(sum(xs[n][i] * W[row][i] for i in range(3)) + b[row])
            assert out[n, j].item() == pytest.approx(max(pieces), abs=1e-5)


def test_maxout_gradient_goes_to_winning_piece_only():
    m = Maxout(2, 1, 3)
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        m.linear.bias.zero_()
    x = torch.tensor([[2.0, 0.5]])  # pieces: 2, 0.5, -2.5 -> the first wins
    y = m(x)
    assert y.item() == 2.0
    y.sum().backward()
    assert m.linear.weight.grad.tolist() == [[2.0, 0.5], [0.0, 0.0], [0.0, 0.0]]
    assert m.linear.bias.grad.tolist() == [1.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- MLP defaults


def test_mlp_generator_defaults():
    G = build_generator({"name": "mlp", "latent_dim": 2}, (2,))
    body = list(G.body)
    assert [type(m) for m in body] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 4
    linears = [m for m in body if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(400, 2)] + [(400, 400)] * 3
    assert all(m.num_features == 400 for m in body if isinstance(m, nn.BatchNorm1d))
    assert tuple(G.out.weight.shape) == (2, 400)
    assert isinstance(G.out_act, nn.Identity)  # vectors: no squashing
    n_params = (2 * 400 + 400) + 3 * (400 * 400 + 400) + 4 * (2 * 400) + (400 * 2 + 2)
    assert sum(p.numel() for p in G.parameters()) == n_params
    assert G(torch.randn(5, 2)).shape == (5, 2)


def test_mlp_generator_images_use_tanh():
    G = build_generator({"name": "mlp", "latent_dim": 4}, (1, 8, 8))
    assert isinstance(G.out_act, nn.Tanh)
    x = G(torch.randn(3, 4) * 50)
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1


def test_mlp_discriminator_defaults():
    D = build_discriminator({"name": "mlp"}, (2,))
    body = list(D.body)
    assert [type(m) for m in body] == [Maxout] * 3
    assert all(m.out_features == 200 and m.pieces == 5 for m in body)
    assert [tuple(m.linear.weight.shape) for m in body] == [(1000, 2), (1000, 200), (1000, 200)]
    assert count(D, nn.modules.batchnorm._BatchNorm) == 0
    assert count(D, nn.Dropout) == 0
    assert count(D, nn.ReLU) == 0
    assert tuple(D.out.weight.shape) == (1, 200)
    n_params = (1000 * 2 + 1000) + 2 * (1000 * 200 + 1000) + (200 + 1)
    assert sum(p.numel() for p in D.parameters()) == n_params
    x = torch.randn(5, 2)
    assert D(x).shape == (5,)
    assert D.features(x).shape == (5, 200)


def test_mlp_options_and_errors():
    D = build_discriminator(
        {"name": "mlp", "activation": "leaky_relu", "hidden": 8, "depth": 2, "dropout": 0.5}, (3,)
    )
    assert [type(m) for m in D.body] == [nn.Linear, nn.LeakyReLU] * 2 + [nn.Dropout]
    with pytest.raises(ConfigError):
        build_discriminator({"name": "mlp", "maxout_pieces": 1}, (2,))
    with pytest.raises(ConfigError):
        build_discriminator({"name": "mlp", "dropout": 1.0}, (2,))
    with pytest.raises(ConfigError):
        build_discriminator({"name": "mlp", "activation": "swish"}, (2,))
    with pytest.raises(ConfigError):
        build_generator({"name": "mlp", "latent_dim": 2, "depth": 0}, (2,))
    with pytest.raises(ConfigError) as err:
        build_discriminator({"name": "resnet"}, (2,))
    assert "dcgan" in str(err.value) and "mlp" in str(err.value)


def test_mlp_normal_init_matches_pacgan_code():
    # the PacGAN 2D code: every weight N(0, 0.02), biases 0; BN scales stay 1
    G = build_generator({"name": "mlp", "latent_dim": 2, "init": "normal"}, (2,))
    D = build_discriminator({"name": "mlp", "init": "normal", "init_std": 0.05}, (2,))
    big = [m for m in G.body if isinstance(m, nn.Linear)][1]  # 400 x 400 weights
    mu, sd = _std(big.weight)
    assert abs(mu) < 1e-3 and sd == pytest.approx(0.02, rel=0.02)
    mu, sd = _std(D.body[1].linear.weight)  # 1000 x 200
    assert abs(mu) < 2e-3 and sd == pytest.approx(0.05, rel=0.02)
    biases = [m.bias for m in [*G.modules(), *D.modules()] if isinstance(m, nn.Linear)]
    assert len(biases) == 5 + 4 and all(torch.all(b == 0) for b in biases)
    assert all(torch.all(m.weight == 1) for m in G.body if isinstance(m, nn.BatchNorm1d))


def test_mlp_default_init_is_pytorchs():
    G = build_generator({"name": "mlp", "latent_dim": 2}, (2,))
    big = [m for m in G.body if isinstance(m, nn.Linear)][1]
    # PyTorch's Linear init is U(-1/sqrt(400), 1/sqrt(400)): std (1/20)/sqrt(3)
    assert big.weight.std().item() == pytest.approx(0.05 / math.sqrt(3), rel=0.02)
    assert big.bias.abs().max().item() > 0


@pytest.mark.parametrize(
    "options, message",
    [({"init": "xavier"}, "init"), ({"init": "normal", "init_std": 0.0}, "init_std")],
)
def test_mlp_init_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        build_discriminator({"name": "mlp", **options}, (2,))
