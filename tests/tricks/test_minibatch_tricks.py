"""Tricks that change a player's layers: minibatch discrimination / stddev on D, virtual batch
norm on G."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import gankit
from gankit.api import prepare
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.models.vbn import VirtualBatchGenerator
from gankit.training.checkpoint import load_checkpoint

SMALL_DCGAN = {
    "generator.base_channels": 8,
    "generator.latent_dim": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 8,
}
MINIBATCH = [
    ("minibatch_discrimination", {"num_kernels": 6, "kernel_dim": 3}, 6),
    ("minibatch_stddev", {}, 1),
]


def pair(make_method, recipe, trick=None, options=None):
    """(plain method, method with the trick), built from the same seed."""
    base = SMALL_DCGAN if recipe == "quickstart" else {}
    plain = make_method(base, recipe=recipe)
    tricks = [{"name": trick, **(options or {})}] if trick else []
    return plain, make_method({**base, "tricks": tricks}, recipe=recipe)


def batch(method, n=8, seed=0):
    return torch.randn(n, *method.data.shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("recipe", ["ring8", "quickstart"], ids=["mlp", "dcgan"])
@pytest.mark.parametrize("trick, options, extra", MINIBATCH, ids=[m[0] for m in MINIBATCH])
def test_wrapped_d_starts_as_the_plain_d(make_method, recipe, trick, options, extra):
    plain, wrapped = pair(make_method, recipe, trick, options)
    D0, D = plain.discriminator, wrapped.discriminator
    dim = D0.out.in_features
    head = D.inner.out
    assert head.in_features == dim + extra
    assert torch.equal(head.weight[:, :dim], D0.out.weight)
    assert torch.equal(head.weight[:, dim:], torch.zeros(1, extra))
    assert torch.equal(head.bias, D0.out.bias)
    x = batch(plain)
    with torch.no_grad():
        torch.testing.assert_close(D(x), D0(x), rtol=0, atol=1e-6)
    # the optimizer trains the new parameters too
    trained = {id(p) for group in wrapped.opt_d.param_groups for p in group["params"]}
    assert {id(p) for p in D.parameters()} <= trained


def minibatch_features_by_hand(f: torch.Tensor, T: torch.Tensor, b: int, c: int) -> list:
    """o_b(x_i) = sum_{j != i} exp(-sum_c |M_i[b, c] - M_j[b, c]|), M_i = (f_i T).view(b, c)."""
    m = [(f[i] @ T).view(b, c) for i in range(len(f))]
    return [
        [
            sum(math.exp(-float((m[i][k] - m[j][k]).abs().sum())) for j in range(len(f)) if j != i)
            for k in range(b)
        ]
        for i in range(len(f))
    ]


def stddev_feature_by_hand(f: torch.Tensor) -> float:
    """Mean over features of the population std over the batch (sqrt(var + 1e-8))."""
    n, a = f.shape
    total = 0.0
    for k in range(a):
        col = [float(v) for v in f[:, k]]
        mean = sum(col) / n
        total += math.sqrt(sum((v - mean) ** 2 for v in col) / n + 1e-8)
    return total / a


@pytest.mark.parametrize("trick, options, extra", MINIBATCH, ids=[m[0] for m in MINIBATCH])
def test_scores_add_the_batch_statistics(make_method, trick, options, extra):
    """With weights on the appended statistics, D's score is the plain score plus their
    weighted batch statistics (computed here one pair of examples at a time)."""
    plain, wrapped = pair(make_method, "ring8", trick, options)
    D0, D = plain.discriminator, wrapped.discriminator
    weights = torch.linspace(0.5, 1.5, extra)
    with torch.no_grad():
        D.inner.out.weight[0, -extra:] = weights
        x = batch(plain, n=6)
        f = D0.features(x)
        if trick == "minibatch_stddev":
            stats = [[stddev_feature_by_hand(f)]] * len(x)
        else:
            stats = minibatch_features_by_hand(f, D.layer.T, 6, 3)
        expected = [
            float(s0) + sum(float(w) * s for w, s in zip(weights, row))
            for s0, row in zip(D0(x), stats)
        ]
        got = D(x).tolist()
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("recipe", ["ring8", "quickstart"], ids=["mlp", "dcgan"])
@pytest.mark.parametrize("trick, options, extra", MINIBATCH, ids=[m[0] for m in MINIBATCH])
def test_a_score_depends_on_the_rest_of_its_batch(make_method, recipe, trick, options, extra):
    plain, wrapped = pair(make_method, recipe, trick, options)
    D0, D = plain.discriminator.eval(), wrapped.discriminator.eval()  # BN: running statistics
    with torch.no_grad():
        D.inner.out.weight[:, -extra:] = 1.0  # as after some training
        x = batch(plain, seed=1)
        other = x.clone()
        other[1:] = batch(plain, seed=2)[1:] * 3  # same first example, different company
        assert abs(D(x)[0] - D(other)[0]) > 1e-4
        torch.testing.assert_close(D0(x)[0], D0(other)[0])  # the plain D looks at x[0] only


@pytest.mark.parametrize("trick, options, extra", MINIBATCH, ids=[m[0] for m in MINIBATCH])
def test_real_and_fake_are_scored_in_separate_batches(make_method, trick, options, extra):
    _, method = pair(make_method, "ring8", trick, options)
    seen = []
    D = method.discriminator
    hook = D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    # the real batch the step will draw, read from a second data source at the same position
    data = build_dataset(method.cfg.data, seed=method.cfg.seed)
    data.load_state_dict(copy.deepcopy(method.data.state_dict()))
    real = data.batch(method.batch_size)[0]
    method.train_step(0)
    hook.remove()
    assert [len(x) for x in seen] == [method.batch_size] * 3  # D step: real, fake; G step: fake
    assert torch.equal(seen[0], real)  # the first pass is the real batch alone
    assert torch.equal(seen[1], seen[2])  # then the fake batch alone, in both steps
    assert not torch.equal(seen[0], seen[1])


def test_patchgan_is_refused_with_the_reason(make_method):
    patchgan = {"discriminator": {"name": "patchgan", "n_layers": 1, "base_channels": 4}}
    make_method({**SMALL_DCGAN, **patchgan}, recipe="quickstart")  # fine without the trick
    for trick in ("minibatch_discrimination", "minibatch_stddev"):
        with pytest.raises(ConfigError, match=f"{trick} needs.*feature vector.*patches"):
            make_method(
                {**SMALL_DCGAN, **patchgan, "tricks": [{"name": trick}]}, recipe="quickstart"
            )


def test_both_minibatch_tricks_together_are_refused(make_method):
    tricks = [{"name": "minibatch_discrimination"}, {"name": "minibatch_stddev"}]
    with pytest.raises(ConfigError, match="both append batch statistics.*keep one"):
        make_method({"tricks": tricks})


def test_minibatch_discrimination_options_must_be_positive(make_method):
    with pytest.raises(ConfigError, match="num_kernels and kernel_dim must be >= 1"):
        make_method({"tricks": [{"name": "minibatch_discrimination", "kernel_dim": 0}]})


# -- virtual batch norm ---------------------------------------------------------------------


def test_vbn_generator_of_a_finished_run(tmp_path, tiny_ring):
    overrides = {
        **tiny_ring,
        "schedule.steps": 4,
        "tricks": [{"name": "virtual_batch_norm", "reference_size": 8}],
    }
    initial = prepare("ring8", overrides, out=tmp_path / "init").method.generator
    run = gankit.train("ring8", overrides, out=tmp_path / "run")
    state, _ = load_checkpoint(run.checkpoints()[-1])
    saved = state["modules"]["generator"]
    G = run.generator()
    assert isinstance(G, VirtualBatchGenerator)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in G.modules())
    assert saved["reference_z"].shape == (8, 2)
    assert set(G.state_dict()) == set(saved)
    for key, value in G.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # the trained weights, not the initial ones
    assert not torch.equal(G.inner.out.weight, initial.inner.out.weight)

    samples = run.sample(40, seed=3)
    assert samples.shape == (40, 2) and samples.isfinite().all()
    # each sample depends on its own z only (and on the fixed reference batch)
    z = torch.randn(10, 2)
    with torch.no_grad():
        together = G(z)
        for i in range(10):
            torch.testing.assert_close(G(z[i : i + 1])[0], together[i], rtol=1e-5, atol=1e-6)
        other = G.inner(torch.cat([torch.zeros(8, 2), z]))[8:]  # another reference batch
    assert not torch.allclose(other, together, atol=1e-3)


@pytest.mark.parametrize(
    "recipe, overrides",
    [
        ("ring8", {"generator.batch_norm": False}),
        ("quickstart", {**SMALL_DCGAN, "generator.norm": "none"}),
    ],
    ids=["mlp", "dcgan"],
)
def test_vbn_needs_batch_norm_in_the_generator(make_method, recipe, overrides):
    tricks = [{"name": "virtual_batch_norm", "reference_size": 4}]
    with pytest.raises(ConfigError, match="virtual_batch_norm.*BatchNorm"):
        make_method({**overrides, "tricks": tricks}, recipe=recipe)


def test_vbn_reference_size_must_be_positive(make_method):
    with pytest.raises(ConfigError, match="reference_size: must be >= 1"):
        make_method({"tricks": [{"name": "virtual_batch_norm", "reference_size": 0}]})
