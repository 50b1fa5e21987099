"""LAPGAN: level shapes, the sampling path against the pyramid, and end-to-end training
(joint and levelwise) with an exact resume."""

import math

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.config import load_recipe
from gankit.methods.lapgan import LapGANGenerator, build_lapgan_generator
from gankit.pyramid import reconstruct, upsample

SMALL = {
    "generator.hidden": 16,
    "generator.depth": 1,
    "discriminator.hidden": 16,
    "discriminator.depth": 1,
    "method_options.level_width": 8,
    "schedule.batch_size": 8,
    "ema.enabled": False,
}


def test_levels_and_sampling_path_reconstruct_consistently():
    cfg = load_recipe("lapgan-fashion-mnist", {"generator.hidden": 16, "generator.depth": 1})
    G = build_lapgan_generator(cfg, (1, 28, 28)).eval()
    assert G.sizes == [7, 14, 28] and G.coarse_dim == 1080 - 196 - 784
    z = torch.randn(3, 1080, generator=torch.Generator().manual_seed(0))
    z0, planes = G.split(z)
    assert z0.shape == (3, 100) and [p.shape for p in planes] == [(3, 1, 14, 14), (3, 1, 28, 28)]
    # the planes are z's entries in order (row-major)
    assert torch.equal(planes[1].reshape(3, -1), z[:, 100 + 196 :])
    with torch.no_grad():
        image0 = G.coarse(z0)
        assert image0.shape == (3, 1, 7, 7)
        residuals, image = [], image0
        for level, noise in zip(G.levels, planes):
            h = level(upsample(image), noise)
            assert h.shape == (3, 1, 2 * image.shape[-1], 2 * image.shape[-1])
            residuals.append(h)
            image = upsample(image) + h
        out = G(z)
    assert out.shape == (3, 1, 28, 28)
    assert torch.allclose(out, reconstruct(image0, residuals), atol=1e-6)


def test_latent_dim_must_hold_the_noise_planes():
    with pytest.raises(gankit.errors.ConfigError, match="latent_dim"):
        cfg = load_recipe("lapgan-digits", {"generator.latent_dim": 64})
        build_lapgan_generator(cfg, (1, 8, 8))


@pytest.mark.parametrize("train", ["joint", "levelwise"])
def test_trains_and_resumes_exactly(tmp_path, fast_overrides, train):
    extra = {"method_options.train": train, "method_options.level_steps": 2}
    base = {**fast_overrides, "logging.every": 1, **SMALL, **extra}
    full = gankit.train("lapgan-digits", {**base, "schedule.steps": 4}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["step"] for m in lines] == [1, 2, 3, 4]
    for i, line in enumerate(lines):
        levels = [0, 1] if train == "joint" else [i // 2]
        for k in levels:
            for key in (f"d_loss/level{k}", f"g_loss/level{k}"):
                assert math.isfinite(line[key]), (key, line)
        if train == "levelwise":
            assert f"d_loss/level{1 - i // 2}" not in line

    gankit.train("lapgan-digits", {**base, "schedule.steps": 2}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 4})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 4
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert [(m["d_loss"], m["g_loss"]) for m in lines] == [
        (m["d_loss"], m["g_loss"]) for m in resumed.metrics()
    ]
    G = full.generator(ema=False)
    assert isinstance(G, LapGANGenerator)
    assert full.sample(5, seed=1).shape == (5, 1, 8, 8)
