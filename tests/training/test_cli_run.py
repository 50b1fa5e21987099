"""End-to-end: the CLI trains ring8 for 50 steps and leaves every promised output behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.data import DATASETS
from gankit.data.base import SampledData
from gankit.errors import TrainingError

SMALL = [
    "generator.hidden=32",
    "generator.depth=2",
    "discriminator.hidden=16",
    "discriminator.depth=2",
]


def test_cli_trains_ring8_and_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "ring8"
    rc = main(
        [
            "train",
            "ring8",
            "--out",
            str(out),
            "--set",
            "schedule.steps=50",
            "logging.every=10",
            "logging.sample_every=25",
            "logging.checkpoint_every=25",
            "logging.progress=false",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Finished 50 steps" in printed and str(out / "checkpoints") in printed

    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [10, 20, 30, 40, 50]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "steps_per_sec"} <= set(lines[0])
    assert all(np.isfinite(m["d_loss"]) and np.isfinite(m["g_loss"]) for m in lines)

    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_00000025.png",
        "step_00000050.png",
    ]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_00000025",
        "step_00000050",
    ]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"d_loss", "g_loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("g_loss")] == [10, 20, 30, 40, 50]
    assert "samples" in events.Tags()["images"]

    saved = gankit.load_recipe(out / "config.yaml")
    assert saved.schedule.steps == 50 and saved.data["mode"] == "ring"
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished"
    # MLPs only: `precision: auto` stays fp32 on every CPU; the processor is /proc/cpuinfo's
    assert info["precision"] == "fp32" and info["fast"].startswith("fp32")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        if names:
            assert info["processor"] == names[0]

    assert main(["sample", str(out), "--n", "300", "--out", str(tmp_path / "s.npy")]) == 0
    points = np.load(tmp_path / "s.npy")
    assert points.shape == (300, 2) and np.isfinite(points).all()
    assert main(["sample", str(out), "--n", "100", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_api_round_trip_for_images(tmp_path, fast_overrides):
    run = gankit.train(
        "quickstart",
        {
            **fast_overrides,
            "schedule.steps": 4,
            "generator.base_channels": 8,
            "discriminator.base_channels": 8,
        },
        out=tmp_path / "q",
    )
    again = gankit.open_run(tmp_path / "q")
    images = again.sample(10, seed=3)
    assert images.shape == (10, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, again.sample(10, seed=3))  # the seed fixes the noise
    assert not torch.equal(images, again.sample(10, seed=4))
    raw = again.sample(10, seed=3, ema=False)  # the EMA copy differs from the raw generator
    assert not torch.equal(images, raw)
    assert run.status == "finished"


def test_existing_run_folder_is_never_overwritten(tmp_path, fast_overrides, capsys):
    out = tmp_path / "r"
    gankit.train("ring8", {**fast_overrides, "schedule.steps": 2}, out=out)
    before = (out / "metrics.jsonl").read_text()
    rc = main(["train", "ring8", "--out", str(out), "--set", "schedule.steps=2"])
    assert rc == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == before


def _nan_sampler(n, g):
    return torch.full((n, 2), float("nan")), None


if "test_nan_points" not in DATASETS:
    DATASETS.register("test_nan_points")(
        lambda seed: SampledData(_nan_sampler, (2,), seed=seed, name="nan")
    )


def test_non_finite_losses_stop_the_run_with_a_clear_message(tmp_path, fast_overrides):
    with pytest.raises(TrainingError, match="non-finite.*Lower the learning rates"):
        gankit.train(
            "ring8",
            {**fast_overrides, "schedule.steps": 20, "data": {"name": "test_nan_points"}},
            out=tmp_path / "nan",
        )
    assert json.loads((tmp_path / "nan" / "run.json").read_text())["status"] == "failed"
    assert not (tmp_path / "nan" / "checkpoints").exists()  # nothing poisoned was saved


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path, signum, code):
    """The periodic checkpoint is 100,000 steps away: the one found must be the stop's own."""
    out = tmp_path / "r"
    cmd = [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "ring8",
        "--out",
        str(out),
        "--set",
        "schedule.steps=1000000",
        "logging.every=10",
        "logging.progress=false",
        "logging.tensorboard=false",
        "logging.checkpoint_every=100000",
        *SMALL,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr  # 128 + the signal's number
    assert f"Interrupted ({signal.Signals(signum).name}) at step" in stdout
    assert "--resume" in stdout
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["signal"] == signal.Signals(signum).name
    run = gankit.open_run(out)
    step = int(run.checkpoints()[-1].name.split("_")[1])
    assert step == info["step"] >= 10
    resumed = gankit.resume(out, {"schedule.steps": step + 5, "logging.progress": False})
    assert resumed.result == {**resumed.result, "status": "finished", "step": step + 5}
    assert os.path.isdir(out / "checkpoints" / f"step_{step + 5:08d}")
