"""Every trick and the newer regularizers train alone and together on a tiny ring8; the
combinations that make no sense fail before training with a message that says why."""

from __future__ import annotations

import math

import pytest

import gankit
from gankit.errors import ConfigError
from gankit.tricks import TRICKS, Trick, build_tricks

OPTIONS = {  # per trick: options that suit a 25-step run
    "virtual_batch_norm": {"reference_size": 8},
    "minibatch_discrimination": {"num_kernels": 8, "kernel_dim": 3},
    "instance_noise": {"std": 0.2},
    "label_smoothing": {"real_range": [0.8, 1.0]},
    "spectral_norm": {"players": "both"},
    "feature_matching": {"adversarial": True},
}
REGULARIZERS = [
    {"name": "dragan"},
    {"name": "r1", "interval": 4},
    {"name": "pull_away"},
]
STEPS = 25


def train(tmp_path, tiny_ring, tricks=(), regularizers=(), name="run"):
    overrides = {
        **tiny_ring,
        "schedule.steps": STEPS,
        "tricks": list(tricks),
        "regularizers": list(regularizers),
    }
    return gankit.train("ring8", overrides, out=tmp_path / name)


def assert_finite_logs(run) -> list[dict]:
    rows = run.metrics()
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for row in rows:
        for key in ("d_loss", "g_loss"):
            assert math.isfinite(row[key]), (key, row)
        for key, value in row.items():
            if key.startswith(("trick/", "reg/")):
                assert math.isfinite(value), (key, row)
    return rows


def test_every_registered_trick_has_options_here_or_defaults():
    assert set(OPTIONS) <= set(TRICKS.names())
    assert len(TRICKS.names()) >= 8


@pytest.mark.parametrize("name", TRICKS.names())
def test_each_trick_trains(tmp_path, tiny_ring, name):
    run = train(tmp_path, tiny_ring, [{"name": name, **OPTIONS.get(name, {})}])
    rows = assert_finite_logs(run)
    logged = set().union(*rows)
    if name == "historical_averaging":
        assert {"trick/historical_averaging/d", "trick/historical_averaging/g"} <= logged
    if name == "feature_matching":
        assert "trick/feature_matching/g" in logged


@pytest.mark.parametrize("reg", REGULARIZERS, ids=[r["name"] for r in REGULARIZERS])
def test_each_regularizer_trains(tmp_path, tiny_ring, reg):
    run = train(tmp_path, tiny_ring, regularizers=[reg])
    rows = assert_finite_logs(run)
    keys = {k for row in rows for k in row if k.startswith("reg/")}
    assert len(keys) == 1
    steps = [r["step"] for r in rows if keys <= set(r)]
    # a lazy regularizer runs every `interval` steps (step counted from 0 before the update)
    assert steps == [s for s in range(1, STEPS + 1) if (s - 1) % reg.get("interval", 1) == 0]


@pytest.mark.parametrize("minibatch", ["minibatch_discrimination", "minibatch_stddev"])
def test_all_compatible_tricks_train_together(tmp_path, tiny_ring, minibatch):
    names = [n for n in TRICKS.names() if not n.startswith("minibatch_") or n == minibatch]
    tricks = [{"name": n, **OPTIONS.get(n, {})} for n in names]
    run = train(tmp_path, tiny_ring, tricks, REGULARIZERS)
    rows = assert_finite_logs(run)
    logged = set().union(*rows)
    assert {
        "trick/historical_averaging/d",
        "trick/historical_averaging/g",
        "trick/feature_matching/g",
    } <= logged
    assert len([k for k in logged if k.startswith("reg/")]) == 3
    samples = run.sample(50, seed=0)
    assert samples.shape == (50, 2) and samples.isfinite().all()


def test_a_trick_listed_twice_is_refused(tmp_path, tiny_ring):
    tricks = [{"name": "instance_noise"}, {"name": "label_smoothing"}, {"name": "instance_noise"}]
    with pytest.raises(ConfigError, match=r"tricks\[2\]: instance_noise is listed twice"):
        train(tmp_path, tiny_ring, tricks)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_unknown_trick_lists_the_valid_names(tmp_path, tiny_ring):
    with pytest.raises(ConfigError, match="unknown trick 'label_smothing'.*label_smoothing"):
        train(tmp_path, tiny_ring, [{"name": "label_smothing"}])


def test_unknown_trick_option_is_refused(tmp_path, tiny_ring):
    with pytest.raises(ConfigError, match=r"tricks\[0\]\.stdev: unknown option.*std"):
        train(tmp_path, tiny_ring, [{"name": "instance_noise", "stdev": 0.1}])


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"objective": {"name": "hinge"}, "tricks": [{"name": "label_smoothing"}]},
            "label_smoothing needs an objective with real/fake targets.*hinge",
        ),
        (
            {"objective": {"name": "wasserstein"}, "tricks": [{"name": "spectral_norm"}]},
            "spectral_norm already bounds.*wasserstein.*objective.clip: null",
        ),
        (
            {"tricks": [{"name": "minibatch_stddev"}, {"name": "minibatch_discrimination"}]},
            "minibatch_discrimination and another minibatch trick.*keep one",
        ),
        (
            {"generator.batch_norm": False, "tricks": [{"name": "virtual_batch_norm"}]},
            "virtual_batch_norm.*has none",
        ),
        (
            {"tricks": [{"name": "feature_matching", "layer": "head"}]},
            "no layer 'head'; valid: body",
        ),
    ],
    ids=["smoothing-hinge", "sn-clip", "two-minibatch", "vbn-no-bn", "fm-layer"],
)
def test_combination_errors_say_why(tmp_path, tiny_ring, overrides, match):
    base = {**tiny_ring, "schedule.steps": STEPS}
    with pytest.raises(ConfigError, match=match):
        gankit.train("ring8", {**base, **overrides}, out=tmp_path / "run")


def test_two_tricks_that_replace_the_d_loss_are_refused(monkeypatch):
    class OtherTargets(Trick):
        def d_loss(self, objective, d_real, d_fake):
            return None

    monkeypatch.setitem(TRICKS._builders, "other_targets", lambda: OtherTargets())
    cfg = gankit.load_recipe(
        "ring8", {"tricks": [{"name": "label_smoothing"}, {"name": "other_targets"}]}
    )
    with pytest.raises(ConfigError, match="each replace the discriminator loss; keep one"):
        build_tricks(cfg)
