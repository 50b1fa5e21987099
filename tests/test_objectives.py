"""GAN objectives checked against formulas written out by hand with Python floats."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.errors import ConfigError
from gankit.objectives import build_objective
from gankit.regularizers import build_regularizer
from gankit.regularizers.gradient_penalty import GradientPenalty

ALL_NAMES = ["minimax", "non_saturating", "wasserstein", "wgan_gp", "least_squares", "hinge"]

REAL = [1.5, -0.3, 0.2, 3.0]
FAKE = [-1.0, 0.4, 0.9, -0.5]


# ----------------------------------------------------------------------------- hand formulas


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def log_sigmoid(x: float) -> float:
    """log(1 / (1 + e^-x)), written so that it does not overflow at |x| = 100."""
    if x >= 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


def log_one_minus_sigmoid(x: float) -> float:
    """log(1 - sigmoid(x)) = log(sigmoid(-x))."""
    return log_sigmoid(-x)


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def hand_losses(name: str, r: list[float], f: list[float], a=0.0, b=1.0, c=1.0):
    """(d_loss, g_loss) for the named objective, from the papers' formulas."""
    if name == "minimax":
        d = -mean(log_sigmoid(x) for x in r) - mean(log_one_minus_sigmoid(x) for x in f)
        g = mean(log_one_minus_sigmoid(x) for x in f)
    elif name == "non_saturating":
        d = -mean(log_sigmoid(x) for x in r) - mean(log_one_minus_sigmoid(x) for x in f)
        g = -mean(log_sigmoid(x) for x in f)
    elif name in ("wasserstein", "wgan_gp"):
        d = mean(f) - mean(r)
        g = -mean(f)
    elif name == "least_squares":
        d = 0.5 * mean((x - b) ** 2 for x in r) + 0.5 * mean((x - a) ** 2 for x in f)
        g = 0.5 * mean((x - c) ** 2 for x in f)
    elif name == "hinge":
        d = mean(max(0.0, 1.0 - x) for x in r) + mean(max(0.0, 1.0 + x) for x in f)
        g = -mean(f)
    else:
        raise AssertionError(name)
    return d, g


def hand_grads(name: str, r: list[float], f: list[float], a=0.0, b=1.0, c=1.0):
    """(d d_loss/d d_real, d d_loss/d d_fake, d g_loss/d d_fake), element-wise, by hand."""
    n, m = len(r), len(f)
    if name in ("minimax", "non_saturating"):
        # d/dx [-log sigmoid(x)] = -(1 - sigmoid(x));  d/dx [-log(1 - sigmoid(x))] = sigmoid(x)
        dr = [-(1 - sigmoid(x)) / n for x in r]
        df = [sigmoid(x) / m for x in f]
        if name == "minimax":
            # d/dx log(1 - sigmoid(x)) = -sigmoid(x)
            gf = [-sigmoid(x) / m for x in f]
        else:
            # d/dx [-log sigmoid(x)] = -(1 - sigmoid(x))
            gf = [-(1 - sigmoid(x)) / m for x in f]
    elif name in ("wasserstein", "wgan_gp"):
        dr = [-1.0 / n] * n
        df = [1.0 / m] * m
        gf = [-1.0 / m] * m
    elif name == "least_squares":
        dr = [(x - b) / n for x in r]
        df = [(x - a) / m for x in f]
        gf = [(x - c) / m for x in f]
    elif name == "hinge":
        dr = [(-1.0 / n if x < 1 else 0.0) for x in r]
        df = [(1.0 / m if x > -1 else 0.0) for x in f]
        gf = [-1.0 / m] * m
    else:
        raise AssertionError(name)
    return dr, df, gf


def grads_of(obj, r: list[float], f: list[float], dtype=torch.float64):
    d_real = torch.tensor(r, dtype=dtype, requires_grad=True)
    d_fake = torch.tensor(f, dtype=dtype, requires_grad=True)
    d_loss = obj.d_loss(d_real, d_fake)
    dr, df = torch.autograd.grad(d_loss, (d_real, d_fake))
    d_fake_g = torch.tensor(f, dtype=dtype, requires_grad=True)
    (gf,) = torch.autograd.grad(obj.g_loss(d_fake_g), d_fake_g)
    return dr.tolist(), df.tolist(), gf.tolist()


def assert_close_list(got, want, rel=1e-9, abs_=1e-12):
    assert len(got) == len(want)
    for x, y in zip(got, want, strict=True):
        assert x == pytest.approx(y, rel=rel, abs=abs_), (got, want)


