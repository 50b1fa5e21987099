"""The run folder under bad conditions: not writable, disk full mid-run, two processes on one
folder, a metrics line cut short, a run killed before its first checkpoint. And determinism:
two CPU runs with one seed end with identical parameters."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

import gankit
import gankit.training.checkpoint as checkpoint_module
from gankit.api import prepare
from gankit.errors import ConfigError, TrainingError
from gankit.training.checkpoint import load_checkpoint

TINY = {
    "generator.hidden": 16,
    "generator.depth": 1,
    "discriminator.hidden": 16,
    "discriminator.depth": 1,
    "schedule.batch_size": 32,
    "schedule.steps": 20,
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.every": 5,
    "logging.sample_every": 100000,
    "logging.checkpoint_every": 5,
}
TINY_DCGAN = {
    "generator.base_channels": 8,
    "generator.latent_dim": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 8,
    "schedule.steps": 3,
    "ema.enabled": True,
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.every": 3,
    "logging.sample_every": 100000,
}


def params(run) -> dict[str, torch.Tensor]:
    state, _ = load_checkpoint(run.checkpoints()[-1])
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


def test_unwritable_output_folder_fails_before_training(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in (a_file / "run", a_file):
        with pytest.raises(ConfigError, match="cannot write the run folder|already holds"):
            prepare("ring8", TINY, out=out)
    with pytest.raises(ConfigError, match=f"cannot write the run folder {a_file / 'run'}"):
        prepare("ring8", TINY, out=a_file / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_fails_before_training(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write the run folder"):
            prepare("ring8", TINY, out=parent / "run")
    finally:
        parent.chmod(0o700)


def test_disk_full_mid_run_stops_cleanly_and_the_run_resumes(tmp_path, monkeypatch):
    real_save, calls = checkpoint_module.save_file, []

    def save_file(tensors, filename):
        calls.append(filename)
        if len(calls) == 2:  # the second checkpoint: the disk is full
            with open(filename, "wb") as f:
                f.write(b"\0" * 10)  # a partial file, as a full disk leaves it
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real_save(tensors, filename)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)
    out = tmp_path / "r"
    with pytest.raises(TrainingError) as err:
        gankit.train("ring8", TINY, out=out)
    msg = str(err.value)
    assert "cannot write to the run folder" in msg and "No space left on device" in msg
    assert "at step 10" in msg and str(out / "checkpoints" / "step_00000005") in msg
    assert "--resume" in msg
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000005"]

    monkeypatch.setattr(checkpoint_module, "save_file", real_save)  # space freed
    resumed = gankit.resume(out)
    assert resumed.result["status"] == "finished" and resumed.result["step"] == 20
    reference = gankit.train("ring8", TINY, out=tmp_path / "reference")
    a, b = params(reference), params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_falls_back_when_the_newest_checkpoint_was_damaged(tmp_path, caplog):
    run = gankit.train("ring8", {**TINY, "schedule.steps": 10}, out=tmp_path / "r")
    newest = run.checkpoints()[-1]
    state = newest / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # bit rot after the write
    resumed = gankit.resume(run.path, {"schedule.steps": 20})
    assert "cannot read tensors" in caplog.text and "step_00000005 instead" in caplog.text
    assert (run.path / "checkpoints" / "damaged-step_00000010").is_dir()
    reference = gankit.train("ring8", TINY, out=tmp_path / "reference")
    a, b = params(reference), params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_one_process_per_run_folder(tmp_path):
    out = tmp_path / "r"
    trainer = prepare("ring8", TINY, out=out)  # holds the folder from here on
    with pytest.raises(ConfigError, match="being trained by another process"):
        gankit.resume(out)
    trainer.fit()  # releases it at the end
    assert gankit.resume(out, {"schedule.steps": 25}).result["step"] == 25


def test_metrics_line_cut_short_by_a_kill(tmp_path):
    run = gankit.train("ring8", {**TINY, "logging.checkpoint_every": 10}, out=tmp_path / "r")
    path = run.path / "metrics.jsonl"
    lines = path.read_text().splitlines()
    # as if killed at step 17 while writing the line of step 15, after the checkpoint of 10
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    for p in run.checkpoints()[1:]:
        checkpoint_module._remove(p)
    assert [m["step"] for m in gankit.open_run(run.path).metrics()] == [5, 10]
    resumed = gankit.resume(run.path)

    def losses(rows):
        return [(m["step"], m["d_loss"], m["g_loss"]) for m in rows]

    # the same lines as the uninterrupted run wrote (timings aside)
    assert losses(resumed.metrics()) == losses(json.loads(line) for line in lines)
    assert [p.name for p in run.path.iterdir() if ".tmp" in p.name] == []


def test_killed_before_the_first_checkpoint_resume_starts_over(tmp_path, caplog):
    out = tmp_path / "r"
    trainer = prepare("ring8", TINY, out=out)  # the folder exists, no step was trained
    trainer.folder.unlock()  # as a killed process leaves it
    del trainer
    resumed = gankit.resume(out)
    assert "no complete checkpoint yet; starting it again at step 0" in caplog.text
    reference = gankit.train("ring8", TINY, out=tmp_path / "reference")
    a, b = params(reference), params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "preset, extra", [("ring8", TINY), ("quickstart", TINY_DCGAN)], ids=["mlp", "dcgan-bn-ema"]
)
def test_two_cpu_runs_with_one_seed_are_identical(tmp_path, preset, extra):
    first = gankit.train(preset, extra, out=tmp_path / "a")
    second = gankit.train(preset, extra, out=tmp_path / "b")
    a, b = params(first), params(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    third = gankit.train(preset, {**extra, "seed": 1}, out=tmp_path / "c")
    assert not all(torch.equal(a[k], v) for k, v in params(third).items())
