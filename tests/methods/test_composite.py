"""The composite method: each term switchable, end to end training with an exact resume, and
its evaluation (pixel error, classifier accuracy, FID)."""

import math

import pytest
from state_equality import assert_same, final_state

import gankit

TINY = {
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.every": 1,
    "logging.sample_every": 1000,
    "logging.checkpoint_every": 1000,
    "generator.base_channels": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 8,
    "method_options.sym_weight": 0.3,
    "method_options.perceptual_weight": 0.5,
}


def test_composite_trains_resumes_and_evaluates(tmp_path):
    full = gankit.train(
        "composite-digits-unwarp", {**TINY, "schedule.steps": 4}, out=tmp_path / "f"
    )
    lines = full.metrics()
    for m in lines:
        for key in ("d_loss", "g_loss", "pixel", "sym", "adv", "ip", "tv", "perceptual"):
            assert math.isfinite(m[key]), (key, m)
    o = {"pixel": 1.0, "sym": 0.3, "adv": 0.01, "ip": 0.03, "tv": 0.01, "perceptual": 0.5}
    last = lines[-1]
    assert last["g_loss"] == pytest.approx(sum(w * last[k] for k, w in o.items()), rel=1e-4)
    gankit.train("composite-digits-unwarp", {**TINY, "schedule.steps": 2}, out=tmp_path / "h")
    resumed = gankit.resume(tmp_path / "h", {"schedule.steps": 4})
    a, b = final_state(full), final_state(resumed)
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    m = gankit.evaluate(tmp_path / "f")["metrics"]
    for key in ("l1_ba", "label_acc_ba", "fid_ba", "fid_source", "classifier_acc"):
        assert math.isfinite(m[key])


def test_terms_switch_off(tmp_path):
    off = {
        **TINY,
        "schedule.steps": 1,
        "method_options.sym_weight": 0.0,
        "method_options.adv_weight": 0.0,
        "method_options.ip_weight": 0.0,
        "method_options.tv_weight": 0.0,
        "method_options.perceptual_weight": 0.0,
        "method_options.pixel": "l2",
    }
    line = gankit.train("composite-digits-unwarp", off, out=tmp_path / "o").metrics()[-1]
    assert line["g_loss"] == pytest.approx(line["pixel"]) and line["d_loss"] == 0.0
    assert not {"sym", "adv", "ip", "tv", "perceptual"} & set(line)
