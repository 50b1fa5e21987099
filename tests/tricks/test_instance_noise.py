"""Instance noise: the annealing schedule by its formula and the noise D really sees."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.tricks import TRICKS


def noise_trick(make_method, **options):
    method = make_method({"tricks": [{"name": "instance_noise", **options}]})
    return method, method.tricks[0]


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.5), (1, 0.45), (3, 0.35), (5, 0.25), (9, 0.05), (10, 0.0), (11, 0.0), (1000, 0.0)],
)
def test_linear_schedule(make_method, step, expected):
    _, trick = noise_trick(make_method, std=0.5, anneal_steps=10, schedule="linear")
    # std (1 - t / T)
    assert trick.std_at(step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.5),
        (2, 0.5 * 10 ** (-2 * 2 / 10)),  # 100^(-t/T) = 10^(-2t/T)
        (5, 0.05),  # half way: 100^(-1/2) = 1/10
        (9, 0.5 * 10 ** (-1.8)),
        (10, 0.0),
        (25, 0.0),
    ],
)
def test_exponential_schedule(make_method, step, expected):
    _, trick = noise_trick(make_method, std=0.5, anneal_steps=10, schedule="exponential")
    assert trick.std_at(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_exponential_reaches_one_percent_at_the_end(make_method):
    _, trick = noise_trick(make_method, std=2.0, anneal_steps=1000, schedule="exponential")
    assert trick.std_at(999) == pytest.approx(0.02, rel=0.01)  # 1% of std just before T
    assert trick.std_at(1000) == 0.0


def test_default_anneal_steps_is_the_run_length(make_method):
    method = make_method({"schedule.steps": 37, "tricks": [{"name": "instance_noise"}]})
    trick = method.tricks[0]
    assert trick.anneal_steps == 37 and trick.std == 0.1 and trick.schedule == "linear"
    assert trick.std_at(36) == pytest.approx(0.1 / 37)
    assert trick.std_at(37) == 0.0


def test_resume_with_more_steps_keeps_the_schedule_it_started_with(make_method):
    first = make_method({"schedule.steps": 37, "tricks": [{"name": "instance_noise"}]})
    longer = make_method({"schedule.steps": 100, "tricks": [{"name": "instance_noise"}]})
    assert longer.tricks[0].anneal_steps == 100
    longer.load_extra_state(first.extra_state())
    assert longer.tricks[0].anneal_steps == 37
    assert longer.tricks[0].std_at(40) == 0.0  # annealed away at 37, as the run began


def test_no_noise_after_annealing_returns_the_input(make_method):
    _, trick = noise_trick(make_method, anneal_steps=5)
    x = torch.randn(8, 2)
    assert trick.perturb(x, 5) is x
    assert trick.perturb(x, 50) is x
    assert not torch.equal(trick.perturb(x, 4), x)


class Recorder(nn.Module):
    """D that remembers every input it is given."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.inner(x)


def recorded_step(method, step):
    """One training step; returns (clean real, clean fake, what D saw in each call)."""
    clean = {}
    batch = method.data.batch

    def record_batch(n):
        x, y = batch(n)
        clean["real"] = x.clone()
        return x, y

    method.data.batch = record_batch
    hook = method.generator.register_forward_hook(
        lambda m, i, out: clean.__setitem__("fake", out.detach().clone())
    )
    D = method.discriminator = Recorder(method.discriminator)
    try:
        method.train_step(step)
    finally:
        hook.remove()
        method.data.batch = batch
        method.discriminator = D.inner
    return clean["real"], clean["fake"], D.inputs


@pytest.mark.parametrize("step, std", [(0, 0.4), (5, 0.2)])
def test_noise_reaches_real_and_fake_inputs_of_d(make_method, step, std):
    method, _ = noise_trick(make_method, std=0.4, anneal_steps=10)
    method.batch_size = 2048  # many draws: the empirical std is within a few percent
    real, fake, seen = recorded_step(method, step)
    assert len(seen) == 3  # D step: real, fake; G step: fake
    noises = [seen[0] - real, seen[1] - fake, seen[2] - fake]
    for noise in noises:
        assert noise.shape == real.shape
        assert noise.std().item() == pytest.approx(std, rel=0.05)
        assert abs(noise.mean().item()) < 0.05 * std
    # independent draws for every input
    assert not torch.allclose(noises[1], noises[2])
    assert abs(torch.corrcoef(torch.stack([noises[0].flatten(), noises[1].flatten()]))[0, 1]) < 0.1


def test_after_annealing_d_sees_the_clean_inputs(make_method):
    method, _ = noise_trick(make_method, std=0.4, anneal_steps=10)
    real, fake, seen = recorded_step(method, 10)
    assert torch.equal(seen[0], real)
    assert torch.equal(seen[1], fake)
    assert torch.equal(seen[2], fake)


def test_noise_stream_is_seeded_and_checkpointed(make_method):
    _, a = noise_trick(make_method)
    _, b = noise_trick(make_method)
    x = torch.zeros(4, 2)
    assert torch.equal(a.perturb(x, 0), b.perturb(x, 0))
    saved = a.state_dict()["generator"].clone()
    first = a.perturb(x, 0)
    a.load_state_dict({"generator": saved})
    assert torch.equal(a.perturb(x, 0), first)
    other = make_method({"seed": 3, "tricks": [{"name": "instance_noise"}]}).tricks[0]
    assert not torch.equal(other.perturb(x, 0), first)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"std": 0.0}, "std: must be > 0"),
        ({"std": -1.0}, "std: must be > 0"),
        ({"anneal_steps": 0}, "anneal_steps: must be >= 1"),
    ],
)
def test_invalid_options(options, match):
    with pytest.raises(ConfigError, match=match):
        TRICKS.get("instance_noise")(**options)


def test_unknown_schedule_is_refused(make_method):
    with pytest.raises(ConfigError, match="schedule"):
        make_method({"tricks": [{"name": "instance_noise", "schedule": "cosine"}]})
