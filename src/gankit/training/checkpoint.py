"""Full-state checkpoints: safetensors for tensors, JSON for everything else. No pickle.

A state (nested dicts/lists of tensors, numbers, strings, numpy arrays) is split into a flat
tensor dict, saved with safetensors, and a JSON skeleton with placeholders. A checkpoint is a
folder `step_XXXXXXXX` written under a temporary name, fsynced and renamed: a folder with that
name is always complete. Old checkpoints are renamed away before they are deleted, so a kill at
any moment leaves only complete step_ folders and hidden leftovers that `clean_partial` removes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
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


# Test-only hook: GANKIT_TEST_SLOW_CHECKPOINT=SECONDS makes every checkpoint write sleep that long
# in two halves (after the tensors are written, and after meta.json, before the rename), so the
# kill test (tests/reliability/test_kill.py) can SIGKILL a run in the middle of a write. Never set
# it for real runs.
SLOW_ENV = "GANKIT_TEST_SLOW_CHECKPOINT"


def _test_pause() -> None:
    seconds = os.environ.get(SLOW_ENV)
    if seconds:
        time.sleep(float(seconds) / 2)


def _checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(directory: Path, step: int, state: dict, meta: dict) -> Path:
    """Write `state` atomically as directory/step_XXXXXXXX and return that folder.

    The files go into a temporary folder, are fsynced, and the folder is renamed into place, so
    a folder named step_XXXXXXXX is always complete and a kill at any moment leaves the previous
    checkpoints untouched. A step is written once: when a complete checkpoint of this step
    exists already (a Ctrl-C right after a periodic save), it holds the same state and is kept.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _checkpoint_name(step)
    if is_complete(final):
        return final
    tmp = directory / f"{TMP_PREFIX}{_checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    skeleton, tensors = flatten_state(state)
    meta = {"format": FORMAT, "step": step, **meta, "state": skeleton}
    try:
        tmp.mkdir()
        save_file(tensors, str(tmp / STATE_FILE))
        _test_pause()
        (tmp / META_FILE).write_text(json.dumps(meta))
        for f in (tmp / STATE_FILE, tmp / META_FILE, tmp):
            _fsync(f)
        _test_pause()
        if final.exists():  # an incomplete folder of that name (not written by gankit)
            _remove(final)
        os.rename(tmp, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # e.g. disk full: no half checkpoint left behind
        raise
    return final


TMP_PREFIX = ".tmp-"  # a checkpoint being written
DEL_PREFIX = ".del-"  # a checkpoint being deleted


def is_complete(path: Path) -> bool:
    return (path / META_FILE).is_file() and (path / STATE_FILE).is_file()


def checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith("step_") or not name[5:].isdigit() or not name[5:].isascii():
        return None
    return int(name[5:])


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first (leftovers of killed writes are never listed)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if checkpoint_step(p) is not None and is_complete(p)]
    return sorted(found, key=checkpoint_step)


def _remove(path: Path) -> None:
    """Delete a checkpoint folder so that a kill halfway never leaves a damaged step_ folder:
    first rename it out of the way (atomic), then delete the files."""
    trash = path.with_name(f"{DEL_PREFIX}{path.name}-{os.getpid()}")
    try:
        os.rename(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def clean_partial(directory: Path, all_processes: bool = True) -> list[Path]:
    """Remove what killed processes left: temporary folders of unfinished writes and deletes.
    With all_processes=False, the current process's own temporary folders are kept."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in directory.iterdir():
        if not p.name.startswith((TMP_PREFIX, DEL_PREFIX)):
            continue
        if not all_processes and p.name.endswith(f"-{os.getpid()}"):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints; remove older ones and leftovers of killed writes."""
    directory = Path(directory)
    for old in list_checkpoints(directory)[:-keep]:
        _remove(old)
    clean_partial(directory, all_processes=False)


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
