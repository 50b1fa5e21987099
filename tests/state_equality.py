"""Bit-for-bit comparison of saved training states (resume tests of the trainer and methods).

Importable from every test: tests/conftest.py's folder is on sys.path (pytest's rootdir
conftest, no __init__.py).
"""

from __future__ import annotations

import torch

from gankit.training.checkpoint import load_checkpoint


def final_state(run) -> dict:
    """The newest checkpoint of a run, with its step."""
    state, meta = load_checkpoint(run.checkpoints()[-1])
    return {"step": meta["step"], **state}


def assert_same(a, b, path: str = "state", skip: tuple[str, ...] = ()) -> None:
    """a and b hold equal tensors (torch.equal) and values at every key, except keys in skip."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys differ"
        for key in a:
            if key not in skip:
                assert_same(a[key], b[key], f"{path}/{key}", skip)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]", skip)
    else:
        assert a == b, f"{path}: {a} != {b}"
