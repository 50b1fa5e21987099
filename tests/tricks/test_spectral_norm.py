"""Spectral normalization: every layer's largest singular value, computed with linalg, is 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import gankit
from gankit.errors import ConfigError
from gankit.training.checkpoint import load_checkpoint

SMALL_DCGAN = {
    "generator.base_channels": 8,
    "generator.latent_dim": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 8,
}
LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def layers_of(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, LAYERS)]


def sigma(layer: nn.Module, weight: torch.Tensor | None = None) -> float:
    """Largest singular value of the weight as a matrix (out, -1), as Miyato et al. reshape a
    convolution kernel; a transposed convolution stores (in, out, kh, kw)."""
    w = layer.weight if weight is None else weight
    if isinstance(layer, nn.ConvTranspose2d):
        w = w.transpose(0, 1)
    with torch.no_grad():
        return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1).double(), ord=2).item()


def scramble(module: nn.Module, seed: int) -> None:
    """New random raw weights (3x larger than usual): the stored power-iteration vectors no
    longer fit them, so only further iterations can bring sigma back to 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers_of(module):
            original = layer.parametrizations.weight.original
            scale = 3 / original[0].numel() ** 0.5
            original.copy_(torch.randn(original.shape, generator=g) * scale)


def method_for(make_method, recipe, players="discriminator", **extra):
    overrides = {"tricks": [{"name": "spectral_norm", "players": players}], **extra}
    if recipe == "quickstart":
        overrides.update(SMALL_DCGAN)
    return make_method(overrides, recipe=recipe)


@pytest.mark.parametrize("recipe", ["ring8", "quickstart"], ids=["mlp", "dcgan"])
@pytest.mark.parametrize("player", ["discriminator", "generator"])
def test_power_iterations_bring_each_layer_to_sigma_1(make_method, recipe, player):
    method = method_for(make_method, recipe, players=player)
    net = getattr(method, player)
    layers = layers_of(net)
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    scramble(net, seed=1)
    raw = [sigma(m, m.parametrizations.weight.original) for m in layers]
    assert max(raw) > 1.5  # the raw weights are far from normalized
    before = [sigma(m) for m in layers]
    assert max(abs(s - 1) for s in before) > 0.02  # and the old estimates no longer fit
    net.train()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for _ in range(50):
            if player == "discriminator":
                net(torch.randn(8, *method.data.shape, generator=g))
            else:
                net(torch.randn(8, method.cfg.generator["latent_dim"], generator=g))
    after = [sigma(m) for m in layers]
    assert all(abs(s - 1) < 1e-2 for s in after), after


def test_eval_mode_does_not_iterate(make_method):
    method = method_for(make_method, "ring8")
    D = method.discriminator
    scramble(D, seed=3)
    D.eval()
    before = [sigma(m) for m in layers_of(D)]
    with torch.no_grad():
        for _ in range(20):
            D(torch.randn(8, 2))
    assert [sigma(m) for m in layers_of(D)] == before


@pytest.mark.parametrize(
    "players, g, d",
    [("discriminator", False, True), ("generator", True, False), ("both", True, True)],
)
def test_players_option(make_method, players, g, d):
    method = method_for(make_method, "ring8", players=players)
    for net, expected in ((method.generator, g), (method.discriminator, d)):
        flags = {parametrize.is_parametrized(m, "weight") for m in layers_of(net)}
        assert flags == {expected}


def test_training_keeps_the_discriminator_normalized(make_method):
    method = method_for(make_method, "ring8", **{"optim.discriminator.lr": 0.01})
    for step in range(30):
        method.train_step(step)
    # each training forward pass did one iteration on weights that moved a little
    assert all(abs(sigma(m) - 1) < 2e-2 for m in layers_of(method.discriminator))


def test_weight_clipping_on_top_is_refused(make_method):
    with pytest.raises(ConfigError, match="spectral_norm.*wasserstein.*clip"):
        method_for(make_method, "ring8", objective={"name": "wasserstein"})
    # no clipping, or normalizing only the generator, is fine
    method_for(make_method, "ring8", objective={"name": "wasserstein", "clip": None})
    method_for(make_method, "ring8", players="generator", objective={"name": "wasserstein"})


def test_n_power_iterations_must_be_positive(make_method):
    with pytest.raises(ConfigError, match="n_power_iterations: must be >= 1"):
        make_method({"tricks": [{"name": "spectral_norm", "n_power_iterations": 0}]})


def test_state_dict_round_trip(make_method):
    a = method_for(make_method, "ring8", players="both")
    for step in range(3):
        a.train_step(step)
    b = method_for(make_method, "ring8", players="both", seed=5)
    x = torch.randn(16, 2)
    a.discriminator.eval()
    b.discriminator.eval()
    assert not torch.equal(a.discriminator(x), b.discriminator(x))
    state = a.discriminator.state_dict()
    assert any(k.endswith("parametrizations.weight.original") for k in state)
    assert any(k.endswith("parametrizations.weight.0._u") for k in state)
    b.discriminator.load_state_dict(state)
    assert torch.equal(a.discriminator(x), b.discriminator(x))
    for la, lb in zip(layers_of(a.discriminator), layers_of(b.discriminator)):
        assert torch.equal(la.weight, lb.weight)


def test_checkpoint_round_trip(tmp_path, tiny_ring):
    overrides = {
        **tiny_ring,
        "schedule.steps": 6,
        "tricks": [{"name": "spectral_norm", "players": "both"}],
    }
    run = gankit.train("ring8", overrides, out=tmp_path / "run")
    state, _ = load_checkpoint(run.checkpoints()[-1])
    G = run.generator()
    saved = state["modules"]["generator"]
    assert set(G.state_dict()) == set(saved)
    for key, value in G.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert all(parametrize.is_parametrized(m, "weight") for m in layers_of(G))
    # the normalized weight of eval mode is W / (u^T W v) with the saved vectors
    for name, layer in G.named_modules():
        if isinstance(layer, LAYERS):
            u = saved[f"{name}.parametrizations.weight.0._u"].double()
            v = saved[f"{name}.parametrizations.weight.0._v"].double()
            w = saved[f"{name}.parametrizations.weight.original"].double()
            w_mat = w.reshape(w.shape[0], -1)
            torch.testing.assert_close(layer.weight.double(), w / (u @ w_mat @ v))
    samples = run.sample(32, seed=1)
    assert samples.shape == (32, 2) and samples.isfinite().all()
    assert torch.equal(samples, run.sample(32, seed=1))
