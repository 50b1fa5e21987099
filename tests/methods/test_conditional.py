"""Conditional GAN with a projection discriminator and ACGAN (methods/conditional.py): losses
and scores against hand computations, the conditional generator's labels, training end to end
with exact resume, and Run.sample(labels=...)."""

import math

import numpy as np
import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.cli import main
from gankit.methods.conditional import (
    ACGANDiscriminator,
    ConditionalGenerator,
    ProjectionDiscriminator,
    acgan_losses,
    add_class_logits,
)
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective


def naive_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of -log softmax(l)_y with the log-sum-exp written out (max-shifted), float64."""
    l64 = logits.double()
    m = l64.max(1).values
    lse = m + (l64 - m[:, None]).exp().sum(1).log()
    return (lse - l64[torch.arange(len(y)), y]).mean()


def naive_log_sigmoid(s: torch.Tensor) -> torch.Tensor:
    return -torch.log1p(torch.exp(-s.double()))


def test_acgan_losses_against_written_out_cross_entropies():
    g = torch.Generator().manual_seed(0)
    s_real, s_fake = torch.randn(16, generator=g) * 2, torch.randn(16, generator=g) * 2
    k_real, k_fake = torch.randn(16, 10, generator=g) * 3, torch.randn(16, 10, generator=g) * 3
    y_real, y_fake = (
        torch.randint(0, 10, (16,), generator=g),
        torch.randint(0, 10, (16,), generator=g),
    )
    obj = build_objective({"name": "non_saturating"})
    source_loss = obj.d_loss(s_real, s_fake)
    d_loss, g_class = acgan_losses(source_loss, k_real, y_real, k_fake, y_fake, 0.5)
    # source: -E log D(x) - E log(1 - D(G(z))), D = sigmoid; 1 - sigmoid(s) = sigmoid(-s)
    source = -naive_log_sigmoid(s_real).mean() - naive_log_sigmoid(-s_fake).mean()
    expected = source + 0.5 * (naive_ce(k_real, y_real) + naive_ce(k_fake, y_fake))
    assert d_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert g_class.item() == pytest.approx(naive_ce(k_fake, y_fake).item(), rel=1e-5)


def test_acgan_class_loss_variants_against_written_out_cross_entropies():
    """d_class_loss real: D's class term on the real images only; twin (TAC-GAN): the main
    classifier (first K logits) on real images, the twin (last K) on the fakes, and G's class
    term CE(main) - CE(twin) on its samples."""
    from gankit.methods.conditional import acgan_generator_class_loss

    g = torch.Generator().manual_seed(1)
    k_real, k_fake = torch.randn(8, 20, generator=g) * 2, torch.randn(8, 20, generator=g) * 2
    y_real = torch.randint(0, 10, (8,), generator=g)
    y_fake = torch.randint(0, 10, (8,), generator=g)
    source = torch.tensor(0.7)
    d_real, _ = acgan_losses(source, k_real[:, :10], y_real, k_fake[:, :10], y_fake, 2.0, "real")
    assert d_real.item() == pytest.approx(0.7 + 2.0 * naive_ce(k_real[:, :10], y_real).item())
    d_twin, g_main = acgan_losses(source, k_real, y_real, k_fake, y_fake, 2.0, "twin")
    want = 0.7 + 2.0 * (naive_ce(k_real[:, :10], y_real) + naive_ce(k_fake[:, 10:], y_fake))
    assert d_twin.item() == pytest.approx(want.item(), rel=1e-6)
    assert g_main.item() == pytest.approx(naive_ce(k_fake[:, :10], y_fake).item(), rel=1e-6)
    g_twin = acgan_generator_class_loss(k_fake, y_fake, "twin")
    want_g = naive_ce(k_fake[:, :10], y_fake) - naive_ce(k_fake[:, 10:], y_fake)
    assert g_twin.item() == pytest.approx(want_g.item(), rel=1e-6)
    plain = acgan_generator_class_loss(k_fake[:, :10], y_fake, "real_and_fake")
    assert plain.item() == pytest.approx(naive_ce(k_fake[:, :10], y_fake).item(), rel=1e-6)


def test_acgan_discriminator_splits_source_and_class_logits():
    D = build_discriminator({"name": "mlp", "hidden": 8, "depth": 2}, (2,))
    A = ACGANDiscriminator(add_class_logits(D, 4))
    x = torch.randn(5, 2)
    s, k = A(x)
    out = D.out(D.body(x))  # (5, 1 + 4)
    assert s.shape == (5,) and k.shape == (5, 4)
    torch.testing.assert_close(s, out[:, 0])
    torch.testing.assert_close(k, out[:, 1:])


def test_projection_discriminator_against_hand_computation():
    torch.manual_seed(0)
    D = build_discriminator(
        {"name": "mlp", "hidden": 12, "depth": 2, "activation": "relu"}, (1, 4, 4)
    )
    P = ProjectionDiscriminator(D, 3)
    with torch.no_grad():
        P.embed.weight.normal_()  # larger than the init, so the term matters
    x, y = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    phi = D.body(x.reshape(6, -1))  # phi(x): the last hidden layer
    psi = phi @ D.out.weight[0] + D.out.bias[0]  # psi(phi(x))
    proj = torch.stack([P.embed.weight[int(c)] @ phi[i] for i, c in enumerate(y)])
    torch.testing.assert_close(P(x, y), psi + proj)


def test_conditional_generator_labels():
    torch.manual_seed(0)
    base = build_generator({"name": "mlp", "latent_dim": 5 + 3, "hidden": 8, "depth": 1}, (2,))
    G = ConditionalGenerator(base, num_classes=4, embed_dim=3).eval()
    z = torch.randn(10, 5)
    by_hand = base(torch.cat([z, G.embed.weight[torch.arange(10) % 4]], 1))
    torch.testing.assert_close(G(z), by_hand)  # row i: class i mod K
    torch.testing.assert_close(G(z, labels=torch.arange(10) % 4), by_hand)
    torch.testing.assert_close(G(z, labels=2), base(torch.cat([z, G.embed.weight[[2] * 10]], 1)))
    with pytest.raises(ValueError):
        G(z, labels=4)


SMALL_DCGAN = {"generator.base_channels": 8, "discriminator.base_channels": 8}
CASES = {
    "cgan-digits": {},
    "acgan-fashion-mnist": {
        "data": {"name": "digits"},  # no Fashion-MNIST needed
        "generator.extra_layers": 1,
        "discriminator.extra_layers": 1,
    },
}


@pytest.mark.parametrize("preset", list(CASES))
def test_trains_and_resumes_exactly(tmp_path, fast_overrides, preset, capsys):
    n = 3
    base = {
        **fast_overrides,
        "logging.every": 1,
        **SMALL_DCGAN,
        "schedule.batch_size": 16,
        **CASES[preset],
    }
    full = gankit.train(preset, {**base, "schedule.steps": 2 * n}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["step"] for m in lines] == list(range(1, 2 * n + 1))
    extra = ("acc_real", "acc_fake") if preset.startswith("acgan") else ("d_real", "d_fake")
    for line in lines:
        for key in ("d_loss", "g_loss", *extra):
            assert math.isfinite(line[key]), (key, line)
    gankit.train(preset, {**base, "schedule.steps": n}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * n})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    assert "labels" in a["method"]  # the generated-label stream
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert [(m["d_loss"], m["g_loss"]) for m in lines] == [
        (m["d_loss"], m["g_loss"]) for m in resumed.metrics()
    ]

    # sampling: z only gives class i mod K; labels= asks for classes
    run = gankit.open_run(full.path)
    default = run.sample(12, seed=3)
    torch.testing.assert_close(default, run.sample(12, seed=3, labels=[i % 10 for i in range(12)]))
    sevens = run.sample(4, seed=3, labels=7)
    G = run.generator()
    dim = run.config.generator["latent_dim"]
    z = torch.randn(4, dim, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(sevens, G(z, labels=7))
    with pytest.raises(gankit.errors.GankitError):
        run.sample(4, labels=10)

    # gankit sample --labels: the list repeated to --n samples
    assert main(["sample", str(full.path), "--n", "5", "--labels", "2,5",
                 "--out", str(tmp_path / "s.npy")]) == 0  # fmt: skip
    torch.testing.assert_close(
        torch.from_numpy(np.load(tmp_path / "s.npy")), run.sample(5, labels=[2, 5, 2, 5, 2])
    )
    assert main(["sample", str(full.path), "--labels", "two", "--out", str(tmp_path / "t.png")])
    assert "--labels 'two': expected a class number" in capsys.readouterr().err
    # gankit eval's class_accuracy: one score per class and their mean
    result = gankit.evaluate(full.path, metrics=["class_accuracy"], n_fake=20, progress=False)
    per_class = [result["metrics"][f"class_accuracy/{c}"] for c in range(10)]
    assert all(0 <= a <= 1 for a in per_class)
    assert result["metrics"]["class_accuracy"] == pytest.approx(sum(per_class) / 10)
    assert result["protocol"]["class_accuracy"]["n_per_class"] == 2


def test_conditional_refuses_unlabeled_data(tmp_path, fast_overrides):
    data = {"name": "random_images", "channels": 1, "size": 8, "n": 64}
    for preset in ("cgan-digits", "ssl-digits"):
        with pytest.raises(gankit.errors.ConfigError, match="labeled"):
            gankit.train(
                preset,
                {**fast_overrides, "data": data, "schedule.steps": 1},
                out=tmp_path / preset,
            )


@pytest.mark.parametrize("variant", ["real", "twin"])
def test_acgan_class_loss_variants_train_and_resume_exactly(tmp_path, fast_overrides, variant):
    base = {
        **fast_overrides,
        **SMALL_DCGAN,
        **CASES["acgan-fashion-mnist"],
        "logging.every": 1,
        "schedule.batch_size": 16,
        "method_options.d_class_loss": variant,
    }
    full = gankit.train("acgan-fashion-mnist", {**base, "schedule.steps": 4}, out=tmp_path / "f")
    gankit.train("acgan-fashion-mnist", {**base, "schedule.steps": 2}, out=tmp_path / "h")
    resumed = gankit.resume(tmp_path / "h", {"schedule.steps": 4})
    a, b = final_state(full), final_state(resumed)
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    weights = a["modules"]["discriminator"]
    (out_key,) = [k for k in weights if k.endswith("out.weight")]
    out_rows = weights[out_key].shape[0]
    assert out_rows == (1 + 20 if variant == "twin" else 1 + 10)


def test_acgan_refuses_an_unknown_class_loss():
    with pytest.raises(gankit.ConfigError, match="must be real_and_fake, real or twin"):
        gankit.load_recipe("acgan-fashion-mnist", {"method_options.d_class_loss": "fake"})
