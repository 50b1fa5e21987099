"""The semi-supervised K+1 GAN (methods/ssl.py, models/ssl.py): probabilities and losses against
naive float64 formulas, the labeled subset, weight norm's data-dependent init, training end to
end with exact resume, and `gankit eval`'s test accuracy."""

import math

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.data.digits import load_digits_tensors
from gankit.methods.ssl import (
    labeled_subset,
    log_d,
    log_one_minus_d,
    ssl_d_losses,
    unlabeled_objective,
)
from gankit.models import build_discriminator, build_generator
from gankit.models.ssl import WNLinear
from gankit.training.checkpoint import load_checkpoint
from gankit.tricks.feature_matching import feature_matching_loss


def naive_d(logits: torch.Tensor) -> torch.Tensor:
    """D = Z / (Z + 1), Z = sum exp(l), in float64 without any log-sum-exp."""
    z = logits.double().exp().sum(1)
    return z / (z + 1)


def test_k_plus_1_probabilities_match_the_formula():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0)) * 4
    d = naive_d(logits)
    torch.testing.assert_close(log_d(logits).double(), d.log(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        log_one_minus_d(logits).double(), (1 - d).log(), rtol=1e-5, atol=1e-6
    )


def test_k_plus_1_probabilities_are_stable_for_large_logits():
    big = torch.full((2, 10), 1000.0)
    big[1] = -1000.0
    ld, l1md = log_d(big), log_one_minus_d(big)
    assert torch.isfinite(ld).all() and torch.isfinite(l1md).all()
    # Z = 10 e^1000: D = 1 - 1/(Z+1), log D ~ 0, log(1 - D) = -log(Z + 1) ~ -(1000 + log 10)
    assert ld[0].item() == pytest.approx(0.0, abs=1e-6)
    assert l1md[0].item() == pytest.approx(-(1000 + math.log(10)), rel=1e-6)
    # Z = 10 e^-1000: log D = log Z - log(Z + 1) ~ -1000 + log 10, log(1 - D) ~ 0
    assert ld[1].item() == pytest.approx(-1000 + math.log(10), rel=1e-6)
    assert l1md[1].item() == pytest.approx(0.0, abs=1e-6)
    # gradients are finite too
    x = big.clone().requires_grad_(True)
    (log_d(x).sum() + log_one_minus_d(x).sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_ssl_losses_against_written_out_formulas():
    g = torch.Generator().manual_seed(1)
    lab, unl, fake = (torch.randn(8, 5, generator=g) * 3 for _ in range(3))
    y = torch.randint(0, 5, (8,), generator=g)
    loss_lab, loss_unl = ssl_d_losses(lab, y, unl, fake)
    l64 = lab.double()
    # -log softmax(l)_y = -l_y + log sum exp l, the sum written out
    ce = (-l64[torch.arange(8), y] + l64.exp().sum(1).log()).mean()
    unl_expected = -0.5 * naive_d(unl).log().mean() - 0.5 * (1 - naive_d(fake)).log().mean()
    assert loss_lab.item() == pytest.approx(ce.item(), rel=1e-5)
    assert loss_unl.item() == pytest.approx(unl_expected.item(), rel=1e-5)
    # with a real target t for the unlabeled data (label smoothing):
    # -1/2 E [t log D(x_u) + (1 - t) log(1 - D(x_u))] - 1/2 E log(1 - D(G(z)))
    t = 0.8
    smoothed = lambda s_u, s_f: unlabeled_objective().d_loss_targets(s_u, s_f, t)  # noqa: E731
    _, got = ssl_d_losses(lab, y, unl, fake, smoothed)
    d_unl = naive_d(unl)
    want = -0.5 * (t * d_unl.log() + (1 - t) * (1 - d_unl).log()).mean()
    want = want - 0.5 * (1 - naive_d(fake)).log().mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_feature_matching_is_the_mean_or_sum_of_squared_differences_of_means():
    """The one feature-matching loss: mean over features for the ssl method (the paper's
    code), sum for the trick's default (the paper's squared norm)."""
    a, b = torch.randn(10, 4), torch.randn(6, 4)
    total = sum((a[:, j].mean() - b[:, j].mean()) ** 2 for j in range(4))
    got_mean = feature_matching_loss(a, b, reduction="mean").item()
    assert got_mean == pytest.approx(total.item() / 4, rel=1e-5)
    assert feature_matching_loss(a, b).item() == pytest.approx(total.item(), rel=1e-5)


def test_labeled_subset_n_per_class_and_seeded():
    _, labels = load_digits_tensors("train")
    a = labeled_subset(labels, 7, seed=1, num_classes=10)
    assert len(a) == 70 and len(set(a.tolist())) == 70
    assert torch.bincount(labels[a], minlength=10).tolist() == [7] * 10
    assert torch.equal(a, labeled_subset(labels, 7, seed=1, num_classes=10))
    assert not torch.equal(a, labeled_subset(labels, 7, seed=2, num_classes=10))


def test_weight_norm_data_init_normalizes_pre_activations():
    torch.manual_seed(0)
    x = torch.rand(500, 30) * 3 + 1
    layer = WNLinear(30, 20)
    layer.initializing = True
    layer(x)
    layer.initializing = False
    y = layer(x).double()
    torch.testing.assert_close(y.mean(0), torch.zeros(20, dtype=torch.double), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        y.var(0, unbiased=False), torch.ones(20, dtype=torch.double), atol=1e-4, rtol=0
    )
    # the effective weight is v g / ||v|| per output unit
    w = layer.v * (layer.g / layer.v.norm(dim=1)).unsqueeze(1)
    torch.testing.assert_close(layer(x), x @ w.T + layer.b)


def test_ssl_discriminator_init_normalizes_every_layer():
    """Without noise, after data_init every layer's pre-activation on the init batch has zero
    mean and unit variance (each layer is initialized on its normalized inputs)."""
    torch.manual_seed(0)
    D = build_discriminator(
        {"name": "ssl_mlp", "hidden": [40, 30, 20], "input_noise": 0.0, "hidden_noise": 0.0},
        (1, 8, 8),
    )
    x = torch.rand(300, 1, 8, 8) * 2 - 1
    D.data_init(x)
    h = (x.reshape(300, -1) + 1) / 2  # the official [0, 1] input range
    for layer in [*D.layers, D.out]:
        pre = layer(h).double()
        assert pre.mean(0).abs().max() < 1e-4
        assert (pre.var(0, unbiased=False) - 1).abs().max() < 1e-3
        h = torch.relu(pre).float()


def test_ssl_generator_output_range_and_latent_mapping():
    G = build_generator({"name": "ssl_mlp", "latent_dim": 100}, (1, 28, 28))
    z = torch.rand(16, 100) * 2 - 1
    x = G(z)
    assert x.shape == (16, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    # the official network on U(0, 1) noise, mapped to [-1, 1]
    u = (z + 1) / 2
    manual = torch.sigmoid(G.out(G.body(u))) * 2 - 1
    torch.testing.assert_close(x.view(16, -1), manual)


SMALL = {
    "generator.hidden": [16, 16],
    "discriminator.hidden": [24, 16],
    "method_options.labels_per_class": 3,
    "method_options.labeled_batch": 12,
    "method_options.fake_batch": 10,
    "method_options.init_batch": 64,
    "method_options.ema_decay": 0.9,
    "schedule.batch_size": 10,
}


def test_ssl_trains_resumes_exactly_and_evaluates(tmp_path, fast_overrides):
    n = 3
    base = {**fast_overrides, "logging.every": 1, **SMALL}
    full = gankit.train("ssl-digits", {**base, "schedule.steps": 2 * n}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["step"] for m in lines] == list(range(1, 2 * n + 1))
    for line in lines:
        for key in ("d_loss", "g_loss", "loss_lab", "loss_unl", "train_err", "p_real"):
            assert math.isfinite(line[key]), (key, line)
    gankit.train("ssl-digits", {**base, "schedule.steps": n}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * n})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    assert set(a["modules"]) == {"generator", "discriminator", "classifier_ema"}
    assert {"labeled", "unlabeled2", "noise"} <= set(a["method"])
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert [m["d_loss"] for m in lines] == [m["d_loss"] for m in resumed.metrics()]

    # gankit eval: the EMA classifier's accuracy on the 360 test digits, computed by hand
    result = gankit.evaluate(full.path, metrics=["accuracy"], progress=False)
    state, _ = load_checkpoint(full.checkpoints()[-1])
    D = build_discriminator({"name": "ssl_mlp", "hidden": [24, 16]}, (1, 8, 8))
    D.load_state_dict(state["modules"]["classifier_ema"])
    x, y = load_digits_tensors("test")
    with torch.no_grad():
        correct = int((D.eval()(x).argmax(1) == y).sum())
    assert result["metrics"]["test_errors"] == 360 - correct
    assert result["metrics"]["accuracy"] == pytest.approx(correct / 360)
    assert result["protocol"]["accuracy"]["classifier"] == "classifier_ema"
    assert (full.path / "eval.json").is_file()
    # the same through the command line
    from gankit.cli import main

    assert main(["eval", str(full.path), "--metrics", "accuracy"]) == 0


def test_ssl_conv_recipe_builds_and_steps(tmp_path, fast_overrides):
    """The convolutional recipe's networks (DCGAN G, DCGAN D with K logits) on 8x8 digits."""
    over = {
        **fast_overrides,
        "data": {"name": "digits"},
        "generator.base_channels": 8,
        "discriminator.base_channels": 8,
        "method_options.labels_per_class": 2,
        "method_options.labeled_batch": 8,
        "method_options.fake_batch": 8,
        "schedule.batch_size": 8,
        "schedule.steps": 2,
    }
    run = gankit.train("ssl-conv-fashion-mnist", over, out=tmp_path / "conv")
    assert math.isfinite(run.metrics()[-1]["d_loss"])


def test_supervised_only_baseline_is_plain_cross_entropy_on_the_labeled_set(tmp_path):
    """unlabeled_weight 0: each step is one Adam step on CE of a labeled batch (checked against
    a hand-written loop from the same start), the generator never changes and the data-dependent
    init sees only the labeled examples."""
    from gankit.api import prepare
    from gankit.data.base import InMemoryData

    over = {
        **SMALL,
        "method_options.unlabeled_weight": 0.0,
        "method_options.ema_decay": 0.0,
        "discriminator.input_noise": 0.0,  # no random layers: the hand loop can follow exactly
        "discriminator.hidden_noise": 0.0,
        "fast.enabled": False,
        "logging.progress": False,
        "logging.tensorboard": False,
    }
    trainer = prepare("ssl-digits", over, out=tmp_path / "sup")
    method = trainer.method
    assert method.supervised_only
    G0 = {k: v.clone() for k, v in method.generator.state_dict().items()}
    D_hand = build_discriminator(
        {"name": "ssl_mlp", "hidden": [24, 16], "input_noise": 0.0, "hidden_noise": 0.0},
        (1, 8, 8),
    )
    D_hand.load_state_dict(method.discriminator.state_dict())
    # the init normalized the labeled examples' first-layer pre-activations
    x_train, y_train = load_digits_tensors("train")
    idx = labeled_subset(y_train, 3, 1, 10)
    with torch.no_grad():
        pre = D_hand.layers[0]((x_train[idx].flatten(1) + 1) / 2)  # the net reads [0, 1]
    torch.testing.assert_close(pre.mean(0), torch.zeros(24), atol=1e-4, rtol=0)
    torch.testing.assert_close(pre.std(0, unbiased=False), torch.ones(24), atol=1e-3, rtol=0)

    labeled = InMemoryData(x_train[idx], y_train[idx], seed=trainer.cfg.seed + 7, num_classes=10)
    opt = torch.optim.Adam(D_hand.parameters(), lr=0.003, betas=(0.5, 0.999), foreach=False)
    for step in range(1, 4):
        logs = method.train_step(step)
        x, y = labeled.batch(12)
        loss = torch.nn.functional.cross_entropy(D_hand(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert logs["loss_lab"].item() == pytest.approx(loss.item(), rel=1e-5)
    for key, value in D_hand.state_dict().items():
        torch.testing.assert_close(
            method.discriminator.state_dict()[key], value, atol=1e-6, rtol=1e-5
        )
    for key, value in method.generator.state_dict().items():
        assert torch.equal(value, G0[key]), key
