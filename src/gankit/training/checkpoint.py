"""Full-state checkpoints: safetensors for tensors, JSON for everything else. No pickle.

A state (nested dicts/lists of tensors, numbers, strings, numpy arrays) is split into a flat
tensor dict, saved with safetensors, and a JSON skeleton with placeholders. A checkpoint is a
folder `step_XXXXXXXX` written under a temporary name, fsynced and renamed: a folder with that
name is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gankit.errors import CheckpointError
from gankit.state_dicts import describe_mismatch

FORMAT = "gankit-checkpoint/1"
STATE_FILE = "state.safetensors"
META_FILE = "meta.json"


def flatten_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    tensors: dict[str, torch.Tensor] = {}

    def enc(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value.detach().cpu().clone().contiguous()
            return {"__tensor__": path}
        if isinstance(value, np.ndarray):
            tensors[path] = torch.from_numpy(
                value.astype(np.int64 if value.dtype.kind in "iu" else value.dtype)
            )
            return {"__ndarray__": path, "dtype": str(value.dtype)}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {k: enc(v, f"{path}/{k}") for k, v in value.items()}
            return {"__items__": [[k, enc(v, f"{path}/{k}")] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"__tuple__": [enc(v, f"{path}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [enc(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot checkpoint a {type(value).__name__} at {path}")

    return enc(state, "state"), tensors


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def dec(value: Any) -> Any:
        if isinstance(value, dict):
            if "__tensor__" in value:
                return tensors[value["__tensor__"]]
            if "__ndarray__" in value:
                return tensors[value["__ndarray__"]].numpy().astype(value["dtype"])
            if "__items__" in value:
                return {k: dec(v) for k, v in value["__items__"]}
            if "__tuple__" in value:
                return tuple(dec(v) for v in value["__tuple__"])
            return {k: dec(v) for k, v in value.items()}
        if isinstance(value, list):
            return [dec(v) for v in value]
        return value

    try:
        return dec(skeleton)
    except KeyError as exc:
        raise CheckpointError(f"checkpoint is missing tensor {exc}; the file is damaged") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: Path, step: int, state: dict, meta: dict) -> Path:
    """Write `state` atomically as directory/step_XXXXXXXX and return that folder."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step_{step:08d}"
    tmp = directory / f".tmp-step_{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    skeleton, tensors = flatten_state(state)
    save_file(tensors, str(tmp / STATE_FILE))
    meta = {"format": FORMAT, "step": step, **meta, "state": skeleton}
    (tmp / META_FILE).write_text(json.dumps(meta))
    for f in (tmp / STATE_FILE, tmp / META_FILE, tmp):
        _fsync(f)
    if final.exists():  # same step saved twice (e.g. Ctrl-C right after a periodic save)
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync(directory)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.is_dir() and p.name.startswith("step_") and (p / META_FILE).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def prune_checkpoints(directory: Path, keep: int) -> None:
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in directory.glob(".tmp-step_*"):
        if not tmp.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """(state, meta) of a checkpoint folder; clear errors for anything that is not one."""
    path = Path(path)
    meta_file, state_file = path / META_FILE, path / STATE_FILE
    if not meta_file.is_file() or not state_file.is_file():
        raise CheckpointError(
            f"{path} is not a gankit checkpoint: expected {META_FILE} and {STATE_FILE} in it"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{meta_file}: not valid JSON ({exc}); the checkpoint is damaged"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{meta_file}: format {meta.get('format') if isinstance(meta, dict) else None!r} "
            f"is not {FORMAT!r}; this checkpoint was not written by this version of gankit"
        )
    try:
        tensors = load_file(str(state_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{state_file}: cannot read tensors ({exc}); the file is damaged"
        ) from None
    return unflatten_state(meta.pop("state"), tensors), meta


def load_module_state(module: torch.nn.Module, state: dict, name: str, origin: Path) -> None:
    """load_state_dict with a message that lists what does not match, not a torch traceback."""
    mismatch = describe_mismatch(module.state_dict(), state)
    if mismatch:
        raise CheckpointError(
            f"{origin}: the {name} in this checkpoint does not fit the recipe's {name} "
            f"({mismatch}). Was it written by another recipe?"
        )
    module.load_state_dict(state)
