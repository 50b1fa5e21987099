"""The divergence guard: NaN/inf -> roll back to the last good state, lower the learning rates,
reseed, and stop with the documented message after guard.rollbacks rollbacks."""

from __future__ import annotations

import json
import math

import pytest
import torch

import gankit
from gankit.cli import main
from gankit.config import load_recipe
from gankit.data import DATASETS
from gankit.data.base import SampledData
from gankit.data.toy2d import ring_means, sample_mixture
from gankit.errors import ConfigError, TrainingError
from gankit.training.checkpoint import list_checkpoints, load_checkpoint

TINY = {
    "generator.hidden": 16,
    "generator.depth": 1,
    "discriminator.hidden": 16,
    "discriminator.depth": 1,
    "schedule.batch_size": 32,
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.sample_every": 100000,
}
RECIPE_LR = 1e-4  # ring8's Adam learning rate
NAN_DRAW = 23  # the one poisoned batch: the 23rd draw of real data, i.e. step 23


def _one_nan_batch(seed: int, at: int = NAN_DRAW) -> SampledData:
    """The ring of 8 Gaussians, except that draw number `at` is all NaN (a corrupt record)."""
    means, calls = ring_means(8, 1.0), [0]

    def sampler(n, g):
        x, y = sample_mixture(means, 0.01, n, g)
        if g is not source.generator:  # reference() draws for plots do not count
            return x, y
        calls[0] += 1
        return (torch.full_like(x, float("nan")), y) if calls[0] == at else (x, y)

    source = SampledData(sampler, (2,), seed=seed, name="one-nan-batch", num_classes=8)
    return source


if "test_one_nan_batch" not in DATASETS:
    DATASETS.register("test_one_nan_batch")(_one_nan_batch)


def _all_tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _all_tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _all_tensors(v)


def assert_checkpoints_finite(run_dir):
    for path in list_checkpoints(run_dir / "checkpoints"):
        state, _ = load_checkpoint(path)
        for t in _all_tensors(state):
            if t.is_floating_point():
                assert torch.isfinite(t).all(), f"{path} holds a non-finite tensor"


def events(run_dir) -> list[dict]:
    return [m for m in gankit.open_run(run_dir).metrics() if "event" in m]


def loss_lines(run_dir) -> list[tuple]:
    return [
        (m["step"], m["d_loss"], m["g_loss"])
        for m in gankit.open_run(run_dir).metrics()
        if "event" not in m
    ]


