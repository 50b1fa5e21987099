"""DRAGAN, R1/R2 and the pull-away term against naive per-sample and pair loops, closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from test_gradient_penalty import LinearCritic, Recorder  # the same test critics

from gankit.errors import ConfigError
from gankit.models import build_discriminator, build_generator
from gankit.regularizers import REGULARIZERS, RegularizerContext, build_regularizer
from gankit.regularizers.dragan import DRAGAN, dragan_penalty
from gankit.regularizers.pull_away import PullAway, pull_away
from gankit.regularizers.r1 import R1, R2, r1_penalty


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def py_norm(g: torch.Tensor) -> float:
    return math.sqrt(sum(v * v for v in g.flatten().tolist()))


def input_grad(D, x_i: torch.Tensor) -> torch.Tensor:
    """grad of D at one sample x_i (no batch dim), by autograd on a batch of one."""
    x = x_i.detach().unsqueeze(0).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return g


def python_std(x: torch.Tensor) -> float:
    """Population std (ddof=0) over every element, as numpy's ndarray.std() in the reference."""
    vals = x.flatten().tolist()
    mean = sum(vals) / len(vals)
    return math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))


def dragan_draws(seed: int, real: torch.Tensor):
    """The draws dragan_penalty makes, in its order: noise like real, then alpha (N, 1, ..., 1)."""
    g = seeded(seed)
    noise = torch.rand(real.shape, dtype=real.dtype, generator=g)
    alpha = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype, generator=g)
    return noise, alpha


def naive_dragan(D, real, seed, scale=0.5, center=1.0) -> float:
    noise, alpha = dragan_draws(seed, real)
    std = python_std(real)
    total = 0.0
    n = real.shape[0]
    for i in range(n):
        a = alpha[i].item()
        x_p = real[i] + scale * std * noise[i]
        x_hat = real[i] + a * (x_p - real[i])
        total += (py_norm(input_grad(D, x_hat)) - center) ** 2
    return total / n


def naive_r1(D, x) -> float:
    n = x.shape[0]
    return 0.5 * sum(py_norm(input_grad(D, x[i])) ** 2 for i in range(n)) / n


def naive_pull_away(s: torch.Tensor) -> float:
    rows = [r.flatten().tolist() for r in s]
    n = len(rows)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            dot = sum(a * b for a, b in zip(rows[i], rows[j]))
            ni = math.sqrt(sum(a * a for a in rows[i]))
            nj = math.sqrt(sum(b * b for b in rows[j]))
            total += (dot / (ni * nj)) ** 2
    return total / (n * (n - 1))


def strong_weights(D, std=0.3):
    """Larger weights than the default init so that gradient norms are O(1), not ~0."""
    with torch.no_grad():
        for p in D.parameters():
            if p.ndim > 1:
                p.normal_(0, std)
    return D


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- DRAGAN


@pytest.mark.parametrize("center", [1.0, 0.0])
def test_dragan_dcgan_layer_norm_critic_matches_naive_loop(center):
    D = strong_weights(
        build_discriminator({"name": "dcgan", "norm": "layer", "base_channels": 8}, (1, 8, 8))
    )
    real = torch.rand(3, 1, 8, 8) * 2 - 1
    got = dragan_penalty(D, real, 0.5, center, seeded(123)).item()
    want = naive_dragan(D, real, 123, 0.5, center)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("scale", [0.5, 2.0, 0.0])
def test_dragan_mlp_tanh_critic_matches_naive_loop(scale):
    D = build_discriminator({"name": "mlp", "activation": "tanh"}, (2,))
    real = torch.randn(7, 2) * 3
    got = dragan_penalty(D, real, scale, 1.0, seeded(7)).item()
    want = naive_dragan(D, real, 7, scale, 1.0)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_dragan_float64_matches_naive_loop_tightly():
    D = build_discriminator({"name": "mlp", "activation": "tanh", "hidden": 16}, (3,)).double()
    real = torch.randn(6, 3, dtype=torch.float64)
    got = dragan_penalty(D, real, 0.5, 1.0, seeded(99)).item()
    assert got == pytest.approx(naive_dragan(D, real, 99), rel=1e-12)


