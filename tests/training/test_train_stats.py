"""Training statistics (gradient norms, D's probabilities, sample diversity) against hand
computation, and the collapse/divergence warnings on planted cases."""

from __future__ import annotations

import copy
import itertools
import math
import statistics

import torch

import gankit
from gankit.api import fit, prepare
from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.methods.gan import GANMethod
from gankit.training.diagnostics import COOLDOWN, STREAK, WARMUP, Watchdog

TINY = {
    "generator.hidden": 16,
    "generator.depth": 2,
    "discriminator.hidden": 16,
    "discriminator.depth": 2,
    "schedule.batch_size": 32,
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.sample_every": 100000,
    "logging.checkpoint_every": 100000,
}


def _method(objective: str) -> GANMethod:
    cfg = load_recipe("ring8", {**TINY, "objective.name": objective})
    torch.manual_seed(0)
    return GANMethod(cfg, build_dataset(cfg.data, seed=0), torch.device("cpu"))


def _norm_by_loop(module) -> float:
    return math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in module.parameters()))


def test_grad_norms_and_probabilities_equal_hand_computation():
    method = _method("non_saturating")
    G0, D0 = copy.deepcopy(method.generator), copy.deepcopy(method.discriminator)
    noise = copy.deepcopy(method.noise.generator.get_state())
    method.collect_stats = True
    logs = method.train_step(0)

    assert math.isclose(logs["grad_norm/generator"], _norm_by_loop(method.generator), rel_tol=1e-5)
    d_norm = _norm_by_loop(method.discriminator)
    assert math.isclose(logs["grad_norm/discriminator"], d_norm, rel_tol=1e-5)
    # D's scores before its update, on the same real batch and the same noise
    g = torch.Generator().manual_seed(0)
    g.set_state(noise)
    z = torch.randn(32, 2, generator=g)
    with torch.no_grad():
        d_real, d_fake = D0(method.real), D0(G0(z))
    assert torch.allclose(logs["d_real"], d_real.mean(), atol=1e-6)
    assert torch.allclose(logs["p_real"], torch.sigmoid(d_real).mean(), atol=1e-6)
    assert torch.allclose(logs["p_fake"], torch.sigmoid(d_fake).mean(), atol=1e-6)
    r, f = d_real.double().flatten().tolist(), d_fake.double().flatten().tolist()
    pooled = (statistics.pvariance(r) + statistics.pvariance(f)) / 2
    expected = (statistics.mean(r) - statistics.mean(f)) / math.sqrt(pooled)
    assert math.isclose(logs["d_separation"], expected, rel_tol=1e-4)

    method.collect_stats = False  # off the log steps: no norms computed
    assert not any(k.startswith("grad_norm/") for k in method.train_step(1))


def test_no_probabilities_for_scores_that_are_not_logits():
    method = _method("least_squares")
    method.collect_stats = True
    logs = method.train_step(0)
    assert "p_real" not in logs and {"d_real", "grad_norm/discriminator"} <= set(logs)


def test_trainer_logs_stats_at_every_log_step_and_diversity_by_hand(tmp_path):
    trainer = prepare("ring8", {**TINY, "schedule.steps": 30, "logging.every": 10}, tmp_path / "r")
    run = fit(trainer)
    lines = [m for m in run.metrics() if "event" not in m]
    assert [m["step"] for m in lines] == [10, 20, 30]
    keys = {"grad_norm/generator", "grad_norm/discriminator", "p_real", "p_fake", "diversity"}
    assert all(keys <= set(m) and all(math.isfinite(m[k]) for k in keys) for m in lines)

    def mean_distance(x):
        x = x.double().flatten(1)
        pairs = list(itertools.combinations(range(len(x)), 2))
        return sum(float((x[i] - x[j]).norm()) for i, j in pairs) / len(pairs)

    G = trainer.method.generator.eval()
    with torch.no_grad():
        fake = G(trainer.window.diversity_noise)
    real = trainer.data.reference(256)
    expected = mean_distance(fake) / mean_distance(real)
    assert math.isclose(lines[-1]["diversity"], expected, rel_tol=1e-4)


def _warnings(run, kind):
    return [m for m in run.metrics() if m.get("event") == "warning" and m["kind"] == kind]


