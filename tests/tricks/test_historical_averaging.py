"""Historical averaging: the penalty against parameter snapshots averaged by hand, its state in
checkpoints, and exact resume of runs whose tricks keep state (running means, RNG streams)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import gankit
from gankit.api import prepare
from gankit.errors import ConfigError
from gankit.training.checkpoint import load_checkpoint
from gankit.tricks import TRICKS


def snapshot(module: nn.Module) -> list[np.ndarray]:
    return [p.detach().double().numpy().copy() for p in module.parameters()]


def penalty_by_hand(weight: float, history: list[list[np.ndarray]]) -> float:
    """weight * sum over parameters of ||theta_k - mean(theta_0, ..., theta_k)||^2, where
    theta_k = history[-1] are the current parameters."""
    current = history[-1]
    total = 0.0
    for i, p in enumerate(current):
        mean = np.mean([snap[i] for snap in history], axis=0)
        total += float(((p - mean) ** 2).sum())
    return weight * total


def test_penalty_with_toy_players_and_plain_sgd():
    torch.manual_seed(0)
    players = SimpleNamespace(generator=nn.Linear(3, 2), discriminator=nn.Linear(2, 1))
    trick = TRICKS.get("historical_averaging")(weight=0.3)
    trick.attach(players)
    opts = {
        "g": torch.optim.SGD(players.generator.parameters(), lr=0.1),
        "d": torch.optim.SGD(players.discriminator.parameters(), lr=0.1),
    }
    modules = {"g": players.generator, "d": players.discriminator}
    history = {k: [snapshot(m)] for k, m in modules.items()}
    x = torch.randn(8, 3)
    for step in range(6):
        for player, hook in (("d", trick.d_penalty), ("g", trick.g_penalty)):
            penalty = hook(None)
            expected = penalty_by_hand(0.3, history[player])
            assert penalty.item() == pytest.approx(expected, rel=1e-5, abs=1e-9), (step, player)
            out = players.discriminator(players.generator(x)).pow(2).mean()
            opts[player].zero_grad()
            (out + penalty).backward()
            opts[player].step()
            trick.after_step(player)
            history[player].append(snapshot(modules[player]))
        # the running mean is the mean of every snapshot so far, the initial one included
        for player in ("g", "d"):
            assert trick.counts[player] == step + 2
            for i, m in enumerate(trick.means[player]):
                by_hand = np.mean([s[i] for s in history[player]], axis=0)
                np.testing.assert_allclose(m.double().numpy(), by_hand, rtol=1e-5, atol=1e-7)
    assert penalty.item() > 0


def test_penalty_pulls_toward_the_mean():
    """Its gradient is 2 w (theta - mean): a step of plain SGD on the penalty alone moves the
    parameters toward the running mean."""
    players = SimpleNamespace(generator=nn.Linear(2, 2), discriminator=nn.Linear(2, 1))
    trick = TRICKS.get("historical_averaging")(weight=0.5)
    trick.attach(players)
    p = players.discriminator.weight
    with torch.no_grad():
        p.add_(1.0)  # theta now differs from the running mean (theta_0) by 1 everywhere
    penalty = trick.d_penalty(None)
    assert penalty.item() == pytest.approx(0.5 * p.numel())
    penalty.backward()
    torch.testing.assert_close(p.grad, torch.full_like(p, 2 * 0.5 * 1.0))


@pytest.mark.parametrize("players", ["both", "generator", "discriminator"])
def test_penalty_in_training_matches_snapshots(make_method, players):
    method = make_method(
        {
            "tricks": [{"name": "historical_averaging", "weight": 0.7, "players": players}],
            # steps large enough that theta - mean is far above float32 rounding
            "optim.generator.lr": 0.01,
            "optim.discriminator.lr": 0.01,
        }
    )
    history = {"g": [snapshot(method.generator)], "d": [snapshot(method.discriminator)]}
    active = {"both": {"g", "d"}, "generator": {"g"}, "discriminator": {"d"}}[players]
    for step in range(5):
        logs = method.train_step(step)
        # n_critic 1: D's penalty is computed on the parameters before this step's D update,
        # G's on those before its update, against the means of all snapshots up to then
        for player in ("g", "d"):
            key = f"trick/historical_averaging/{player}"
            if player in active:
                expected = penalty_by_hand(0.7, history[player])
                assert logs[key].item() == pytest.approx(expected, rel=1e-4, abs=1e-10)
            else:
                assert key not in logs
        history["g"].append(snapshot(method.generator))
        history["d"].append(snapshot(method.discriminator))
    assert all(logs[f"trick/historical_averaging/{p}"].item() > 0 for p in active)


def test_running_mean_counts_every_discriminator_step(make_method):
    method = make_method({"tricks": [{"name": "historical_averaging"}], "schedule.n_critic": 3})
    trick = method.tricks[0]
    for step in range(2):
        method.train_step(step)
    assert trick.counts == {"g": 1 + 2, "d": 1 + 2 * 3}


def test_state_dict_round_trip(make_method):
    overrides = {"tricks": [{"name": "historical_averaging", "weight": 0.5}]}
    a = make_method(overrides)
    for step in range(3):
        a.train_step(step)
    saved = copy.deepcopy(a.tricks[0].state_dict())
    assert saved["counts"] == {"g": 4, "d": 4}

    b = make_method({**overrides, "seed": 7})
    b.generator.load_state_dict(a.generator.state_dict())
    b.discriminator.load_state_dict(a.discriminator.state_dict())
    assert b.tricks[0].d_penalty(None).item() > 0  # b's means are still its own start
    b.tricks[0].load_state_dict(saved)
    assert b.tricks[0].counts == {"g": 4, "d": 4}
    for player in ("g", "d"):
        for m, s in zip(b.tricks[0].means[player], saved["means"][player]):
            assert torch.equal(m, s)
        assert torch.equal(b.tricks[0].penalty(player), a.tricks[0].penalty(player))
    # loaded by value: training b further leaves the saved state alone
    b.train_step(3)
    assert b.tricks[0].counts["d"] == 5
    assert any(not torch.equal(m, s) for m, s in zip(b.tricks[0].means["d"], saved["means"]["d"]))


def test_weight_must_be_positive():
    with pytest.raises(ConfigError, match="weight: must be > 0"):
        TRICKS.get("historical_averaging")(weight=0.0)


def test_running_mean_follows_clipped_weights(make_method):
    """With weight clipping the mean must average the parameters D actually has (clipped)."""
    method = make_method(
        {
            "objective": {"name": "wasserstein", "clip": 0.01},
            "tricks": [{"name": "historical_averaging", "players": "discriminator"}],
        }
    )
    history = [snapshot(method.discriminator)]
    for step in range(3):
        method.train_step(step)
        history.append(snapshot(method.discriminator))
    for i, m in enumerate(method.tricks[0].means["d"]):
        np.testing.assert_allclose(
            m.double().numpy(), np.mean([s[i] for s in history], axis=0), rtol=1e-5, atol=1e-8
        )


def test_checkpoint_holds_the_running_mean(tmp_path, tiny_ring):
    """After one step the saved mean is (theta_0 + theta_1) / 2, theta_0 the parameters a
    freshly prepared run starts from and theta_1 those in the checkpoint."""
    overrides = {**tiny_ring, "schedule.steps": 1, "tricks": [{"name": "historical_averaging"}]}
    initial = prepare("ring8", overrides, out=tmp_path / "init").method
    start = {
        "generator": dict(initial.generator.named_parameters()),
        "discriminator": dict(initial.discriminator.named_parameters()),
    }
    run = gankit.train("ring8", overrides, out=tmp_path / "run")
    state, _ = load_checkpoint(run.checkpoints()[-1])
    saved = state["method"]["tricks"]["historical_averaging"]
    assert saved["counts"] == {"g": 2, "d": 2}
    for player, name in (("g", "generator"), ("d", "discriminator")):
        names = list(start[name])
        assert len(saved["means"][player]) == len(names)
        for key, mean in zip(names, saved["means"][player]):
            theta0 = start[name][key].detach()
            theta1 = state["modules"][name][key]
            assert not torch.equal(theta0, theta1)
            torch.testing.assert_close(mean, (theta0 + theta1) / 2, rtol=1e-6, atol=1e-7)


def test_resume_with_stateful_tricks_equals_uninterrupted_run(tmp_path, tiny_ring):
    n = 4
    tricks = [
        {"name": "historical_averaging", "weight": 0.5},
        {"name": "instance_noise", "std": 0.2, "anneal_steps": 3 * n},
        {"name": "label_smoothing", "real_range": [0.7, 1.0]},
    ]
    base = {**tiny_ring, "tricks": tricks}
    full = gankit.train("ring8", {**base, "schedule.steps": 2 * n}, out=tmp_path / "full")
    gankit.train("ring8", {**base, "schedule.steps": n}, out=tmp_path / "half")
    half_state, _ = load_checkpoint(gankit.open_run(tmp_path / "half").checkpoints()[-1])
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * n})

    a, _ = load_checkpoint(full.checkpoints()[-1])
    b, _ = load_checkpoint(resumed.checkpoints()[-1])
    for name in ("generator", "discriminator"):
        assert set(a["modules"][name]) == set(b["modules"][name])
        for key in a["modules"][name]:
            assert torch.equal(a["modules"][name][key], b["modules"][name][key]), (name, key)
    ta, tb = a["method"]["tricks"], b["method"]["tricks"]
    assert set(ta) == {"historical_averaging", "instance_noise", "label_smoothing"}
    assert ta["historical_averaging"]["counts"] == tb["historical_averaging"]["counts"]
    for player in ("g", "d"):
        for x, y in zip(ta["historical_averaging"]["means"][player],
                        tb["historical_averaging"]["means"][player]):  # fmt: skip
            assert torch.equal(x, y)
    for name in ("instance_noise", "label_smoothing"):
        assert torch.equal(ta[name]["generator"], tb[name]["generator"])
        # the streams moved on after the half-way checkpoint: their state is not a constant
        assert not torch.equal(half_state["method"]["tricks"][name]["generator"],
                               ta[name]["generator"])  # fmt: skip
    rows = [(m["step"], m["d_loss"], m["g_loss"]) for m in full.metrics()]
    assert rows == [(m["step"], m["d_loss"], m["g_loss"]) for m in resumed.metrics()]
    assert [r[0] for r in rows] == list(range(1, 2 * n + 1))