def test_dragan_perturbs_with_batch_std_and_one_alpha_per_sample():
    D = Recorder(build_discriminator({"name": "mlp", "activation": "tanh"}, (1, 2, 2)))
    real = torch.randn(4, 1, 2, 2, dtype=torch.float64) * 2 + 1
    D.double()
    dragan_penalty(D, real, 0.5, 1.0, seeded(5))
    (x_hat,) = D.seen
    noise, alpha = dragan_draws(5, real)
    assert alpha.shape == (4, 1, 1, 1)
    std = python_std(real)
    # population std over the whole batch, not the unbiased one, nor per sample / per feature
    assert std != pytest.approx(real.std().item(), rel=1e-3)
    for i in range(4):
        a = alpha[i].item()
        assert 0.0 <= a < 1.0
        for j in range(4):
            r = real[i].flatten()[j].item()
            u = noise[i].flatten()[j].item()
            assert 0.0 <= u < 1.0
            want = r + a * (0.5 * std * u)  # x + alpha * (x_p - x), x_p = x + c std U
            assert x_hat[i].flatten()[j].item() == pytest.approx(want, rel=1e-12, abs=1e-12)
            assert x_hat[i].flatten()[j].item() >= r  # uniform noise only moves upwards
    assert len({round(a, 6) for a in alpha.flatten().tolist()}) == 4  # not one alpha for all


def test_dragan_zero_scale_is_zero_centred_at_the_data():
    D = Recorder(build_discriminator({"name": "mlp", "activation": "tanh"}, (2,)))
    real = torch.randn(5, 2)
    dragan_penalty(D, real, 0.0, 1.0, seeded(1))
    assert torch.equal(D.seen[0], real)


@pytest.mark.parametrize(
    "w,center",
    [([3.0, 4.0], 1.0), ([0.6, 0.8], 1.0), ([1.0, 2.0, 2.0, 0.0], 1.0), ([3.0, 4.0], 0.0)],
)
def test_dragan_linear_critic_closed_form(w, center):
    D = LinearCritic(w)
    shape = (2,) if len(w) == 2 else (1, 2, 2)
    real = torch.randn(5, *shape, dtype=torch.float64)
    norm = math.sqrt(sum(x * x for x in w))
    got = dragan_penalty(D, real, center=center).item()
    assert got == pytest.approx((norm - center) ** 2, rel=1e-12, abs=1e-12)


def test_dragan_is_differentiable_in_critic_parameters_not_in_real():
    D = LinearCritic([3.0, 4.0])
    real = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    pen = dragan_penalty(D, real)
    assert torch.autograd.grad(pen, real, retain_graph=True, allow_unused=True) == (None,)
    pen.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * w / 5
    assert D.w.grad.tolist() == pytest.approx([8 * 3 / 5, 8 * 4 / 5], rel=1e-12)


# ----------------------------------------------------------------------------- R1 / R2


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 16, 16)])
def test_r1_dcgan_layer_norm_critic_matches_naive_loop(shape):
    D = strong_weights(
        build_discriminator({"name": "dcgan", "norm": "layer", "base_channels": 8}, shape)
    )
    x = torch.rand(3, *shape) * 2 - 1
    assert r1_penalty(D, x).item() == pytest.approx(naive_r1(D, x), rel=1e-5, abs=1e-7)


def test_r1_mlp_critics_match_naive_loop():
    for activation in ("tanh", "maxout", "leaky_relu"):
        D = build_discriminator({"name": "mlp", "activation": activation}, (2,)).double()
        x = torch.randn(7, 2, dtype=torch.float64) * 2
        assert r1_penalty(D, x).item() == pytest.approx(naive_r1(D, x), rel=1e-12), activation


@pytest.mark.parametrize("w", [[3.0, 4.0], [0.6, 0.8], [1.0, 2.0, 2.0, 0.0]])
def test_r1_linear_critic_closed_form(w):
    D = LinearCritic(w)
    shape = (2,) if len(w) == 2 else (1, 2, 2)
    x = torch.randn(5, *shape, dtype=torch.float64)
    want = 0.5 * sum(v * v for v in w)
    assert r1_penalty(D, x).item() == pytest.approx(want, rel=1e-12)
    pen = r1_penalty(D, x)
    pen.backward()
    assert D.w.grad.tolist() == pytest.approx(w, rel=1e-12)  # d/dw 0.5 ||w||^2 = w


