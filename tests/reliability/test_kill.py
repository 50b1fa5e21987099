"""Crash safety: SIGKILL a training process 10 times at random moments (several of them in the
middle of a checkpoint write), resume it each time with `gankit train --resume`, and the final
state equals an uninterrupted run's exactly.

The checkpoint writes are slowed down by the test-only hook GANKIT_TEST_SLOW_CHECKPOINT (a sleep
after the tensors are written and another one before the rename), so that the kills that wait
for a temporary checkpoint folder to appear land inside a write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import gankit
from gankit.training.checkpoint import SLOW_ENV, list_checkpoints, load_checkpoint

STEPS = 400
RECIPE = [
    "ring8",
    "--set",
    f"schedule.steps={STEPS}",
    "generator.hidden=16",
    "generator.depth=1",
    "discriminator.hidden=16",
    "discriminator.depth=1",
    "schedule.batch_size=32",
    "logging.every=10",
    "logging.checkpoint_every=10",
    "logging.sample_every=100000",
    "logging.progress=false",
    "logging.tensorboard=false",
]
SLOW_WRITE = 0.2  # seconds each checkpoint write takes in the killed runs
KILLS = 10


def _env(slow: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop(SLOW_ENV, None)
    if slow:
        env[SLOW_ENV] = str(SLOW_WRITE)
    return env


def _train(out: Path, slow: bool) -> subprocess.Popen:
    if (out / "config.yaml").is_file():
        args = ["train", "--resume", str(out)]
    else:  # killed before the run folder had its recipe: start it again
        args = ["train", *RECIPE, "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "gankit", *args],
        env=_env(slow),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _newest_step(out: Path) -> int:
    found = list_checkpoints(out / "checkpoints")
    return int(found[-1].name[5:]) if found else -1


def _partial(out: Path) -> list[Path]:
    folder = out / "checkpoints"
    return [p for p in folder.iterdir() if p.name.startswith(".tmp-")] if folder.is_dir() else []


def _wait(condition, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """Poll until condition() holds; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("the training process made no progress in time")


def final_state(run_dir: Path) -> dict:
    state, meta = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    return {"step": meta["step"], **state}


def assert_equal_states(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, path
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys differ"
        for key in a:
            assert_equal_states(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_states(x, y, f"{path}[{i}]")
    elif hasattr(a, "shape"):  # numpy arrays (the numpy RNG state)
        assert (a == b).all(), f"{path} differs"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def losses(run_dir: Path) -> list[tuple]:
    return [(m["step"], m["d_loss"], m["g_loss"]) for m in gankit.open_run(run_dir).metrics()]


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
    ref_dir, out = tmp_path / "reference", tmp_path / "killed"
    reference = subprocess.Popen(  # runs beside the kill loop
        [sys.executable, "-m", "gankit", "train", *RECIPE, "--out", str(ref_dir)],
        env=_env(slow=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    rng = random.Random(1234)
    kills, during_write = 0, 0
    while kills < KILLS:
        start = _newest_step(out)
        proc = _train(out, slow=True)
        if kills == 0:
            # a moment during start-up: folder made, first checkpoint most likely not complete
            # (its write alone takes SLOW_WRITE); then resume starts the run again at step 0
            # (test_run_folder.py checks that case deterministically)
            alive = _wait(lambda: (out / "run.json").exists(), proc)
            time.sleep(rng.uniform(0, SLOW_WRITE / 2))
        elif kills % 2:
            # a random moment inside a checkpoint write (after progress, so the run advances)
            alive = _wait(lambda s=start: _newest_step(out) > s and _partial(out), proc)
            time.sleep(rng.uniform(0, SLOW_WRITE / 2))
        else:
            # a random moment anywhere: a step, a log line, a write, a prune
            alive = _wait(lambda s=start: _newest_step(out) > s, proc)
            time.sleep(rng.uniform(0, 2 * SLOW_WRITE))
        assert alive and proc.poll() is None, f"finished before kill {kills + 1}; raise STEPS"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        during_write += bool(_partial(out))
    assert during_write >= 3, f"only {during_write} kills landed inside a checkpoint write"

    last = _train(out, slow=False)  # the last resume runs to the end
    _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    _, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err

    a, b = final_state(ref_dir), final_state(out)
    assert a["step"] == b["step"] == STEPS
    for key in ("modules", "optimizers", "method", "data", "rng", "trainer"):
        assert_equal_states(a[key], b[key], key)
    G_a, G_b = gankit.open_run(ref_dir).generator(), gankit.open_run(out).generator()
    for (name, p), q in zip(G_a.state_dict().items(), G_b.state_dict().values()):
        assert torch.equal(p, q), name
    # the logged losses match line for line: lines cut short or written after the restored
    # checkpoint were dropped on resume and written again
    assert losses(out) == losses(ref_dir)
    assert gankit.open_run(out).status == "finished"
    # no leftovers of the killed writes, no half-written run files
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert [p.name for p in out.iterdir() if ".tmp" in p.name] == []
