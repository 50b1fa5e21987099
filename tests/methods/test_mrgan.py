"""Mode-Regularized GAN and MDGAN (methods/mrgan.py): every loss against its formula, computed
by hand on tiny linear E, G and D; the encoder models."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gankit.config import load_recipe
from gankit.errors import ConfigError
from gankit.methods.critic import Critic
from gankit.methods.mrgan import MDGANMethod, MRGANMethod
from gankit.models import build_encoder
from gankit.objectives import build_objective

WE = [[0.5, -0.2], [0.3, 0.8]]  # E(x) = WE x
WG = [[1.1, 0.4], [-0.6, 0.9]]  # G(z) = WG z
WD, BD = [0.7, -1.3], 0.2  # D's logit: WD . v + BD
WD2, BD2 = [-0.4, 0.5], -0.1  # MDGAN's D_d
X = [[0.3, -1.0], [1.5, 0.2], [-0.7, 0.9]]
Z = [[0.1, 0.4], [-1.2, 0.3], [0.6, -0.5]]


def linear(w):
    layer = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w, dtype=torch.float64))
    return layer


class Score(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))

    def forward(self, v):
        return v @ self.w + self.b


def mat(w, v):
    return [sum(w[r][c] * v[c] for c in range(2)) for r in range(2)]


def log_sigmoid(t):
    return -math.log(1 + math.exp(-t))


def logit(w, b, v):
    return w[0] * v[0] + w[1] * v[1] + b


def sq(a, b):
    return sum((p - q) ** 2 for p, q in zip(a, b))


def mean(values):
    values = list(values)
    return sum(values) / len(values)


def critic(D):
    """D's Critic with the papers' cross-entropy and nothing attached (as the methods build
    it for a recipe without tricks)."""
    cfg, fast = SimpleNamespace(regularizers=[]), SimpleNamespace(compile=False)
    return Critic(cfg, build_objective({"name": "non_saturating"}), [], D, None, fast)


def players(cls, lambda1, lambda2):
    m = cls.__new__(cls)  # the loss functions only need the players and the weights
    m.encoder, m.generator, m.discriminator = linear(WE), linear(WG), Score(WD, BD)
    m.discriminator_diffusion = Score(WD2, BD2)
    m.critic, m.critic_diffusion = critic(m.discriminator), critic(m.discriminator_diffusion)
    m.lambda1, m.lambda2 = lambda1, lambda2
    return m


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_mrgan_losses_against_the_formulas():
    """T_G = -E log D(G(z)) + E[l1 ||x - G(E(x))||^2 + l2 (-log D(G(E(x))))], T_E = the
    regularizer alone."""
    l1, l2 = 0.3, 0.7
    m = players(MRGANMethod, l1, l2)
    recon = [mat(WG, mat(WE, x)) for x in X]
    geo = mean(sq(x, r) for x, r in zip(X, recon))
    mode = mean(-log_sigmoid(logit(WD, BD, r)) for r in recon)
    adv = mean(-log_sigmoid(logit(WD, BD, mat(WG, z))) for z in Z)
    x = t(X)
    losses = m.generator_losses(x, m.generator(t(Z)))
    assert losses["geometric"].item() == pytest.approx(geo, rel=1e-6)
    assert losses["mode"].item() == pytest.approx(mode, rel=1e-6)
    assert losses["e_loss"].item() == pytest.approx(l1 * geo + l2 * mode, rel=1e-6)
    assert losses["g_loss"].item() == pytest.approx(adv + l1 * geo + l2 * mode, rel=1e-6)


def test_mrgan_encoder_gradient_of_t_g_is_that_of_t_e():
    """The step takes one backward of T_G into G and E: E's part must be grad T_E."""
    m = players(MRGANMethod, 0.3, 0.7)
    x = t(X)
    losses = m.generator_losses(x, m.generator(t(Z)))
    (g_e,) = torch.autograd.grad(losses["g_loss"], [m.encoder.weight], retain_graph=True)
    (e_e,) = torch.autograd.grad(losses["e_loss"], [m.encoder.weight])
    assert torch.allclose(g_e, e_e)
    assert g_e.abs().sum() > 0


