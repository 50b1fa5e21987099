"""Seed and capture every random number generator a run touches, so resume is exact."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    fix_thread_count()


def fix_thread_count() -> None:
    """Keep MKL at torch's thread count. MKL may otherwise use fewer threads when the machine
    is busy (its default MKL_DYNAMIC), which changes the order of its sums and the last bits
    of a run's numbers. torch.set_num_threads turns that off (mkl_set_dynamic(0)) at the same
    count. On a heavily overloaded machine runs can still differ in the last bits (rarely):
    another threaded library adapts too."""
    torch.set_num_threads(torch.get_num_threads())


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_tuple(value):
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value


def set_rng_state(state: dict) -> None:
    random.setstate(_to_tuple(state["python"]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def mix_seed(seed: int, salt: int) -> int:
    """A seed in [0, 2**63) derived from (seed, salt), distinct for different salts."""
    x = (seed * 0x9E3779B97F4A7C15 + (salt + 1) * 0xBF58476D1CE4E5B9) % 2**64
    x ^= x >> 31
    return x % 2**63
