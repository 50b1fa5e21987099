"""The metric and extractor registries: what each metric declares matches what it returns,
evaluation reads a method's declarations (no probes, no method names), and a metric
registered by a user is scored, kept as eval.best and listed by the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import gankit
from gankit.cli import main
from gankit.methods import METHODS
from gankit.metrics import evaluate as evaluate_module
from gankit.metrics.evaluate import compute_metrics, default_metrics, score_direction
from gankit.metrics.registry import (
    METRICS,
    MetricInputs,
    get_metric,
    metric_names,
    register_metric,
)


class Replay(torch.nn.Module):
    """A 'generator' that returns real images in order (the latent is ignored)."""

    def __init__(self, x):
        super().__init__()
        self.x = x
        self.i = 0

    def forward(self, z):
        out = self.x[self.i : self.i + len(z)]
        self.i += len(z)
        return out


def test_every_image_metric_returns_exactly_the_scores_it_declares():
    from gankit.data import build_dataset

    data_cfg = {"name": "digits"}
    real = build_dataset({"name": "digits", "split": "train"}, seed=0).x
    for name in metric_names("images"):
        if name == "stacked":  # 3-channel stacked digits: tests/metrics/test_stacked.py
            continue
        result = compute_metrics(Replay(real), (2, "normal"), data_cfg, [name], n_fake=300,
                                 extractor="digits", progress=False)  # fmt: skip
        assert set(result["metrics"]) == set(get_metric(name).scores), name


def test_every_point_metric_returns_exactly_the_scores_it_declares():
    data_cfg = {"name": "toy2d", "mode": "ring"}
    for name in metric_names("points"):
        result = compute_metrics(torch.nn.Identity(), (2, "normal"), data_cfg, [name],
                                 n_fake=200, progress=False)  # fmt: skip
        assert set(result["metrics"]) == set(get_metric(name).scores), name


def test_directions_and_defaults():
    assert score_direction("fid") == "lower" and score_direction("precision") == "higher"
    assert score_direction("kid_std") is None  # information, not a score to rank by
    assert default_metrics({"name": "digits"}) == ["fid", "kid", "is", "pr", "dc"]
    assert default_metrics({"name": "toy2d", "mode": "ring"}) == ["modes", "w1"]
    assert default_metrics({"name": "toy2d", "mode": "spiral"}) == ["w1"]


def test_an_unknown_metric_lists_the_registered_ones():
    with pytest.raises(gankit.ConfigError, match="valid here: modes, w1"):
        compute_metrics(torch.nn.Identity(), (2, "normal"), {"name": "toy2d"}, ["fid"])
    with pytest.raises(gankit.ConfigError, match="unknown metric 'fdi'"):
        get_metric("fdi")


def test_methods_declare_what_they_offer_and_evaluate_reads_only_that():
    for name, cls in METHODS.items():
        if cls.trains_classifier:
            assert hasattr(cls, "build_classifier") and cls.classifier_keys, name
        assert cls.evaluator in (None, *evaluate_module.EVALUATORS), name
    assert [n for n, c in METHODS.items() if c.conditional] == ["cgan", "acgan"]
    assert [n for n, c in METHODS.items() if c.trains_classifier] == ["ssl"]
    source = Path(evaluate_module.__file__).read_text()
    tree = ast.parse(source)
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name)]  # fmt: skip
    assert "hasattr" not in calls and "getattr" not in calls
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert not strings & set(METHODS), strings & set(METHODS)


def test_a_registered_metric_is_scored_kept_as_best_and_listed(tmp_path, capsys):
    name = "test_spread"
    if name not in METRICS:

        @register_metric(name, "points", ("points",), {"spread": "higher"}, default=False)
        def spread(x: MetricInputs) -> dict:
            """Mean distance of the samples to their mean."""
            return {"spread": float((x.fake_points - x.fake_points.mean(0)).norm(dim=1).mean())}

    # by hand: the identity 'generator' returns its latent noise, so the spread is that of
    # the seeded standard normal draws
    noise = torch.randn(400, 2, generator=torch.Generator().manual_seed(3))
    want = float((noise - noise.mean(0)).norm(dim=1).mean())
    got = compute_metrics(torch.nn.Identity(), (2, "normal"), {"name": "toy2d"}, [name],
                          n_fake=400, seed=3, progress=False)["metrics"]["spread"]  # fmt: skip
    assert got == pytest.approx(want, rel=1e-6)
    run = gankit.train(
        "ring8",
        {"schedule.steps": 8, "schedule.batch_size": 16, "logging.every": 4,
         "logging.progress": False, "logging.tensorboard": False, "eval.every": 4,
         "eval.metrics": [name], "eval.best": "spread", "eval.n_fake": 200},
        out=tmp_path / "r",
    )  # fmt: skip
    scores = [m["eval/spread"] for m in run.metrics() if "eval/spread" in m]
    assert len(scores) == 2
    best = sorted((tmp_path / "r" / "best").glob("step_*"))
    assert best and best[0].name == f"step_{4 * (1 + scores.index(max(scores))):08d}"
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert name in capsys.readouterr().out.replace("\n", " ").replace("  ", "")
