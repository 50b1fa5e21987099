"""MAD-GAN, MRGAN and MDGAN train end to end through gankit.train with finite losses, and a
resumed run ends bit-identical to an uninterrupted one (CPU), every player included."""

import math

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.methods.madgan import MixtureGenerator
from gankit.report import load_run, surface_figure

SMALL = {
    "generator.hidden": 16,
    "generator.depth": 2,
    "discriminator.hidden": 16,
    "discriminator.depth": 2,
    "schedule.batch_size": 16,
}
ENCODER = {"method_options.encoder": {"name": "mlp", "hidden": 16, "depth": 2}}
CASES = {
    "madgan": ("ring8-madgan", {"method_options.k": 3}),
    "madgan-sim-shared": (
        "ring8-madgan",
        {"method_options.variant": "sim", "method_options.shared_trunk": True},
    ),
    "mrgan": ("ring8-mrgan", ENCODER),
    "mdgan": ("ring8-mdgan", ENCODER),
}
LOGS = {
    "madgan": {"p_real", "p_fake"},
    "madgan-sim-shared": {"p_real", "p_fake", "sim"},
    "mrgan": {"e_loss", "geometric", "mode"},
    "mdgan": {"d_manifold", "g_manifold", "geometric"},
}
MODULES = {
    "madgan": {"generator", "discriminator"},
    "madgan-sim-shared": {"generator", "discriminator"},
    "mrgan": {"generator", "discriminator", "encoder"},
    "mdgan": {"generator", "discriminator", "encoder", "discriminator_diffusion"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_trains_and_resumes_exactly(tmp_path, fast_overrides, case):
    preset, extra = CASES[case]
    n = 3
    base = {**fast_overrides, "logging.every": 1, **SMALL, **extra}
    full = gankit.train(preset, {**base, "schedule.steps": 2 * n}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["step"] for m in lines] == list(range(1, 2 * n + 1))
    for line in lines:
        for key in ("d_loss", "g_loss", *LOGS[case]):
            assert math.isfinite(line[key]), (key, line)

    gankit.train(preset, {**base, "schedule.steps": n}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * n})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    assert set(a["modules"]) == set(a["optimizers"]) == MODULES[case]
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert [(m["d_loss"], m["g_loss"]) for m in lines] == [
        (m["d_loss"], m["g_loss"]) for m in resumed.metrics()
    ]

    # the checkpoint's generator loads outside training (MAD-GAN: the mixture of k)
    G = full.generator(ema=False)
    if preset == "ring8-madgan":
        assert isinstance(G, MixtureGenerator)
    assert full.sample(7, seed=1).shape == (7, 2)
    # and so does its discriminator, for the report's decision surface
    assert surface_figure(load_run(full.path)) is not None