def test_r1_does_not_flow_into_its_input():
    D = build_discriminator({"name": "mlp", "activation": "tanh"}, (2,))
    x = torch.randn(3, 2, requires_grad=True)
    assert torch.autograd.grad(r1_penalty(D, x), x, allow_unused=True) == (None,)


def test_r1_uses_real_and_r2_uses_fake():
    D = build_discriminator({"name": "mlp", "activation": "tanh"}, (2,)).double()
    ctx = ctx_for(D)
    r1 = build_regularizer({"name": "r1", "weight": 1}, "regularizers[0]")
    r2 = build_regularizer({"name": "r2", "weight": 1}, "regularizers[0]")
    assert isinstance(r1, R1) and isinstance(r2, R2)
    assert r1(ctx).item() == pytest.approx(naive_r1(D, ctx.real), rel=1e-12)
    assert r2(ctx).item() == pytest.approx(naive_r1(D, ctx.fake), rel=1e-12)
    assert r1(ctx).item() != pytest.approx(r2(ctx).item(), rel=1e-6)


# ----------------------------------------------------------------------------- pull-away


def test_pull_away_matches_double_loop():
    s = torch.randn(6, 5, dtype=torch.float64)
    assert pull_away(s).item() == pytest.approx(naive_pull_away(s), rel=1e-12)
    s = torch.randn(4, 2, 3, 3)  # rows flattened
    assert pull_away(s).item() == pytest.approx(naive_pull_away(s), rel=1e-5)


def test_pull_away_hand_cases():
    eye = torch.eye(4, dtype=torch.float64)
    assert pull_away(eye).item() == 0.0  # orthogonal
    same = torch.tensor([[1.0, 2.0, 3.0]] * 5, dtype=torch.float64)
    assert pull_away(same).item() == pytest.approx(1.0, rel=1e-12)  # identical
    scaled = torch.tensor([[1.0, 2.0], [-3.0, -6.0]], dtype=torch.float64)
    assert pull_away(scaled).item() == pytest.approx(1.0, rel=1e-12)  # cos -1, squared
    # 45 degrees: cos^2 = 1/2; pairs (0,1), (1,0) of the 2 ordered pairs
    two = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    assert pull_away(two).item() == pytest.approx(0.5, rel=1e-12)
    # three vectors: cos^2 = 1/2 (0,1), 0 (0,2), 1/2 (1,2) -> 2 * 1 / 6
    three = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    assert pull_away(three).item() == pytest.approx(1 / 3, rel=1e-12)


def test_pull_away_zero_rows_stay_finite():
    s = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], requires_grad=True)
    val = pull_away(s)
    # the zero row has cosine 0 with everything: only the pair (1, 2) counts, twice -> 2 / 6
    assert val.item() == pytest.approx(1 / 3, rel=1e-6)
    (g,) = torch.autograd.grad(val, s)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("n", [0, 1])
def test_pull_away_needs_two_samples(n):
    with pytest.raises(ValueError, match="at least 2"):
        pull_away(torch.randn(n, 3))


def test_pull_away_regularizer_on_samples_and_on_discriminator_features():
    D = build_discriminator({"name": "mlp", "activation": "tanh", "hidden": 8}, (2,)).double()
    ctx = ctx_for(D)
    on_samples = build_regularizer(
        {"name": "pull_away", "features": "samples", "weight": 1}, "regularizers[0]"
    )
    on_d = build_regularizer({"name": "pull_away", "weight": 1}, "regularizers[0]")
    assert isinstance(on_d, PullAway) and on_d.features == "discriminator"
    assert on_samples(ctx).item() == pytest.approx(naive_pull_away(ctx.fake), rel=1e-12)
    feats = D.features(ctx.fake)
    assert feats.shape == (4, 8)
    assert on_d(ctx).item() == pytest.approx(naive_pull_away(feats), rel=1e-12)


def test_pull_away_flattens_dcgan_features():
    D = build_discriminator({"name": "dcgan", "norm": "layer", "base_channels": 4}, (1, 16, 16))
    fake = torch.rand(3, 1, 16, 16) * 2 - 1
    ctx = RegularizerContext(discriminator=D, real=fake, fake=fake, step=0)
    reg = build_regularizer({"name": "pull_away", "weight": 1}, "regularizers[0]")
    assert reg(ctx).item() == pytest.approx(naive_pull_away(D.features(fake)), rel=1e-5)


