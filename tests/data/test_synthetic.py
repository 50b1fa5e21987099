"""random_images: shape, range, seeding and option checks."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError


def test_shape_range_and_seed():
    a = build_dataset({"name": "random_images", "channels": 3, "size": 8, "n": 10}, seed=1)
    b = build_dataset({"name": "random_images", "channels": 3, "size": 8, "n": 10}, seed=1)
    c = build_dataset({"name": "random_images", "channels": 3, "size": 8, "n": 10}, seed=2)
    assert a.shape == (3, 8, 8) and len(a) == 10 and a.is_image
    assert a.x.min() >= -1 and a.x.max() <= 1
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    wide = build_dataset({"name": "random_images", "size": 4, "width": 6, "n": 2}, seed=0)
    assert wide.shape == (3, 4, 6)


def test_a_recipe_can_train_on_it():
    cfg = load_recipe("quickstart", {"data": {"name": "random_images", "channels": 1, "size": 8}})
    assert cfg.data == {"name": "random_images", "channels": 1, "size": 8, "width": None, "n": 2048}


@pytest.mark.parametrize("key", ["channels", "size", "width", "n"])
def test_sizes_must_be_positive(key):
    with pytest.raises(ConfigError, match=f"data.{key}: must be at least 1"):
        build_dataset({"name": "random_images", key: 0}, seed=0)
