"""gankit eval end to end: plumbing checked with 'generators' that return real data."""

import json
import math

import pytest
import torch
from torch import nn

import gankit
from gankit.cli import main
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.metrics.evaluate import compute_metrics


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))


class Replay(nn.Module):
    """Ignores the noise and returns the rows of `data` in order, cycling: a perfect 'generator'
    when data are real samples."""

    def __init__(self, data):
        super().__init__()
        self.data = data
        self.pos = 0

    def forward(self, z):
        idx = (torch.arange(len(z)) + self.pos) % len(self.data)
        self.pos += len(z)
        return self.data[idx]


def test_real_ring_points_capture_every_mode():
    data_cfg = gankit.load_recipe("ring8").data
    real = build_dataset(data_cfg, seed=123).batch(2500)[0]
    result = compute_metrics(Replay(real), (2, "normal"), data_cfg, progress=False)
    m = result["metrics"]
    assert m["modes_captured"] == 8 and m["n_modes"] == 8
    # within 3 std: 1 - exp(-4.5) = 98.9% of a 2D Gaussian's mass
    assert 0.98 < m["high_quality"] < 0.995
    assert m["reverse_kl"] < 0.01
    assert m["w1"] < 0.1
    assert result["protocol"]["n_fake"] == 2500 and result["protocol"]["n_real"] == 2500


def test_collapsed_ring_generator_scores_one_mode():
    data_cfg = gankit.load_recipe("ring8").data
    one_mode = torch.tensor([[1.0, 0.0]]).repeat(2500, 1) + 0.005 * torch.randn(2500, 2)
    m = compute_metrics(Replay(one_mode), (2, "normal"), data_cfg, progress=False)["metrics"]
    assert m["modes_captured"] == 1
    assert m["reverse_kl"] == pytest.approx(math.log(8), abs=1e-12)


def test_digits_test_set_against_itself_is_a_perfect_score():
    data_cfg = gankit.load_recipe("quickstart").data
    test = build_dataset({"name": "digits", "split": "test"}, seed=0).x

    def score():
        return compute_metrics(
            Replay(test),
            (32, "normal"),
            data_cfg,
            metrics=["fid", "pr", "dc", "is"],
            n_fake=len(test),
            progress=False,
        )

    result = score()
    m, p = result["metrics"], result["protocol"]
    assert abs(m["fid"]) < 1e-6
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0
    assert m["is"] > 5  # a good classifier on real digits is confident and diverse
    assert p["extractor"] == "gankit-digits-cnn" and len(p["weights_sha256"]) == 64
    assert p["n_real"] == 360 and p["reference"]["split"] == "test"
    # the reference features were cached, and a second call gives the same numbers
    assert score()["metrics"] == m


def test_metric_that_does_not_fit_the_data_is_a_config_error():
    with pytest.raises(ConfigError, match="does not apply"):
        compute_metrics(
            nn.Identity(),
            (2, "normal"),
            gankit.load_recipe("ring8").data,
            metrics=["fid"],
            progress=False,
        )
    with pytest.raises(ConfigError, match="eval.metrics"):
        gankit.load_recipe("ring8", {"eval.metrics": ["fid"], "eval.every": 10})


def test_cli_eval_writes_eval_json(tmp_path, fast_overrides, capsys):
    run = gankit.train("ring8", {**fast_overrides, "schedule.steps": 20}, out=tmp_path / "r")
    assert main(["eval", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "modes_captured" in out and "eval.json" in out
    result = json.loads((run.path / "eval.json").read_text())
    assert result["checkpoint"] == "step_00000020"
    assert set(result["metrics"]) >= {"modes_captured", "high_quality", "reverse_kl", "w1"}
    assert result["protocol"]["seed"] == 0 and result["protocol"]["gankit_version"]
    # --no-write scores (another seed: another result) and leaves eval.json as it was
    before = (run.path / "eval.json").read_bytes()
    assert main(["eval", str(run.path), "--no-write", "--json", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote" not in out and json.loads(out[out.index("{") :])["protocol"]["seed"] == 1
    assert (run.path / "eval.json").read_bytes() == before


def test_periodic_eval_logs_scores_and_keeps_the_best_checkpoint(tmp_path, fast_overrides):
    run = gankit.train(
        "ring8",
        {
            **fast_overrides,
            "schedule.steps": 30,
            "eval.every": 10,
            "eval.best": "w1",
            "eval.n_fake": 500,
        },
        out=tmp_path / "r",
    )
    evals = [m for m in run.metrics() if "eval/w1" in m]
    assert [m["step"] for m in evals] == [10, 20, 30]
    best_step = min(evals, key=lambda m: m["eval/w1"])["step"]
    best = list((run.path / "best").iterdir())
    assert [p.name for p in best] == [f"step_{best_step:08d}"]
    meta = json.loads((best[0] / "meta.json").read_text())
    assert meta["best"]["w1"] == pytest.approx(min(m["eval/w1"] for m in evals))


def test_cli_classifier_train_makes_a_usable_extractor(tmp_path, capsys):
    out = tmp_path / "digits.safetensors"
    assert (
        main(
            ["classifier", "train", "--data", "{name: digits}", "--out", str(out), "--epochs", "2"]
        )
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out
    from gankit.metrics.classifier import load_classifier

    model = load_classifier(str(out))
    test = build_dataset({"name": "digits", "split": "test"}, seed=0)
    with torch.no_grad():
        predictions = model(test.x)[1].argmax(1)
    assert (predictions == test.labels).float().mean() > 0.5  # chance is 0.1
    assert main(["classifier", "train", "--data", "[1, 2]", "--out", str(out)]) == 2
