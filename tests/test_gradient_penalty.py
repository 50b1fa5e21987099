"""WGAN-GP gradient penalty against a naive per-sample loop and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.models import build_discriminator
from gankit.regularizers import RegularizerContext, build_regularizer
from gankit.regularizers.gradient_penalty import GradientPenalty, gradient_penalty


class LinearCritic(nn.Module):
    """D(x) = w . x (flattened): its input gradient is w everywhere; features(x) = x flattened."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return x.flatten(1) @ self.w


class Recorder(nn.Module):
    """Wraps a critic and keeps the inputs it was called with."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def naive_penalty(D, real, fake, eps, center=1.0) -> float:
    """One sample at a time: x_hat_i, grad of D(x_hat_i), its L2 norm by a Python sum."""
    total = 0.0
    n = real.shape[0]
    for i in range(n):
        e = eps[i].item()
        x_hat = (e * real[i] + (1 - e) * fake[i]).detach().unsqueeze(0).requires_grad_(True)
        out = D(x_hat)
        (g,) = torch.autograd.grad(out.sum(), x_hat)
        norm = math.sqrt(sum(v * v for v in g.flatten().tolist()))
        total += (norm - center) ** 2
    return total / n


def eps_for(seed: int, real: torch.Tensor) -> torch.Tensor:
    """The draw gradient_penalty makes: one U[0, 1) per sample, shape (N, 1, ..., 1)."""
    g = torch.Generator().manual_seed(seed)
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    return torch.rand(shape, dtype=real.dtype, generator=g)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- naive loop


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 16, 16)])
@pytest.mark.parametrize("center", [1.0, 0.0])
def test_dcgan_layer_norm_critic_matches_naive_loop(shape, center):
    D = build_discriminator({"name": "dcgan", "norm": "layer", "base_channels": 8}, shape)
    if shape[1] == 16:
        assert any(isinstance(m, nn.GroupNorm) for m in D.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    # larger weights than the DCGAN init so that gradient norms are O(1), not ~0
    with torch.no_grad():
        for p in D.parameters():
            if p.ndim > 1:
                p.normal_(0, 0.3)
    real = torch.rand(3, *shape) * 2 - 1
    fake = torch.rand(3, *shape) * 2 - 1
    got = gradient_penalty(D, real, fake, center, seeded(123)).item()
    want = naive_penalty(D, real, fake, eps_for(123, real), center)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("center", [1.0, 0.0, 0.5])
def test_mlp_tanh_critic_matches_naive_loop(center):
    D = build_discriminator({"name": "mlp", "activation": "tanh"}, (2,))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    real = torch.randn(7, 2)
    fake = torch.randn(7, 2) * 3
    got = gradient_penalty(D, real, fake, center, seeded(7)).item()
    want = naive_penalty(D, real, fake, eps_for(7, real), center)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_float64_matches_naive_loop_tightly():
    D = build_discriminator({"name": "mlp", "activation": "tanh", "hidden": 16}, (3,)).double()
    real = torch.randn(6, 3, dtype=torch.float64)
    fake = torch.randn(6, 3, dtype=torch.float64)
    got = gradient_penalty(D, real, fake, 1.0, seeded(99)).item()
    want = naive_penalty(D, real, fake, eps_for(99, real), 1.0)
    assert got == pytest.approx(want, rel=1e-12)


def test_interpolates_one_eps_per_sample_on_the_segment():
    D = Recorder(build_discriminator({"name": "mlp", "activation": "tanh"}, (1, 2, 2)))
    real = torch.randn(4, 1, 2, 2)
    fake = torch.randn(4, 1, 2, 2)
    gradient_penalty(D, real, fake, 1.0, seeded(5))
    (x_hat,) = D.seen
    eps = eps_for(5, real)
    assert eps.shape == (4, 1, 1, 1)
    for i in range(4):
        e = eps[i].item()
        assert 0.0 <= e < 1.0
        for j in range(4):
            r = real[i].flatten()[j].item()
            f = fake[i].flatten()[j].item()
            assert x_hat[i].flatten()[j].item() == pytest.approx(e * r + (1 - e) * f, abs=1e-6)
    assert len({round(e, 6) for e in eps.flatten().tolist()}) == 4  # not one eps for all


def test_penalty_does_not_flow_into_real_or_fake():
    D = build_discriminator({"name": "mlp", "activation": "tanh"}, (2,))
    real = torch.randn(3, 2, requires_grad=True)
    fake = torch.randn(3, 2, requires_grad=True)
    gp = gradient_penalty(D, real, fake)
    grads = torch.autograd.grad(gp, (real, fake), allow_unused=True)
    assert grads == (None, None)


# ----------------------------------------------------------------------------- closed form


@pytest.mark.parametrize(
    "w,center",
    [([3.0, 4.0], 1.0), ([0.6, 0.8], 1.0), ([1.0, 2.0, 2.0, 0.0], 1.0), ([3.0, 4.0], 0.0)],
)
def test_linear_critic_closed_form(w, center):
    D = LinearCritic(w)
    d = len(w)
    shape = (d,) if d == 2 else (1, 2, 2)
    real = torch.randn(5, *shape, dtype=torch.float64)
    fake = torch.randn(5, *shape, dtype=torch.float64)
    norm = math.sqrt(sum(x * x for x in w))
    gp = gradient_penalty(D, real, fake, center)
    assert gp.item() == pytest.approx((norm - center) ** 2, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    "w,center", [([3.0, 4.0], 1.0), ([1.0, 2.0, 2.0, 0.0], 1.0), ([3.0, 4.0], 0.0)]
)
def test_penalty_is_differentiable_in_critic_parameters(w, center):
    D = LinearCritic(w)
    d = len(w)
    real = torch.randn(4, d, dtype=torch.float64)
    fake = torch.randn(4, d, dtype=torch.float64)
    gp = gradient_penalty(D, real, fake, center)
    assert gp.requires_grad
    gp.backward()
    norm = math.sqrt(sum(x * x for x in w))
    # d/dw (||w|| - c)^2 = 2 (||w|| - c) w / ||w||
    want = [2 * (norm - center) * x / norm for x in w]
    assert D.w.grad.tolist() == pytest.approx(want, rel=1e-12)


def test_penalty_gradient_reaches_every_dcgan_critic_weight():
    D = build_discriminator({"name": "dcgan", "norm": "layer", "base_channels": 4}, (1, 16, 16))
    real = torch.rand(3, 1, 16, 16)
    fake = torch.rand(3, 1, 16, 16)
    gp = gradient_penalty(D, real, fake)
    gp.backward()
    for name, p in D.named_parameters():
        if name.endswith("weight") and p.ndim > 1:
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- regularizer


def ctx_for(D, d=2, step=0):
    return RegularizerContext(
        discriminator=D,
        real=torch.randn(4, d, dtype=torch.float64),
        fake=torch.randn(4, d, dtype=torch.float64),
        step=step,
    )


def test_regularizer_scales_by_weight_times_interval():
    reg = build_regularizer(
        {"name": "gradient_penalty", "weight": 5, "interval": 4}, "regularizers[0]"
    )
    assert isinstance(reg, GradientPenalty)
    assert reg.weight == 5.0 and reg.interval == 4 and reg.center == 1.0
    assert reg.player == "d"
    D = LinearCritic([3.0, 4.0])  # penalty (5 - 1)^2 = 16
    assert reg(ctx_for(D)).item() == pytest.approx(5 * 4 * 16.0, rel=1e-12)
    assert [reg.active(s) for s in range(9)] == [
        True, False, False, False, True, False, False, False, True,
    ]  # fmt: skip


def test_regularizer_defaults_and_center():
    reg = build_regularizer({"name": "gradient_penalty"}, "regularizers[0]")
    assert reg.weight == 10.0 and reg.interval == 1 and reg.center == 1.0
    D = LinearCritic([3.0, 4.0])
    assert reg(ctx_for(D)).item() == pytest.approx(10 * 16.0, rel=1e-12)
    assert all(reg.active(s) for s in range(5))
    zero = build_regularizer({"name": "gradient_penalty", "center": 0}, "regularizers[0]")
    assert zero(ctx_for(D)).item() == pytest.approx(10 * 25.0, rel=1e-12)


@pytest.mark.parametrize("interval", [0, -1, 1.5, True, "2"])
def test_bad_interval_raises_config_error(interval):
    with pytest.raises(ConfigError) as err:
        build_regularizer(
            {"name": "gradient_penalty", "weight": 5, "interval": interval}, "regularizers[0]"
        )
    assert "regularizers[0].interval" in str(err.value)


def test_bad_weight_and_unknown_option_raise_config_error():
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "gradient_penalty", "weight": "ten"}, "regularizers[0]")
    assert "weight" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "gradient_penalty", "lambda": 10}, "regularizers[0]")
    assert "center" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "gradient_pen"}, "regularizers[0]")
    assert "gradient_penalty" in str(err.value)
