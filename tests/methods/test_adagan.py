"""AdaGAN: the paper's reweighting on a hand-worked case, the weighted sampler, the mixture's
split of rows, and end-to-end training with an exact resume."""

import math

import torch
from state_equality import assert_same, final_state

import gankit
from gankit.methods.adagan import (
    AdaGANMixture,
    WeightedSampler,
    adagan_weights,
    mixture_assignment,
)


def test_reweighting_against_the_papers_rule_by_hand():
    # N = 4 points, beta = 1/2: w_i = (lambda - h_i / 2)_+ / (N beta) = (lambda - h_i / 2)_+ / 2.
    # Keeping the 3 smallest h (0, 1, 2): 3 lambda - (0 + 1 + 2) / 2 = 2 (sum w = 1), so
    # lambda = 7/6, which lies in [(1 - beta) h_(3), (1 - beta) h_(4)] = [1, 3] (keeping 2
    # points gives lambda = 5/4 > (1 - beta) * 2 = 1: inconsistent). Then
    # w = (7/6 / 2, (7/6 - 1/2) / 2, (7/6 - 1) / 2, 0) = (7/12, 4/12, 1/12, 0): h = 6 clipped to 0.
    h = torch.tensor([2.0, 6.0, 0.0, 1.0])  # shuffled
    w = adagan_weights(h, 0.5)
    expected = torch.tensor([1 / 12, 0.0, 7 / 12, 4 / 12], dtype=torch.float64)
    assert torch.allclose(w, expected, atol=1e-12)
    assert math.isclose(float(w.sum()), 1.0, abs_tol=1e-12)
    assert w[1] == 0


def test_reweighting_edge_cases():
    # equal ratios: no point is preferred; beta = 1 (the first component): uniform
    assert torch.allclose(
        adagan_weights(torch.ones(5), 0.3), torch.full((5,), 0.2, dtype=torch.float64)
    )
    assert torch.allclose(
        adagan_weights(torch.tensor([0.0, 9.0]), 1.0), torch.full((2,), 0.5, dtype=torch.float64)
    )
    # beta = 1/4, h = (0, 4): keeping both: lambda = (1 + 3/4 * 4) / 2 = 2 < 3/4 * 4 = 3,
    # inconsistent; keeping one: lambda = 1, w = (1 / 1, 0)
    assert torch.allclose(
        adagan_weights(torch.tensor([0.0, 4.0]), 0.25),
        torch.tensor([1.0, 0.0], dtype=torch.float64),
    )
    w = adagan_weights(torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 5, 0.2)
    assert math.isclose(float(w.sum()), 1.0, abs_tol=1e-9) and (w >= 0).all()


def test_weighted_sampler_frequencies_match_the_weights():
    x = torch.arange(4.0).view(4, 1)
    sampler = WeightedSampler(x, seed=3)
    sampler.set_weights(torch.tensor([0.5, 0.3, 0.2, 0.0]))
    draws = torch.cat([sampler.batch(1000) for _ in range(40)]).view(-1).long()
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2, 0.0], dtype=torch.float64), atol=0.015)
    assert freq[3] == 0
    # seeded and resumable
    state = sampler.state_dict()
    a = sampler.indices(50)
    sampler.load_state_dict(state)
    assert torch.equal(a, sampler.indices(50))


def test_mixture_splits_rows_by_weight():
    which = mixture_assignment(1000, torch.tensor([0.5, 0.25, 0.25, 0.0]))
    counts = torch.bincount(which, minlength=4)
    assert (counts - torch.tensor([500, 250, 250, 0])).abs().max() <= 3
    gens = [torch.nn.Linear(2, 2) for _ in range(3)]
    mix = AdaGANMixture(gens)
    mix.weights.copy_(torch.tensor([0.0, 1.0, 0.0]))
    z = torch.randn(7, 2)
    assert torch.equal(mix(z), gens[1](z))


SMALL = {
    "generator.hidden": 16,
    "generator.depth": 2,
    "discriminator.hidden": 16,
    "discriminator.depth": 2,
    "schedule.batch_size": 16,
    "method_options.rounds": 2,
    "method_options.steps_per_round": 4,
    "method_options.classifier_steps": 2,
    "method_options.n_points": 300,
}


def test_trains_and_resumes_exactly(tmp_path, fast_overrides):
    base = {**fast_overrides, "logging.every": 1, **SMALL}
    # round 0: steps 1-4 (GAN); round 1: steps 5-6 classifier, reweighting, steps 7-8 GAN
    full = gankit.train("adagan-ring8", {**base, "schedule.steps": 8}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["step"] for m in lines] == list(range(1, 9))
    assert [m["round"] for m in lines] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(math.isfinite(m["c_loss"]) for m in lines[4:6])
    assert all(math.isfinite(m["d_loss"]) and math.isfinite(m["g_loss"]) for m in lines[6:])
    assert 0 <= lines[6]["w_zero"] < 1

    gankit.train("adagan-ring8", {**base, "schedule.steps": 5}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 8})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 8
    assert set(a["modules"]) == {"generator", "discriminator", "classifier"}
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    weights = a["modules"]["generator"]["weights"]
    assert torch.allclose(weights, torch.tensor([0.5, 0.5]))  # beta_1 = 1/2
    sampler_w = a["method"]["sampler"]["weights"]
    assert math.isclose(float(sampler_w.sum()), 1.0, abs_tol=1e-9)
    G = full.generator(ema=False)
    assert isinstance(G, AdaGANMixture)
    assert full.sample(9, seed=1).shape == (9, 2)