# ----------------------------------------------------------------------------- loss values

CASES = [
    ("minimax", {}),
    ("non_saturating", {}),
    ("wasserstein", {}),
    ("wgan_gp", {}),
    ("least_squares", {}),
    ("least_squares", {"a": -1.0, "b": 1.0, "c": 0.0}),
    ("least_squares", {"a": 0.25, "b": 2, "c": 3.5}),
    ("hinge", {}),
]


@pytest.mark.parametrize("name,opts", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_loss_values_match_hand_formulas(name, opts, dtype):
    obj = build_objective({"name": name, **opts})
    assert obj.name == name
    d_real = torch.tensor(REAL, dtype=dtype)
    d_fake = torch.tensor(FAKE, dtype=dtype)
    want_d, want_g = hand_losses(name, REAL, FAKE, **{k: float(v) for k, v in opts.items()})
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    d_loss, g_loss = obj(d_real, d_fake)
    assert d_loss.shape == () and g_loss.shape == ()
    assert d_loss.item() == pytest.approx(want_d, rel=tol, abs=tol)
    assert g_loss.item() == pytest.approx(want_g, rel=tol, abs=tol)
    assert obj.d_loss(d_real, d_fake).item() == pytest.approx(want_d, rel=tol, abs=tol)
    assert obj.g_loss(d_fake).item() == pytest.approx(want_g, rel=tol, abs=tol)


def test_minimax_values_written_out():
    """One case spelled out term by term, with no helper beyond math.exp / math.log."""
    r, f = [2.0, -1.0], [0.5, -3.0]
    s = [1 / (1 + math.exp(-x)) for x in r]
    t = [1 / (1 + math.exp(-x)) for x in f]
    want_d = -(math.log(s[0]) + math.log(s[1])) / 2 - (math.log(1 - t[0]) + math.log(1 - t[1])) / 2
    want_g_minimax = (math.log(1 - t[0]) + math.log(1 - t[1])) / 2
    want_g_ns = -(math.log(t[0]) + math.log(t[1])) / 2
    d_real = torch.tensor(r, dtype=torch.float64)
    d_fake = torch.tensor(f, dtype=torch.float64)
    mm = build_objective({"name": "minimax"})
    ns = build_objective({"name": "non_saturating"})
    assert mm.d_loss(d_real, d_fake).item() == pytest.approx(want_d, rel=1e-12)
    assert ns.d_loss(d_real, d_fake).item() == pytest.approx(want_d, rel=1e-12)
    assert mm.g_loss(d_fake).item() == pytest.approx(want_g_minimax, rel=1e-12)
    assert ns.g_loss(d_fake).item() == pytest.approx(want_g_ns, rel=1e-12)


def test_least_squares_custom_targets_written_out():
    obj = build_objective({"name": "least_squares", "a": -1, "b": 1, "c": 0})
    r, f = [0.5, 2.0], [-0.5, 1.0]
    want_d = 0.5 * ((0.5 - 1) ** 2 + (2.0 - 1) ** 2) / 2
    want_d += 0.5 * ((-0.5 + 1) ** 2 + (1.0 + 1) ** 2) / 2
    want_g = 0.5 * ((-0.5) ** 2 + 1.0**2) / 2
    d_loss, g_loss = obj(torch.tensor(r, dtype=torch.float64), torch.tensor(f, dtype=torch.float64))
    assert d_loss.item() == pytest.approx(want_d, rel=1e-12)
    assert g_loss.item() == pytest.approx(want_g, rel=1e-12)


def test_hinge_values_written_out():
    obj = build_objective({"name": "hinge"})
    r, f = [2.0, 0.5, -1.0], [-2.0, -0.5, 1.0]
    # relu(1 - r) = 0, 0.5, 2;  relu(1 + f) = 0, 0.5, 2
    want_d = (0 + 0.5 + 2) / 3 + (0 + 0.5 + 2) / 3
    want_g = -(-2.0 - 0.5 + 1.0) / 3
    d_loss, g_loss = obj(torch.tensor(r), torch.tensor(f))
    assert d_loss.item() == pytest.approx(want_d, rel=1e-6)
    assert g_loss.item() == pytest.approx(want_g, rel=1e-6)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name,opts", CASES)
def test_gradients_match_hand_derivatives(name, opts):
    obj = build_objective({"name": name, **opts})
    kw = {k: float(v) for k, v in opts.items()}
    got = grads_of(obj, REAL, FAKE)
    want = hand_grads(name, REAL, FAKE, **kw)
    for g, w in zip(got, want, strict=True):
        assert_close_list(g, w)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_generator_gradient_pushes_fake_scores_up(name):
    """Minimizing g_loss by gradient descent must increase D(G(z)): dg/d d_fake < 0.

    Fake scores below every objective's target (least squares c = 1) and above hinge's -1.
    """
    obj = build_objective({"name": name})
    fake = [-0.9, -0.2, 0.0, 0.7]
    _, _, gf = grads_of(obj, REAL, fake)
    assert all(g < 0 for g in gf), gf


@pytest.mark.parametrize("name", ALL_NAMES)
def test_discriminator_gradient_pushes_real_up_and_fake_down(name):
    """Real scores below every real target (b = 1, hinge margin 1); fakes above every fake
    target (least squares a = 0, hinge -1)."""
    obj = build_objective({"name": name})
    real = [-2.0, -0.1, 0.3, 0.9]
    fake = [0.1, 0.3, 0.5, 2.0]
    dr, df, _ = grads_of(obj, real, fake)
    assert all(g < 0 for g in dr), dr
    assert all(g > 0 for g in df), df


def test_hinge_gradient_is_zero_beyond_the_margin():
    obj = build_objective({"name": "hinge"})
    real = [1.5, 0.5, 3.0, -1.0]  # > 1, < 1, > 1, < 1
    fake = [-1.5, -0.5, -4.0, 0.2]  # < -1, > -1, < -1, > -1
    dr, df, gf = grads_of(obj, real, fake)
    assert dr == [0.0, -0.25, 0.0, -0.25]
    assert df == [0.0, 0.25, 0.0, 0.25]
    assert gf == [-0.25] * 4  # the generator's hinge loss never saturates


def test_least_squares_gradient_sign_depends_on_target():
    obj = build_objective({"name": "least_squares"})  # a=0, b=1, c=1
    dr, df, gf = grads_of(obj, [0.0, 2.0], [-1.0, 3.0])
    assert dr == pytest.approx([(0.0 - 1) / 2, (2.0 - 1) / 2])  # above b: pushed back down
    assert df == pytest.approx([(-1.0 - 0) / 2, (3.0 - 0) / 2])
    assert gf == pytest.approx([(-1.0 - 1) / 2, (3.0 - 1) / 2])


# ----------------------------------------------------------------------------- saturation


def test_minimax_saturates_and_non_saturating_does_not():
    """At D(G(z)) ~ 0 the minimax generator gradient is ~sigmoid(f) (tiny), the NS one ~1."""
    fake = [-8.0, -10.0, -12.0, -15.0]
    n = len(fake)
    mm = build_objective({"name": "minimax"})
    ns = build_objective({"name": "non_saturating"})
    _, _, g_mm = grads_of(mm, REAL, fake)
    _, _, g_ns = grads_of(ns, REAL, fake)
    assert_close_list(g_mm, [-sigmoid(x) / n for x in fake], rel=1e-9, abs_=0)
    assert_close_list(g_ns, [-(1 - sigmoid(x)) / n for x in fake], rel=1e-9, abs_=0)
    for a, b in zip(g_mm, g_ns, strict=True):
        assert abs(a) < 1e-3 / n
        assert abs(b) > 0.999 / n
        assert abs(b) / abs(a) > 1e3


def test_saturation_at_extreme_fake_score_float32():
    mm = build_objective({"name": "minimax"})
    ns = build_objective({"name": "non_saturating"})
    _, _, g_mm = grads_of(mm, [0.0], [-100.0, -100.0], dtype=torch.float32)
    _, _, g_ns = grads_of(ns, [0.0], [-100.0, -100.0], dtype=torch.float32)
    assert all(math.isfinite(g) and -1e-30 < g <= 0 for g in g_mm), g_mm
    assert g_ns == pytest.approx([-0.5, -0.5], rel=1e-6)


# ----------------------------------------------------------------------------- stability


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_scores_give_finite_losses_and_gradients(name, dtype):
    obj = build_objective({"name": name})
    scores = [100.0, -100.0, 100.0, -100.0]
    d_real = torch.tensor(scores, dtype=dtype, requires_grad=True)
    d_fake = torch.tensor(scores[::-1], dtype=dtype, requires_grad=True)
    d_loss, g_loss = obj(d_real, d_fake)
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    dr, df = torch.autograd.grad(d_loss, (d_real, d_fake))
    (gf,) = torch.autograd.grad(obj.g_loss(d_fake), d_fake)
    for g in (dr, df, gf):
        assert torch.isfinite(g).all() and not torch.isnan(g).any()
    want_d, want_g = hand_losses(name, scores, scores[::-1])
    assert d_loss.item() == pytest.approx(want_d, rel=1e-6, abs=1e-6)
    assert g_loss.item() == pytest.approx(want_g, rel=1e-6, abs=1e-6)


def test_bce_at_extreme_scores_by_hand():
    """r = [100, -100], f = [100, -100]: -log sigmoid(100) ~ 0, -log sigmoid(-100) ~ 100."""
    obj = build_objective({"name": "non_saturating"})
    d_loss, g_loss = obj(torch.tensor([100.0, -100.0]), torch.tensor([100.0, -100.0]))
    assert d_loss.item() == pytest.approx((0 + 100) / 2 + (100 + 0) / 2, rel=1e-6)
    assert g_loss.item() == pytest.approx((0 + 100) / 2, rel=1e-6)
    mm = build_objective({"name": "minimax"})
    assert mm.g_loss(torch.tensor([100.0, -100.0])).item() == pytest.approx(-50.0, rel=1e-6)


# ----------------------------------------------------------------------------- metadata


def test_wasserstein_defaults():
    obj = build_objective({"name": "wasserstein"})
    assert obj.weight_clip == 0.01
    assert obj.default_optimizer is not None
    assert obj.default_optimizer["name"] == "rmsprop"
    assert obj.default_optimizer["lr"] == pytest.approx(5e-5)
    assert obj.regularizers == ()
    assert obj.uses_labels is False


def test_wasserstein_clip_option():
    assert build_objective({"name": "wasserstein", "clip": 0.05}).weight_clip == 0.05
    assert build_objective({"name": "wasserstein", "clip": None}).weight_clip is None


def test_wgan_gp_implies_gradient_penalty_weight_10():
    obj = build_objective({"name": "wgan_gp"})
    assert obj.weight_clip is None
    assert len(obj.regularizers) == 1
    reg_opts = obj.regularizers[0]
    assert reg_opts["name"] == "gradient_penalty"
    assert reg_opts["weight"] == 10
    reg = build_regularizer(reg_opts, "objective.regularizers[0]")
    assert isinstance(reg, GradientPenalty)
    assert reg.weight == 10.0 and reg.interval == 1 and reg.center == 1.0
    assert obj.default_optimizer["name"] == "adam"
    assert obj.default_optimizer["lr"] == pytest.approx(1e-4)
    assert list(obj.default_optimizer["betas"]) == [0.0, 0.9]


def test_wgan_gp_custom_weight():
    obj = build_objective({"name": "wgan_gp", "gp_weight": 2})
    assert obj.regularizers[0]["weight"] == 2.0


@pytest.mark.parametrize(
    "name,labels",
    [
        ("minimax", True),
        ("non_saturating", True),
        ("least_squares", True),
        ("wasserstein", False),
        ("wgan_gp", False),
        ("hinge", False),
    ],
)
def test_uses_labels_and_no_clipping(name, labels):
    obj = build_objective({"name": name})
    assert obj.uses_labels is labels
    if name != "wasserstein":
        assert obj.weight_clip is None


# ----------------------------------------------------------------------------- errors


def test_unknown_objective_lists_choices():
    with pytest.raises(ConfigError) as err:
        build_objective({"name": "minmax"})
    msg = str(err.value)
    assert "minmax" in msg
    for name in ALL_NAMES:
        assert name in msg


def test_missing_objective_name_raises_config_error():
    with pytest.raises(ConfigError):
        build_objective({})


def test_unknown_option_for_hinge():
    with pytest.raises(ConfigError) as err:
        build_objective({"name": "hinge", "margin": 2})
    msg = str(err.value)
    assert "margin" in msg and "hinge" in msg
    assert "valid options" in msg  # hinge has none: the message says so


def test_unknown_option_lists_valid_options():
    with pytest.raises(ConfigError) as err:
        build_objective({"name": "least_squares", "d": 1})
    msg = str(err.value)
    assert "'d'" in msg or ".d" in msg
    for opt in ("a", "b", "c"):
        assert f" {opt}" in msg.split("valid options:")[1]
    with pytest.raises(ConfigError) as err:
        build_objective({"name": "wasserstein", "weight_clip": 0.1})
    assert "clip" in str(err.value).split("valid options:")[1]


def test_wrong_option_type_raises_config_error():
    with pytest.raises(ConfigError):
        build_objective({"name": "least_squares", "a": "zero"})
    with pytest.raises(ConfigError):
        build_objective({"name": "wgan_gp", "gp_weight": True})
