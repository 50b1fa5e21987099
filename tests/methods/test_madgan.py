"""MAD-GAN (methods/madgan.py): the discriminator's k+1-class loss, the generators' losses, the
MAD-GAN-Sim competing term and the mixture sampler, each against the definition written out."""

import math

import pytest
import torch
from torch import nn

from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.methods.madgan import (
    MADGANMethod,
    MixtureGenerator,
    RealLogit,
    binary_g_loss,
    madgan_d_loss,
    madgan_g_loss,
    sim_penalty,
    split_generator,
)
from gankit.models import build_generator

SMALL = {
    "generator.hidden": 8,
    "generator.depth": 2,
    "discriminator.hidden": 8,
    "discriminator.depth": 2,
    "schedule.batch_size": 6,
}


def lse(row) -> float:
    """log sum_c exp(row_c), written out with the max shift."""
    m = max(row)
    return m + math.log(sum(math.exp(v - m) for v in row))


def logits(n, k, seed):
    return torch.randn(n, k + 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_d_loss_is_the_k_plus_1_class_cross_entropy():
    """-E log D_{k+1}(x) - sum_i E log D_i(G_i(z)), D = softmax of the logits."""
    k = 3
    real = logits(5, k, 0)
    fakes = [logits(4, k, 1 + i) for i in range(k)]
    expected = sum(lse(r) - r[k] for r in real.tolist()) / 5
    for i, fake in enumerate(fakes):
        expected += sum(lse(r) - r[i] for r in fake.tolist()) / 4
    assert madgan_d_loss(real, fakes).item() == pytest.approx(expected, rel=1e-6)


def test_d_loss_targets_one_class_per_generator_and_real_last():
    """A D that puts all mass on the right class (generator i for G_i's samples, class k for
    real) has loss ~0; swapping two generators' batches makes it large."""
    k, big = 3, 50.0
    eye = torch.eye(k + 1) * big
    real = eye[k].repeat(4, 1)
    fakes = [eye[i].repeat(4, 1) for i in range(k)]
    assert madgan_d_loss(real, fakes).item() < 1e-6
    assert madgan_d_loss(real, [fakes[1], fakes[0], fakes[2]]).item() > 2 * big - 1


def test_generator_losses_against_the_formula():
    k = 2
    fakes = [logits(3, k, 10 + i) for i in range(k)]
    # non-saturating: sum_i E -log D_{k+1}(G_i(z))
    ns = sum(sum(lse(r) - r[k] for r in f.tolist()) / 3 for f in fakes)
    assert madgan_g_loss(fakes, "non_saturating").item() == pytest.approx(ns, rel=1e-6)
    # minimax: sum_i E log(1 - D_{k+1}(G_i(z)))
    mm = 0.0
    for f in fakes:
        for r in f.tolist():
            p_real = math.exp(r[k] - lse(r))
            mm += math.log(1 - p_real) / 3
    assert madgan_g_loss(fakes, "minimax").item() == pytest.approx(mm, rel=1e-6)


def test_binary_generator_loss_against_the_formula():
    fakes = [torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([2.0, 0.1])]
    sig = [[1 / (1 + math.exp(-v)) for v in f.tolist()] for f in fakes]
    ns = sum(sum(-math.log(s) for s in row) / 2 for row in sig)
    mm = sum(sum(math.log(1 - s) for s in row) / 2 for row in sig)
    assert binary_g_loss(fakes, "non_saturating").item() == pytest.approx(ns, rel=1e-6)
    assert binary_g_loss(fakes, "minimax").item() == pytest.approx(mm, rel=1e-6)


def test_sim_penalty_against_a_hand_loop_over_generator_pairs():
    k, n, d = 3, 4, 5
    gen = torch.Generator().manual_seed(3)
    feats = [torch.randn(n, d, generator=gen, requires_grad=True) for _ in range(k)]
    probs = [torch.rand(n, generator=gen, requires_grad=True) for _ in range(k)]
    out = sim_penalty(probs, feats)
    for i in range(k):
        for s in range(n):
            total = 0.0
            for j in range(k):
                if j == i:
                    continue
                a, b = feats[i][s].tolist(), feats[j][s].tolist()
                dot = sum(x * y for x, y in zip(a, b))
                cos = dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
                total += cos - (probs[i][s].item() - probs[j][s].item())
            assert out[i][s].item() == pytest.approx(max(0.0, total / (k - 1)), abs=1e-6)
    # generator i's term treats the other generators' samples as constants
    out[0].sum().backward()
    assert feats[1].grad is None and probs[2].grad is None
    assert feats[0].grad is not None and probs[0].grad is not None


def test_mixture_draws_row_n_from_generator_n_mod_k():
    torch.manual_seed(0)
    heads = [nn.Linear(2, 3) for _ in range(3)]
    z = torch.randn(7, 2)
    out = MixtureGenerator(heads)(z)
    for n in range(7):
        assert torch.allclose(out[n], heads[n % 3](z[n : n + 1])[0])
    # fewer rows than generators: the first ones
    assert torch.allclose(
        MixtureGenerator(heads)(z[:2]), torch.cat([heads[0](z[:1]), heads[1](z[1:2])])
    )
    # a shared trunk runs before every head
    trunk = nn.Linear(2, 2)
    shared = MixtureGenerator(heads, trunk)
    out = shared(z)
    for n in range(7):
        assert torch.allclose(out[n], heads[n % 3](trunk(z[n : n + 1]))[0])
    assert [o.shape for o in shared.outputs(z)] == [(7, 3)] * 3


@pytest.mark.parametrize(
    "spec, shape",
    [({"name": "mlp", "latent_dim": 2, "hidden": 8, "depth": 2}, (2,)),
     ({"name": "dcgan", "latent_dim": 4, "base_channels": 4}, (1, 8, 8))],
)  # fmt: skip
def test_split_generator_is_the_same_function(spec, shape):
    torch.manual_seed(0)
    g = build_generator(spec, shape).eval()
    trunk, head = split_generator(g)
    z = torch.randn(5, spec["latent_dim"])
    assert torch.allclose(head(trunk(z)), g(z))


def method(overrides):
    cfg = load_recipe("ring8-madgan", {**SMALL, **overrides})
    return MADGANMethod(cfg, build_dataset(cfg.data, seed=cfg.seed), torch.device("cpu"))


@pytest.mark.parametrize("shared", [False, True])
def test_players_outputs_and_optimizers(shared):
    m = method({"method_options.k": 3, "method_options.shared_trunk": shared})
    x = torch.randn(6, 2)
    assert m.discriminator(x).shape == (6, 4)  # k + 1 logits
    G = m.generator
    assert isinstance(G, MixtureGenerator) and G.k == 3
    assert (G.trunk is not None) == shared
    in_opt = {id(p) for group in m.opt_g.param_groups for p in group["params"]}
    assert in_opt == {id(p) for p in G.parameters()}
    assert set(m.modules()) == {"generator", "discriminator"}
    # the heads are distinct networks
    assert not torch.equal(G.heads[0].out.weight, G.heads[1].out.weight)
    # what Run.generator builds to load a checkpoint has the same state keys
    sampler = MADGANMethod.build_sampler(m.cfg, (2,))
    assert sampler.state_dict().keys() == G.state_dict().keys()


def test_sim_variant_has_a_one_output_discriminator():
    m = method({"method_options.variant": "sim"})
    assert m.discriminator(torch.randn(6, 2)).shape == (6,)
    logs = m.train_step(0)
    assert {"sim", "d_loss", "g_loss", "p_real", "p_fake"} <= set(logs)


def test_identify_step_updates_every_generator():
    m = method({"method_options.k": 3})
    before = [h.out.weight.clone() for h in m.generator.heads]
    logs = m.train_step(0)
    assert all(not torch.equal(b, h.out.weight) for b, h in zip(before, m.generator.heads))
    assert math.isfinite(logs["d_loss"].item()) and math.isfinite(logs["g_loss"].item())


@pytest.mark.parametrize(
    "overrides, message",
    [({"method_options.variant": "sim", "method_options.k": 1}, "k >= 2"),
     ({"discriminator": {"name": "autoencoder"}}, "autoencoder"),
     ({"method_options.k": 0}, "at least 1")],
)  # fmt: skip
def test_bad_options_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe("ring8-madgan", overrides)


def test_real_logit_is_the_logit_of_d_k_plus_1():
    k = 3
    D = nn.Linear(2, k + 1)
    x = torch.randn(5, 2)
    p_real = torch.softmax(D(x), dim=1)[:, k]
    assert torch.allclose(torch.sigmoid(RealLogit(D, k)(x)), p_real, atol=1e-6)
