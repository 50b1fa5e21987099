"""Every shipped recipe that uses a trick, a regularizer or PatchGAN trains end to end.

Image recipes read Fashion-MNIST; here they train on a small synthetic IDX set of the same
shape, so the test runs where Fashion-MNIST is not installed. The networks are shrunk and the
runs are a few dozen steps: what is checked is that each recipe's parts work together (losses
finite, a checkpoint written, the generator rebuilt from it and sampled).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gankit import api
from gankit.config import load_recipe, preset_names
from gankit.data.idx import FILES, write_idx


def _uses_a_trick(name: str) -> bool:
    """Recipes of the plain GAN method with a trick, a regularizer or PatchGAN (the other
    methods' recipes, image-to-image ones with PatchGAN among them, train in tests/methods)."""
    cfg = load_recipe(name)
    parts = cfg.tricks or cfg.regularizers or cfg.discriminator["name"] == "patchgan"
    return cfg.method == "gan" and bool(parts)


TRICK_PRESETS = [name for name in preset_names() if _uses_a_trick(name)]


@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory):
    """A 28x28 IDX data set of 96 random images with labels, in the Fashion-MNIST layout."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("test", 32)):
        images, labels = FILES[split]
        write_idx(root / images, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / labels, rng.integers(0, 10, n, dtype=np.uint8))
    return root


def test_every_part_has_a_recipe():
    used = set()
    for name in TRICK_PRESETS:
        cfg = load_recipe(name)
        used |= {t["name"] for t in cfg.tricks} | {r["name"] for r in cfg.regularizers}
        used.add(cfg.discriminator["name"])
    wanted = {
        "feature_matching", "minibatch_discrimination", "minibatch_stddev",
        "historical_averaging", "label_smoothing", "virtual_batch_norm", "spectral_norm",
        "instance_noise", "dragan", "r1", "pull_away", "patchgan",
    }  # fmt: skip
    assert wanted <= used, f"no shipped recipe uses {sorted(wanted - used)}"


@pytest.mark.parametrize("name", TRICK_PRESETS)
def test_trick_recipe_trains(name, tmp_path, fast_overrides, fake_fashion):
    cfg = load_recipe(name)
    overrides = {**fast_overrides, "schedule.steps": 24, "schedule.batch_size": 16}
    overrides["logging.checkpoint_every"] = 24
    if cfg.data["name"] == "idx":
        overrides["data.path"] = str(fake_fashion)
        overrides["generator.base_channels"] = 8
        overrides["discriminator.base_channels"] = 8
    else:
        overrides["generator.hidden"] = 32
        overrides["discriminator.hidden"] = 32
    for i, trick in enumerate(cfg.tricks):  # VBN runs its reference batch every step
        if trick["name"] == "virtual_batch_norm":
            overrides[f"tricks.{i}.reference_size"] = 8
    run = api.train(name, overrides, out=tmp_path / "run")
    logged = run.metrics()
    assert logged and logged[-1]["step"] == 24
    for row in logged:
        for key in ("d_loss", "g_loss"):
            if key in row:
                assert math.isfinite(row[key]), (key, row)
    samples = run.sample(8, seed=1)
    assert samples.shape[0] == 8
    assert samples.isfinite().all()
