"""Shared fixtures of the trick tests: tiny networks, one CPU thread, a method built in place."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.methods.gan import GANMethod


@pytest.fixture(autouse=True)
def _one_thread():
    """The networks here are tiny: thread start-up costs more than it saves (and on a busy
    2-core machine several threads per op make every step ~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_ring(fast_overrides):
    """Overrides that shrink the ring8 preset to a few hundred parameters."""
    return {
        **fast_overrides,
        "generator.hidden": 16,
        "generator.depth": 2,
        "discriminator.hidden": 16,
        "discriminator.depth": 2,
        "schedule.batch_size": 16,
        "logging.every": 1,
    }


@pytest.fixture
def make_method(tiny_ring):
    """make_method(overrides, recipe="ring8"): a GANMethod on the CPU, as the trainer builds it
    (seeded the same way), without a run folder."""

    def make(overrides=None, recipe="ring8"):
        base = tiny_ring if recipe == "ring8" else {}
        cfg = load_recipe(recipe, {**base, **(overrides or {})})
        torch.manual_seed(cfg.seed)
        data = build_dataset(cfg.data, seed=cfg.seed)
        return GANMethod(cfg, data, torch.device("cpu"))

    return make
