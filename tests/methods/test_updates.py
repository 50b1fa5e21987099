"""The GAN step's update orders (method_options.updates) against hand-computed SGD steps, and
PacGAN's split generator calls (split_generator) against packs built by hand."""

import copy

import pytest
import torch
import torch.nn.functional as F

from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.methods import METHODS

LR = 0.05
SMALL = {
    "generator.hidden": 8,
    "generator.depth": 2,
    "discriminator.hidden": 8,
    "discriminator.depth": 2,
    "schedule.batch_size": 12,
    "optim.generator": {"name": "sgd", "lr": LR},
    "optim.discriminator": {"name": "sgd", "lr": LR},
}


def build(recipe, overrides):
    cfg = load_recipe(recipe, {**SMALL, **overrides})
    torch.manual_seed(0)
    data = build_dataset(cfg.data, seed=cfg.seed)
    return METHODS[cfg.method](cfg, data, torch.device("cpu")), data


def record_inputs(method, data):
    """Capture the real batch and the noise of the next step."""
    seen = {}
    batch = data.batch

    def recording_batch(n):
        x, y = batch(n)
        seen["x"] = x.detach().clone()
        return x, y

    data.batch = recording_batch
    method.generator.register_forward_pre_hook(
        lambda mod, args: seen.setdefault("z", args[0].detach().clone())
    )
    return seen


def sgd(module, loss):
    """module's parameters after one plain SGD step on loss."""
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, params)
    return [(p - LR * g).detach() for p, g in zip(params, grads)]


def d_loss(D, x, fake):  # non-saturating / minimax discriminator loss
    return F.softplus(-D(x)).mean() + F.softplus(D(fake)).mean()


def g_loss(D, fake):  # non-saturating generator loss
    return F.softplus(-D(fake)).mean()


def hand_step(G, D, x, z, simultaneous):
    """Parameters after one step, from copies of the players at the step's start."""
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    fake = G(z)
    d_after = sgd(D, d_loss(D, x, fake.detach()))
    if not simultaneous:  # G's gradient against the updated D
        with torch.no_grad():
            for p, new in zip(D.parameters(), d_after):
                p.copy_(new)
    g_after = sgd(G, g_loss(D, fake))
    return g_after, d_after


def close(module, expected):
    return all(torch.allclose(p, q, atol=1e-6) for p, q in zip(module.parameters(), expected))


@pytest.mark.parametrize("updates", ["alternating", "simultaneous"])
def test_update_order_matches_hand_computed_sgd(updates):
    method, data = build("ring8", {"method_options.updates": updates})
    G0, D0 = copy.deepcopy(method.generator), copy.deepcopy(method.discriminator)
    seen = record_inputs(method, data)
    method.train_step(0)
    for name, simultaneous in [("alternating", False), ("simultaneous", True)]:
        g_after, d_after = hand_step(G0, D0, seen["x"], seen["z"], simultaneous)
        d_match = all(
            torch.allclose(p, q, atol=1e-6)
            for p, q in zip(method.discriminator.parameters(), d_after)
        )
        g_match = all(
            torch.allclose(p, q, atol=1e-6) for p, q in zip(method.generator.parameters(), g_after)
        )
        assert d_match  # D's step is the same in both orders
        assert g_match == (name == updates), (
            f"{updates} step matched the {name} hand step? {g_match}"
        )


def test_simultaneous_generator_terms_see_this_steps_real_batch():
    """Feature matching compares against the real batch: in simultaneous order it must be the
    one D steps on in this step, drawn before the generator's step."""
    method, data = build(
        "ring8",
        {"method_options.updates": "simultaneous", "tricks": [{"name": "feature_matching"}]},
    )
    seen = record_inputs(method, data)
    method.train_step(0)
    assert torch.equal(method.real, seen["x"])


def test_unknown_update_order_is_a_clear_error():
    with pytest.raises(ConfigError, match="method_options.updates.*'alternating', 'simultaneous'"):
        load_recipe("ring8", {"method_options.updates": "interleaved"})


@pytest.mark.parametrize("m", [2, 4])
def test_split_generator_packs_sample_i_of_every_call(m):
    method, data = build(
        "ring8-pacgan4", {"method_options.pack": m, "method_options.split_generator": True}
    )
    calls, seen = [], []
    method.generator.register_forward_hook(
        lambda mod, args, out: calls.append((args[0].shape[0], out.detach().clone()))
    )
    method.discriminator.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    method.train_step(0)
    assert [n for n, _ in calls] == [12 // m] * m  # m calls of batch / m samples
    packs = torch.stack([torch.cat([calls[j][1][i] for j in range(m)]) for i in range(12 // m)])
    d_fake = seen[1]  # D(real), D(fake) in D's step, D(fake) in G's step
    assert torch.equal(d_fake, packs)
    assert torch.equal(seen[2], packs)


def test_split_generator_changes_batch_norm_statistics_only():
    """One call on the concatenated noise differs from m calls (BN statistics per call) in
    training mode and equals it in eval mode: the split changes nothing else."""
    method, _ = build("ring8-pacgan4", {"method_options.split_generator": True})
    G = method.generator
    z = torch.randn(12, 2)
    split = torch.cat([G(z[:3]), G(z[3:6]), G(z[6:9]), G(z[9:])])
    assert not torch.allclose(G(z), split, atol=1e-4)
    G.eval()
    split = torch.cat([G(z[:3]), G(z[3:6]), G(z[6:9]), G(z[9:])])
    assert torch.allclose(G(z), split, atol=1e-6)