def test_absurd_learning_rate_rolls_back_k_times_then_stops(tmp_path, capsys, caplog):
    out = tmp_path / "lr1e6"
    rc = main(
        [
            "train",
            "ring8",
            "--out",
            str(out),
            "--set",
            *(f"{k}={v}" for k, v in TINY.items()),
            "optim.generator={name: sgd, lr: 1.0e+6}",
            "optim.discriminator={name: sgd, lr: 1.0e+6}",
            "schedule.steps=50",
            "logging.every=5",
            "logging.checkpoint_every=1",  # every step's state goes through the check
            "guard.rollbacks=2",
            "guard.lr_factor=0.5",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit: error: training diverged: ")
    assert "became non-finite (NaN or inf)" in err
    assert "after 2 rollbacks (guard.rollbacks=2, learning rates now 0.25 x the recipe's)" in err
    assert "Lower the learning rates (optim.*.lr)" in err
    assert caplog.text.count("rolled back to") == 2  # one warning per rollback
    assert [(e["rollback"], e["lr_scale"]) for e in events(out)] == [(1, 0.5), (2, 0.25)]
    assert all(math.isfinite(v) for line in loss_lines(out) for v in line)
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert_checkpoints_finite(out)  # nothing non-finite was ever saved


def test_one_bad_batch_rolls_back_to_the_last_checkpoint_and_recovers(tmp_path, caplog):
    base = {
        **TINY,
        "data": {"name": "test_one_nan_batch"},
        "schedule.steps": 40,
        "logging.every": 5,
        "logging.checkpoint_every": 10,
    }
    run = gankit.train("ring8", base, out=tmp_path / "r")
    assert run.result["status"] == "finished" and run.result["step"] == 40
    (event,) = events(run.path)
    assert event["step"] == 20 and event["detected_at"] == 25  # found at the next log step
    assert event["restored"].endswith("step_00000020") and event["lr_scale"] == 0.5
    assert {"d_loss", "g_loss", "generator parameters"} <= set(event["non_finite"])
    assert "rolled back to" in caplog.text and "rollback 1 of 3" in caplog.text
    # one loss line per log step, the abandoned steps 21-25 dropped
    assert [line[0] for line in loss_lines(run.path)] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert_checkpoints_finite(run.path)
    state, _ = load_checkpoint(run.checkpoints()[-1])
    assert state["trainer"]["rollbacks"] == 1 and state["trainer"]["lr_scale"] == 0.5
    for opt in state["optimizers"].values():
        assert [g["lr"] for g in opt["param_groups"]] == [RECIPE_LR * 0.5]

    # the guard's state survives a resume (and guard.* may change on resume)
    resumed = gankit.resume(run.path, {"schedule.steps": 45, "guard.rollbacks": 5})
    assert resumed.result["step"] == 45
    state, _ = load_checkpoint(resumed.checkpoints()[-1])
    assert state["trainer"]["rollbacks"] == 1
    assert state["optimizers"]["generator"]["param_groups"][0]["lr"] == RECIPE_LR * 0.5
    assert len(events(run.path)) == 1


def test_with_lr_factor_1_the_retry_is_not_a_replay(tmp_path):
    """After a rollback the data stream and the global RNGs are reseeded with (seed, rollback
    number): with lr_factor 1 the run does not replay the trajectory that diverged."""
    base = {**TINY, "schedule.steps": 30, "logging.every": 5, "logging.checkpoint_every": 10}
    clean = gankit.train(
        "ring8", {**base, "data": {"name": "test_one_nan_batch", "at": 10**9}}, out=tmp_path / "c"
    )
    retried = gankit.train(
        "ring8",
        {**base, "data": {"name": "test_one_nan_batch"}, "guard.lr_factor": 1.0},
        out=tmp_path / "r",
    )
    a, b = loss_lines(clean.path), loss_lines(retried.path)
    assert a[:4] == b[:4]  # steps 5-20: identical up to the checkpoint rolled back to
    assert [x[0] for x in a] == [x[0] for x in b]
    assert a[4:] != b[4:]  # after it: other batches, not the replay
    assert all(math.isfinite(v) for line in b for v in line)
    state, _ = load_checkpoint(retried.checkpoints()[-1])
    assert state["optimizers"]["generator"]["param_groups"][0]["lr"] == RECIPE_LR


def test_guard_off_stops_at_the_first_divergence(tmp_path):
    with pytest.raises(TrainingError, match=r"guard is off \(guard.rollbacks=0\)") as err:
        gankit.train(
            "ring8",
            {
                **TINY,
                "data": {"name": "test_one_nan_batch", "at": 3},
                "schedule.steps": 20,
                "logging.every": 5,
                "guard.rollbacks": 0,
            },
            out=tmp_path / "r",
        )
    assert "in the 5 steps up to step 5" in str(err.value)
    assert "no checkpoint was saved" in str(err.value)
    assert events(tmp_path / "r") == []


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("guard.rollbacks", -1, "guard.rollbacks: must be >= 0"),
        ("guard.rollbacks", 1.5, "guard.rollbacks: expected an integer"),
        ("guard.lr_factor", 0, r"guard.lr_factor: must be in \(0, 1\]"),
        ("guard.lr_factor", 1.5, r"guard.lr_factor: must be in \(0, 1\]"),
        ("guard.lr_factor", float("nan"), r"guard.lr_factor: must be in \(0, 1\]"),
        ("guard.patience", 1, "guard.patience: unknown key; valid keys here: lr_factor, rollbacks"),
    ],
)
def test_guard_config_is_checked(key, value, match):
    with pytest.raises(ConfigError, match=match):
        load_recipe("ring8", {key: value})


def test_guard_defaults_are_in_the_saved_recipe():
    cfg = load_recipe("ring8")
    assert cfg.to_dict()["guard"] == {"rollbacks": 3, "lr_factor": 0.5}