@pytest.mark.parametrize("features", ["discriminator", "samples"])
def test_pull_away_gradient_reaches_the_generator(features):
    G = build_generator({"name": "mlp", "latent_dim": 2, "hidden": 16, "batch_norm": False}, (2,))
    D = build_discriminator({"name": "mlp", "activation": "tanh", "hidden": 8}, (2,))
    D.requires_grad_(False)  # as in the generator step
    fake = G(torch.randn(5, 2))
    ctx = RegularizerContext(discriminator=D, real=torch.randn(5, 2), fake=fake, step=0)
    reg = build_regularizer({"name": "pull_away", "features": features}, "regularizers[0]")
    loss = reg(ctx)
    assert loss.requires_grad
    loss.backward()
    for name, p in G.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert sum(p.grad.abs().sum().item() for p in G.parameters()) > 0
    assert all(p.grad is None for p in D.parameters())


# ----------------------------------------------------------------------------- regularizers


def ctx_for(D, d=2, step=0):
    return RegularizerContext(
        discriminator=D,
        real=torch.randn(4, d, dtype=torch.float64),
        fake=torch.randn(4, d, dtype=torch.float64) * 3 + 1,
        step=step,
    )


def test_registered_names_and_players():
    assert {"dragan", "r1", "r2", "pull_away", "gradient_penalty"} <= set(REGULARIZERS.names())
    players = {
        name: build_regularizer({"name": name}, "regularizers[0]").player
        for name in ("dragan", "r1", "r2", "pull_away")
    }
    assert players == {"dragan": "d", "r1": "d", "r2": "d", "pull_away": "g"}


def test_defaults():
    where = "regularizers[0]"
    dragan = build_regularizer({"name": "dragan"}, where)
    assert isinstance(dragan, DRAGAN)
    assert (dragan.weight, dragan.interval, dragan.center, dragan.perturb_scale) == (
        10.0,
        1,
        1.0,
        0.5,
    )
    r1 = build_regularizer({"name": "r1"}, where)
    r2 = build_regularizer({"name": "r2"}, where)
    assert (r1.weight, r1.interval, r2.weight, r2.interval) == (10.0, 1, 10.0, 1)
    pa = build_regularizer({"name": "pull_away"}, where)
    assert (pa.weight, pa.interval, pa.features) == (0.1, 1, "discriminator")


@pytest.mark.parametrize(
    "options,penalty",
    [
        ({"name": "dragan"}, (5.0 - 1.0) ** 2),
        ({"name": "dragan", "center": 0}, 25.0),
        ({"name": "r1"}, 0.5 * 25.0),
        ({"name": "r2"}, 0.5 * 25.0),
    ],
)
@pytest.mark.parametrize("weight,interval", [(None, 1), (2, 1), (5, 4), (0.5, 16)])
def test_regularizer_scales_by_weight_times_interval(options, penalty, weight, interval):
    opts = {**options, "interval": interval}
    if weight is not None:
        opts["weight"] = weight
    reg = build_regularizer(opts, "regularizers[0]")
    w = 10.0 if weight is None else weight
    assert reg.interval == interval and reg.weight == w
    D = LinearCritic([3.0, 4.0])
    assert reg(ctx_for(D)).item() == pytest.approx(w * interval * penalty, rel=1e-12)
    assert [reg.active(s) for s in range(2 * interval + 1)] == [
        s % interval == 0 for s in range(2 * interval + 1)
    ]


def test_pull_away_scales_by_weight_times_interval():
    D = LinearCritic([3.0, 4.0])
    ctx = ctx_for(D)
    ctx.fake = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    for features in ("discriminator", "samples"):  # LinearCritic.features is the identity
        reg = build_regularizer(
            {"name": "pull_away", "features": features, "interval": 4}, "regularizers[0]"
        )
        assert reg(ctx).item() == pytest.approx(0.1 * 4 * (1 / 3), rel=1e-12)


def test_bad_options_raise_config_error():
    where = "regularizers[0]"
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "pull_away", "features": "encoder"}, where)
    assert "regularizers[0].features" in str(err.value) and "samples" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "dragan", "c": 0.5}, where)
    assert "perturb_scale" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "r1", "gamma": 10}, where)
    assert "regularizers[0].gamma" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_regularizer({"name": "r1", "interval": 0}, where)
    assert "regularizers[0].interval" in str(err.value)