FROZEN_G = {
    **TINY,
    "optim.generator.lr": 1e-12,  # G frozen (a learning rate must be positive)
    "optim.discriminator.lr": 1e-2,
    "logging.every": 10,
}


def frozen_point_mass(out, overrides):
    """A run whose generator maps every z to one point (all weights 0) and does not learn,
    against a learning discriminator: D wins, and the samples have no diversity."""
    trainer = prepare("ring8", {**FROZEN_G, **overrides}, out)
    with torch.no_grad():
        for p in trainer.method.generator.parameters():
            if p.ndim >= 2:
                p.zero_()
    return fit(trainer)


def test_a_frozen_generator_against_a_learning_d_warns_that_d_wins(tmp_path, caplog):
    run = frozen_point_mass(tmp_path / "r", {"schedule.steps": 300})
    found = _warnings(run, "discriminator_wins")
    assert found, "no discriminator_wins warning"
    steps = [w["step"] for w in found]
    assert len(steps) > 1 and all(b - a >= COOLDOWN * 10 for a, b in zip(steps, steps[1:]))
    lines = {m["step"]: m for m in run.metrics() if "p_real" in m}
    for step in range(steps[0] - 10 * (STREAK - 1), steps[0] + 1, 10):  # the streak
        assert lines[step]["p_real"] > 0.99 and lines[step]["p_fake"] < 0.01
    assert "discriminator wins outright" in found[0]["message"]
    # printed as the divergence guard's warnings are: once per warning
    assert caplog.text.count("the discriminator wins outright") == len(found)


def test_warnings_survive_a_resume_unchanged(tmp_path):
    whole = frozen_point_mass(tmp_path / "whole", {"schedule.steps": 300})
    part = {"schedule.steps": 150, "logging.checkpoint_every": 50}
    frozen_point_mass(tmp_path / "part", part)
    resumed = gankit.resume(tmp_path / "part", {"schedule.steps": 300})
    events = [m for m in whole.metrics() if m.get("event") == "warning"]
    assert events == [m for m in resumed.metrics() if m.get("event") == "warning"]
    assert any(m["step"] > 150 for m in events)  # warned after the resume as without it


def test_a_constant_generator_warns_that_diversity_dropped_and_d_wins(tmp_path):
    # least squares: no probabilities, so D's win is read from the separation of its scores
    run = frozen_point_mass(
        tmp_path / "r", {"schedule.steps": 150, "objective.name": "least_squares"}
    )
    lines = [m for m in run.metrics() if "diversity" in m]
    assert all(m["diversity"] < 1e-3 for m in lines)
    (warning,) = _warnings(run, "low_diversity")
    assert warning["step"] == (WARMUP + STREAK) * 10  # after warm-up, STREAK log steps in a row
    assert "sample diversity dropped" in warning["message"]
    assert "p_real" not in lines[0]
    wins = _warnings(run, "discriminator_wins")[0]
    assert "standard deviations apart" in wins["message"]
    streak = [m for m in lines if wins["step"] - 10 * STREAK < m["step"] <= wins["step"]]
    assert len(streak) == STREAK and all(m["d_separation"] > 5 for m in streak)


def test_watchdog_streaks_and_cooldown():
    dog = Watchdog(every=1)  # D's scores stay far apart: one warning per COOLDOWN log steps
    said = [(i, k) for i in range(1, 40) for k, _ in dog.check(i, {"d_separation": 8.0})]
    assert said == [(s, "discriminator_wins") for s in range(STREAK, 40, COOLDOWN)]

    dog = Watchdog(every=1)  # diversity is judged after the warm-up
    said = [i for i in range(1, 30) if dog.check(i, {"diversity": 0.0})]
    assert said == [WARMUP + STREAK, WARMUP + STREAK + COOLDOWN]

    dog = Watchdog(every=1)  # a broken streak starts over
    wins, even = {"p_real": 0.999, "p_fake": 0.001}, {"p_real": 0.6, "p_fake": 0.4}
    seq = [wins, wins, even, wins, wins, wins]
    said = [bool(dog.check(i, v)) for i, v in enumerate(seq)]
    assert said == [False, False, False, False, False, True]
    # the probabilities decide where they exist, whatever the separation says
    assert not Watchdog(1).check(1, {**even, "d_separation": 9.0})
    copy_ = Watchdog(every=1)
    copy_.load_state_dict(dog.state_dict())
    assert copy_.state_dict() == dog.state_dict()
