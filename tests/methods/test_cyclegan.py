"""CycleGAN: losses against their formulas, the learning-rate schedule against its formula,
the two-domain data, the translation metrics against known translators, and training end to
end with an exact resume."""

import math
from types import SimpleNamespace

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.data import build_dataset
from gankit.data.domains import apply_transform, invert_transform
from gankit.methods.critic import Critic
from gankit.methods.cyclegan import cycle_loss, identity_loss
from gankit.methods.translation import LinearDecay, TranslationSampler, paper_scales
from gankit.metrics.translation import translation_metrics
from gankit.objectives import build_objective

TINY = {
    "generator.base_channels": 4,
    "generator.n_blocks": 1,
    "discriminator.base_channels": 4,
    "schedule.batch_size": 4,
    "method_options.pool_size": 3,
    "method_options.decay_start": 2,
    "method_options.decay_steps": 3,
}


# -- losses -----------------------------------------------------------------------------------
def test_cycle_and_identity_losses_against_the_formulas():
    a = torch.tensor([[[[0.0, 1.0], [-1.0, 0.5]]]])
    b = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]]])
    rec_a = torch.tensor([[[[0.5, 1.0], [-1.0, 0.0]]]])  # |diff| 0.5, 0, 0, 0.5 -> mean 0.25
    rec_b = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # |diff| 1, 0, 0, 0 -> mean 0.25
    assert cycle_loss(a, rec_a, b, rec_b, 10.0).item() == pytest.approx(10 * (0.25 + 0.25))
    f_a = a + 0.2  # ||F(a) - a||_1 = 0.2
    g_b = b - 0.4  # ||G(b) - b||_1 = 0.4
    got = identity_loss(a, f_a, b, g_b, 10.0, 0.5).item()
    assert got == pytest.approx(0.5 * 10 * (0.4 + 0.2))


def paper_losses(name: str):
    """(d_loss, g_loss) of a discriminator's Critic at the papers' scale, as the methods run
    them (no tricks, no penalties)."""
    objective = build_objective({"name": name})
    cfg, fast = SimpleNamespace(regularizers=[]), SimpleNamespace(compile=False)
    critic = Critic(cfg, objective, [], None, None, fast, paper_scales(objective))
    return critic.d_loss, critic.g_loss


def test_least_squares_at_the_papers_scale():
    d_loss, g_loss = paper_losses("least_squares")
    real, fake = torch.tensor([0.5, 1.5]), torch.tensor([0.2, -0.4])
    # D: (E(D(b) - 1)^2 + E D(G(a))^2) / 2; G: E(D(G(a)) - 1)^2
    assert d_loss(real, fake).item() == pytest.approx(((0.25 + 0.25) / 2 + (0.04 + 0.16) / 2) / 2)
    assert g_loss(fake).item() == pytest.approx((0.64 + 1.96) / 2)
    d_ce, g_ce = paper_losses("non_saturating")
    sp = torch.nn.functional.softplus
    assert d_ce(real, fake).item() == pytest.approx(
        ((sp(-real).mean() + sp(fake).mean()) / 2).item()
    )
    assert g_ce(fake).item() == pytest.approx(sp(-fake).mean().item())


# -- learning-rate schedule -------------------------------------------------------------------
def test_linear_decay_values_against_the_formula():
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.1)
    sched = LinearDecay({"g": opt}, start=4, length=4)
    got = []
    for step in range(10):
        sched.apply(step)
        got.append(opt.param_groups[0]["lr"])
    # 4 updates at the base rate, then 4 at 0.1 (1 - k / 5), k = 1..4, then 0
    expected = [0.1] * 4 + [0.1 * (1 - k / 5) for k in range(1, 5)] + [0.0, 0.0]
    assert got == pytest.approx(expected)


def test_linear_decay_keeps_an_outside_scale_and_resumes():
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=1.0)
    sched = LinearDecay({"g": opt}, start=0, length=9)
    sched.apply(0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.9)
    opt.param_groups[0]["lr"] *= 0.5  # the divergence guard's rollback
    sched.apply(1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.8)
    other = LinearDecay({"g": opt}, start=0, length=9)
    other.load_state_dict(sched.state_dict())
    other.apply(2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.7)


def test_default_decay_is_the_second_half_of_training(tmp_path, fast_overrides):
    over = {**fast_overrides, **TINY, "logging.every": 1, "schedule.steps": 4}
    del over["method_options.decay_start"], over["method_options.decay_steps"]
    run = gankit.train("cyclegan-digits-invert", over, out=tmp_path / "r")
    lrs = [m["lr"] for m in run.metrics()]
    # start 2, length 2: 2e-4 x [1, 1, 2/3, 1/3]
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3], rel=1e-5)