def test_mdgan_manifold_step_against_the_formulas():
    """D_m: -E log D_m(x) - E log(1 - D_m(G(E(x)))); G∘E: l1 E||x - G(E(x))||^2 + l2 E -log
    D_m(G(E(x)))."""
    l1, l2 = 1.5, 0.25
    m = players(MDGANMethod, l1, l2)
    recon = [mat(WG, mat(WE, x)) for x in X]
    d_m = mean(-log_sigmoid(logit(WD, BD, x)) for x in X) + mean(
        -math.log(1 - math.exp(log_sigmoid(logit(WD, BD, r)))) for r in recon
    )
    geo = mean(sq(x, r) for x, r in zip(X, recon))
    g_m = l1 * geo + l2 * mean(-log_sigmoid(logit(WD, BD, r)) for r in recon)
    x = t(X)
    recon_t = m.generator(m.encoder(x))
    d_loss = m.manifold_d_loss(x, recon_t)
    assert d_loss.item() == pytest.approx(d_m, rel=1e-6)
    g_loss, geo_t = m.manifold_g_loss(x, recon_t)
    assert g_loss.item() == pytest.approx(g_m, rel=1e-6)
    assert geo_t.item() == pytest.approx(geo, rel=1e-6)
    # D_m's loss does not reach G or E
    assert torch.autograd.grad(d_loss, [m.encoder.weight], allow_unused=True)[0] is None


def test_mdgan_diffusion_step_against_the_formulas():
    """D_d: -E log D_d(G(E(x))) - E log(1 - D_d(G(z))); G: -E log D_d(G(z)); D_d, not D_m."""
    m = players(MDGANMethod, 1.0, 1.0)
    target = [mat(WG, mat(WE, x)) for x in X]
    fake = [mat(WG, z) for z in Z]
    d_d = mean(-log_sigmoid(logit(WD2, BD2, v)) for v in target) + mean(
        -math.log(1 - math.exp(log_sigmoid(logit(WD2, BD2, v)))) for v in fake
    )
    g_d = mean(-log_sigmoid(logit(WD2, BD2, v)) for v in fake)
    fake_t = m.generator(t(Z))
    d_loss = m.diffusion_d_loss(m.generator(m.encoder(t(X))), fake_t)
    assert d_loss.item() == pytest.approx(d_d, rel=1e-6)
    g_loss = m.diffusion_g_loss(fake_t)
    assert g_loss.item() == pytest.approx(g_d, rel=1e-6)
    assert torch.autograd.grad(d_loss, [m.generator.weight], allow_unused=True)[0] is None


@pytest.mark.parametrize(
    "spec, shape",
    [({"name": "mlp", "hidden": 8, "depth": 2}, (2,)),
     ({"name": "dcgan", "base_channels": 4}, (1, 28, 28)),
     ({"name": "dcgan", "base_channels": 4, "out_activation": "tanh"}, (3, 32, 32))],
)  # fmt: skip
def test_encoders_map_data_to_codes(spec, shape):
    E = build_encoder(spec, shape, latent_dim=5)
    codes = E(torch.randn(3, *shape))
    assert codes.shape == (3, 5)
    if spec.get("out_activation") == "tanh":
        assert codes.abs().max() <= 1


@pytest.mark.parametrize("preset", ["ring8-mrgan", "ring8-mdgan"])
def test_encoder_options_are_checked(preset):
    with pytest.raises(ConfigError, match="method_options.encoder.widht"):
        load_recipe(preset, {"method_options.encoder": {"name": "mlp", "widht": 3}})
    with pytest.raises(ConfigError, match="unknown encoder"):
        load_recipe(preset, {"method_options.encoder": {"name": "resnet"}})
    with pytest.raises(ConfigError, match="objective"):
        load_recipe(preset, {"objective": {"name": "hinge"}})
