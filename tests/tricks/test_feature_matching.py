"""Feature matching: the generator's term against the feature means written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.errors import ConfigError
from gankit.regularizers import RegularizerContext

RELU_D = {"discriminator.activation": "relu"}  # body: Linear, ReLU, Linear, ReLU


def fm_method(make_method, **options):
    return make_method({**RELU_D, "tricks": [{"name": "feature_matching", **options}]})


def layer_outputs(D, x_i: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's output for one example, from D's weights: h = W x + b, relu(h)."""
    out = {}
    h = x_i
    for name in ("body.0", "body.2"):
        linear = D.get_submodule(name)
        h = linear.weight @ h + linear.bias
        out[name] = h
        h = torch.clamp(h, min=0)
        out[f"body.{int(name[-1]) + 1}"] = h
    return out


def fm_by_hand(D, real, fake, layer: str, weight: float) -> float:
    """weight * || mean_i f(real_i) - mean_i f(fake_i) ||^2, one example at a time."""

    def mean_feature(batch):
        total = None
        for x_i in batch:
            f = layer_outputs(D, x_i)[layer]
            total = f if total is None else total + f
        return total / len(batch)

    with torch.no_grad():
        diff = mean_feature(real) - mean_feature(fake)
    return weight * sum(d * d for d in diff.double().tolist())


def context(method, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, 2, generator=g) * 2
    fake = method.generator(torch.randn(n, 2, generator=g))
    return RegularizerContext(method.discriminator, real, fake, 0)


@pytest.mark.parametrize("layer", [None, "body.0", "body.1", "body.2"])
def test_penalty_is_the_squared_distance_of_feature_means(make_method, layer):
    method = fm_method(make_method, weight=0.6, layer=layer)
    ctx = context(method)
    penalty = method.tricks[0].g_penalty(ctx)
    expected = fm_by_hand(method.discriminator, ctx.real, ctx.fake, layer or "body.3", 0.6)
    assert expected > 1e-4
    assert penalty.item() == pytest.approx(expected, rel=1e-5)


def test_layers_give_different_terms(make_method):
    """The named layer is really the one used (the terms of different layers differ)."""
    values = []
    for layer in ("body.0", "body.2"):
        method = fm_method(make_method, layer=layer)
        values.append(method.tricks[0].g_penalty(context(method)).item())
    assert values[0] != pytest.approx(values[1], rel=1e-3)


def test_default_layer_is_the_discriminator_features(make_method):
    """With maxout (the ring8 default) the features are D.features, whatever the layers."""
    method = make_method({"tricks": [{"name": "feature_matching"}]})
    ctx = context(method)
    D = method.discriminator
    with torch.no_grad():
        real = torch.stack([D.features(x[None])[0] for x in ctx.real]).mean(0)
        fake = torch.stack([D.features(x[None])[0] for x in ctx.fake]).mean(0)
    expected = sum(v * v for v in (real - fake).double().tolist())
    assert method.tricks[0].g_penalty(ctx).item() == pytest.approx(expected, rel=1e-5)


def generator_step_by_hand(method, layer):
    """Run one generator step on a known batch; return its logs and the loss by hand."""
    ctx = context(method, n=16, seed=3)
    method.real = ctx.real
    fake = method.generator(torch.randn(16, 2, generator=torch.Generator().manual_seed(5)))
    fm = fm_by_hand(method.discriminator, ctx.real, fake, layer, 1.5)
    with torch.no_grad():
        scores = method.discriminator(fake).double().tolist()
    adversarial = sum(-math.log(1 / (1 + math.exp(-s))) for s in scores) / len(scores)
    for p in method.discriminator.parameters():
        p.grad = None
    before_d = [p.detach().clone() for p in method.discriminator.parameters()]
    before_g = [p.detach().clone() for p in method.generator.parameters()]
    logs = method.generator_step(0, fake)
    # gradients reached G and moved it; D's parameters got none and did not move
    assert all(p.grad is None for p in method.discriminator.parameters())
    assert all(torch.equal(p, q) for p, q in zip(method.discriminator.parameters(), before_d))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.generator.parameters())
    assert not all(torch.equal(p, q) for p, q in zip(method.generator.parameters(), before_g))
    assert all(p.requires_grad for p in method.discriminator.parameters())  # restored
    return logs, fm, adversarial


@pytest.mark.parametrize("layer", [None, "body.2"])
def test_without_adversarial_loss_the_generator_loss_is_the_term(make_method, layer):
    method = fm_method(make_method, weight=1.5, adversarial=False, layer=layer)
    logs, fm, _ = generator_step_by_hand(method, layer or "body.3")
    assert logs["g_loss"].item() == logs["trick/feature_matching/g"].item()
    assert logs["g_loss"].item() == pytest.approx(fm, rel=1e-5)


def test_adversarial_true_adds_the_term(make_method):
    method = fm_method(make_method, weight=1.5, adversarial=True)
    logs, fm, adversarial = generator_step_by_hand(method, "body.3")
    assert logs["trick/feature_matching/g"].item() == pytest.approx(fm, rel=1e-5)
    assert logs["g_loss"].item() == pytest.approx(adversarial + fm, rel=1e-5)


def test_training_steps_log_the_term(make_method):
    method = fm_method(make_method)
    for step in range(3):
        logs = method.train_step(step)
        assert logs["g_loss"].item() == logs["trick/feature_matching/g"].item()
        assert math.isfinite(logs["d_loss"].item())
    assert "trick/feature_matching/d" not in logs


def test_unknown_layer_lists_the_valid_ones(make_method):
    with pytest.raises(ConfigError, match="no layer 'body.9'; valid: body, body.0, body.1"):
        fm_method(make_method, layer="body.9")


def test_weight_must_be_positive(make_method):
    with pytest.raises(ConfigError, match="weight: must be > 0"):
        fm_method(make_method, weight=0.0)
