"""A run of 2N steps and a run of N steps resumed for N more must end bit-identical (CPU)."""

import json

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.errors import CheckpointError
from gankit.training.checkpoint import load_checkpoint

SMALL_DCGAN = {
    "generator.base_channels": 8,
    "generator.latent_dim": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 16,
    "ema.enabled": True,
    "ema.decay": 0.9,
}
SMALL_WGAN_GP = {
    "generator.hidden": 32,
    "generator.depth": 2,
    "discriminator.hidden": 16,
    "discriminator.depth": 2,
    "schedule.batch_size": 32,
}


def losses(run) -> list[tuple]:
    return [(m["step"], m["d_loss"], m["g_loss"]) for m in run.metrics()]


@pytest.mark.parametrize(
    "preset, extra",
    [
        ("quickstart", {**SMALL_DCGAN, "ema.bn_batches": 0}),  # statistics copied from G
        ("quickstart", {**SMALL_DCGAN, "ema.bn_batches": 3}),
        ("ring8-wgan-gp", SMALL_WGAN_GP),
    ],
    ids=["dcgan-bn-ema", "dcgan-bn-ema-standing-stats", "mlp-wgan-gp"],
)
def test_resumed_run_equals_uninterrupted_run(tmp_path, fast_overrides, preset, extra):
    n = 10
    base = {**fast_overrides, **extra}
    full = gankit.train(preset, {**base, "schedule.steps": 2 * n}, out=tmp_path / "full")
    half = gankit.train(preset, {**base, "schedule.steps": n}, out=tmp_path / "half")
    assert half.result["step"] == n
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * n})
    assert resumed.result["step"] == 2 * n

    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    assert_same(a["modules"], b["modules"], "modules", skip=("rng",))
    assert_same(a["optimizers"], b["optimizers"], "optimizers", skip=("rng",))
    assert_same(a["method"], b["method"], "method", skip=("rng",))
    assert_same(a["data"], b["data"], "data", skip=("rng",))
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # the logged losses of the resumed half match the uninterrupted run's, line for line
    assert losses(full) == losses(resumed)
    # and differ from a run with another seed (the comparison is not vacuous)
    other = gankit.train(
        preset, {**base, "schedule.steps": 2 * n, "seed": 1}, out=tmp_path / "other"
    )
    assert losses(other) != losses(full)


def test_checkpoint_holds_full_state(tmp_path, fast_overrides):
    run = gankit.train(
        "quickstart", {**fast_overrides, **SMALL_DCGAN, "schedule.steps": 3}, out=tmp_path / "r"
    )
    state, meta = load_checkpoint(run.checkpoints()[-1])
    assert meta["step"] == 3
    assert set(state["modules"]) == {"generator", "discriminator", "generator_ema"}
    assert set(state["optimizers"]) == {"generator", "discriminator"}
    assert state["optimizers"]["generator"]["state"]  # Adam moments are there
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    assert "noise" in state["method"]
    # only discriminator steps draw real data: 3 steps x 1 critic step x batch 16
    assert state["data"] == {"epoch": 0, "position": 3 * 16}


def test_resume_rejects_a_checkpoint_of_another_recipe(tmp_path, fast_overrides):
    run_dir = tmp_path / "r"
    gankit.train("ring8", {**fast_overrides, **SMALL_WGAN_GP, "schedule.steps": 4}, out=run_dir)
    cfg = (run_dir / "config.yaml").read_text().replace("hidden: 32", "hidden: 48")
    (run_dir / "config.yaml").write_text(cfg)
    with pytest.raises(CheckpointError, match="does not fit"):
        gankit.resume(run_dir, {"schedule.steps": 8})


def test_damaged_checkpoint_gives_a_clear_error(tmp_path, fast_overrides):
    run = gankit.train(
        "ring8", {**fast_overrides, **SMALL_WGAN_GP, "schedule.steps": 2}, out=tmp_path / "r"
    )
    ckpt = run.checkpoints()[-1]
    data = (ckpt / "state.safetensors").read_bytes()
    (ckpt / "state.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        run.generator()
    (ckpt / "meta.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not written by this version"):
        run.generator()