# -- data -------------------------------------------------------------------------------------
def test_unpaired_domains_are_disjoint_halves_and_paired_ones_aligned():
    data = build_dataset({"name": "transformed", "transform": "invert"}, seed=0)
    a, ya = data.images("a")
    b, yb = data.images("b")
    assert len(a) + len(b) == 1437 and abs(len(a) - len(b)) <= 1
    # B is the inversion of the other half: no image of A appears (inverted) in B
    back = invert_transform("invert", b).flatten(1)
    dist = torch.cdist(a.flatten(1), back)
    assert dist.min() > 0
    paired = build_dataset({"name": "transformed", "transform": "rotate90", "paired": True}, 0)
    x, y, labels = paired.batch_pairs(8)
    assert torch.equal(y, torch.rot90(x, 1, dims=(2, 3)))
    assert labels.shape == (8,)


def test_domain_streams_resume_exactly():
    d1 = build_dataset({"name": "transformed"}, seed=3)
    d1.batch_a(500), d1.batch_b(700)
    d2 = build_dataset({"name": "transformed"}, seed=3)
    d2.load_state_dict(d1.state_dict())
    for _ in range(3):
        assert torch.equal(d1.batch_a(300)[0], d2.batch_a(300)[0])
        assert torch.equal(d1.batch_b(300)[0], d2.batch_b(300)[0])


@pytest.mark.parametrize("name", ["invert", "rotate90", "flip"])
def test_invertible_transforms(name):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert torch.equal(invert_transform(name, apply_transform(name, x)), x)


def test_blur_and_edges_stay_in_range():
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    for name in ("blur", "edges"):
        y = apply_transform(name, x)
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


# -- metrics ----------------------------------------------------------------------------------
class Invert(torch.nn.Module):
    def forward(self, x):
        return -x


class Zero(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_translation_metrics_of_known_translators():
    from gankit.metrics.classifier import accuracy, load_classifier

    data = build_dataset({"name": "transformed", "split": "test"}, seed=0)
    clf = load_classifier("digits")
    exact = translation_metrics(Invert(), data, Invert(), clf)
    a, ya = data.images("a")
    b, yb = data.images("b")
    assert exact["cycle_error_a"] == 0 and exact["cycle_error_b"] == 0
    # T^-1(G(a)) = a: label preservation equals the classifier's accuracy on A
    assert exact["label_acc_ab"] == exact["classifier_acc"] == accuracy(clf, a, ya)
    assert exact["label_acc_ba"] == accuracy(clf, -b, yb)
    assert exact["label_acc_ba"] > 0.9
    bad = translation_metrics(Zero(), data, Zero(), clf)
    assert bad["cycle_error_a"] == pytest.approx(a.abs().mean().item())
    assert bad["label_acc_ab"] == pytest.approx((ya == accuracy_class(clf)).float().mean())


def accuracy_class(clf):
    """The class the classifier gives a blank (all 0) image."""
    return clf(torch.zeros(1, 1, 8, 8))[1].argmax(1)


# -- sampling -----------------------------------------------------------------------------------
def test_sampler_translates_its_bank_and_draws_pairs():
    bank = torch.arange(6.0).view(6, 1, 1, 1)
    s = TranslationSampler(Invert(), bank)
    assert s(torch.zeros(8, 3)).flatten().tolist() == [-0, -1, -2, -3, -4, -5, -0, -1]
    grid = s.sample_grid(torch.zeros(20, 3))  # r = 4: 16 images, 8 (source, translation) pairs
    assert grid.shape == (16, 1, 1, 1)
    assert grid.flatten().tolist()[:6] == [0, -0, 1, -1, 2, -2]


# -- end to end ---------------------------------------------------------------------------------
def test_trains_and_resumes_exactly(tmp_path, fast_overrides):
    n = 3
    base = {**fast_overrides, **TINY, "logging.every": 1}
    full = gankit.train("cyclegan-digits-invert", {**base, "schedule.steps": 2 * n}, tmp_path / "f")
    lines = full.metrics()
    for line in lines:
        for key in ("d_loss", "g_loss", "adv", "cycle", "identity", "d_a", "d_b", "lr"):
            assert math.isfinite(line[key]), (key, line)
    gankit.train("cyclegan-digits-invert", {**base, "schedule.steps": n}, out=tmp_path / "h")
    resumed = gankit.resume(tmp_path / "h", {"schedule.steps": 2 * n})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert a["method"]["pool_a"]["count"] == 3  # full, and in the checkpoint
    assert [m["g_loss"] for m in lines] == [m["g_loss"] for m in resumed.metrics()]
    assert set(a["modules"]) == {"generator", "generator_ba", "discriminator_a", "discriminator_b"}
    assert full.samples()  # the sample grid of (source, translation) pairs
    G = full.generator()
    assert isinstance(G, TranslationSampler)
    result = gankit.open_run(full.path)  # gankit eval's path
    from gankit import evaluate

    scores = evaluate(result.path)["metrics"]
    assert {"cycle_error_a", "cycle_error_b", "label_acc_ab", "label_acc_ba"} <= set(scores)
