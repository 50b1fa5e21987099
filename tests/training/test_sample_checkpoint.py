"""Sampling an earlier checkpoint: `gankit sample RUN --checkpoint STEP`, Run.sample(checkpoint=)
and gankit eval --checkpoint STEP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.training.checkpoint import load_checkpoint

TINY = {"schedule.steps": 6, "schedule.batch_size": 16, "logging.every": 2,
        "logging.checkpoint_every": 2, "logging.progress": False,
        "logging.tensorboard": False, "logging.keep_checkpoints": 3}  # fmt: skip


def test_samples_of_an_earlier_step_come_from_that_checkpoint(tmp_path, capsys):
    run = gankit.train("ring8", TINY, out=tmp_path / "r")
    # by hand: the step-4 generator's weights, applied to the seeded noise
    state, _ = load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000004")
    G = run.generator(checkpoint=tmp_path / "r" / "checkpoints" / "step_00000004")
    weights = {k: v for k, v in G.state_dict().items()}
    for key, value in state["modules"]["generator"].items():
        torch.testing.assert_close(weights[key], value)
    z = torch.randn(10, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = G(z)
    torch.testing.assert_close(run.sample(10, seed=3, checkpoint=4), want)
    assert not torch.equal(run.sample(10, seed=3), want)  # the newest (step 6) differs
    assert main(["sample", str(run.path), "--n", "10", "--seed", "3", "--checkpoint", "4",
                 "--out", str(tmp_path / "s.npy")]) == 0  # fmt: skip
    torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / "s.npy")), want)
    with pytest.raises(gankit.CheckpointError, match="no checkpoint of step 5; its steps: 2, 4, 6"):
        run.sample(4, checkpoint=5)
    capsys.readouterr()
    assert main(["eval", str(run.path), "--checkpoint", "2", "--n-fake", "200", "--no-write"]) == 0
    assert "step_00000002" in capsys.readouterr().out
