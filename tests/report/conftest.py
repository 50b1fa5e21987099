"""Two tiny ring8 runs (trained and evaluated once per session) and their reports."""

from __future__ import annotations

import pytest

from gankit import api
from gankit.report import write_report

TINY = {
    "schedule.steps": 60,
    "generator.hidden": 16,
    "discriminator.hidden": 16,
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.every": 10,
    "logging.sample_every": 30,
    "logging.checkpoint_every": 30,
}


def _tiny_run(root, name, **extra):
    run = api.train("ring8", {**TINY, **extra}, out=root / name)
    api.evaluate(run.path, n_fake=1000, progress=False)
    return run.path


@pytest.fixture(scope="session")
def ring_runs(tmp_path_factory):
    """Two evaluated ring8 runs; the first also scores modes during training (eval/*)."""
    root = tmp_path_factory.mktemp("report-runs")
    first = _tiny_run(
        root, "ring-a", **{"eval.every": 30, "eval.metrics": ["modes"], "eval.n_fake": 500}
    )
    second = _tiny_run(root, "ring-b", seed=1)
    return first, second


@pytest.fixture(scope="session")
def single_report(ring_runs, tmp_path_factory):
    return write_report([ring_runs[0]], tmp_path_factory.mktemp("report") / "one.html")


@pytest.fixture(scope="session")
def double_report(ring_runs, tmp_path_factory):
    return write_report(list(ring_runs), tmp_path_factory.mktemp("report") / "two.html")
