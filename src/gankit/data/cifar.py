"""CIFAR-10 from the extracted `cifar-10-python.tar.gz` (the `cifar-10-batches-py` folder).

The batches are pickles. Plain `pickle.load` would run whatever code a tampered file names, so they
are read with an unpickler that resolves only the few globals a numpy array and a dict need.
"""

from __future__ import annotations

import codecs
import pickle
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gankit.data import DATASETS
from gankit.data.base import InMemoryData, to_unit_range
from gankit.data.fetch import locate
from gankit.errors import ConfigError, DataError

try:  # numpy >= 2 moved the internals; pickles written by numpy 1 still name numpy.core
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
FOLDER = "cifar-10-batches-py"


def _dtype(spec, align=False, copy=False) -> np.dtype:
    """numpy.dtype for the plain numeric types a batch holds; a damaged or crafted pickle could
    otherwise build object or structured dtypes."""
    if isinstance(spec, bytes):  # a Python 2 str, read with encoding="bytes"
        spec = spec.decode("latin1")
    if not (isinstance(spec, str) and re.fullmatch(r"[<>|=]?[biuf][1248]", spec)):
        raise pickle.UnpicklingError(f"dtype {spec!r} is not a plain numeric type")
    if not all(isinstance(flag, (bool, int)) for flag in (align, copy)):
        raise pickle.UnpicklingError("malformed dtype arguments")
    return np.dtype(spec)


# Everything a CIFAR batch (a dict of bytes -> array / list of ints / str) can need, and no more.
# _codecs.encode is how Python 3 writes bytes in pickle protocols 0-2; _frombuffer is protocol 5.
SAFE_GLOBALS = {
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "bytes"): bytes,
    ("builtins", "str"): str,
    ("builtins", "int"): int,
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class _SafeUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (its opcodes can be checked one by one), restricted to
    SAFE_GLOBALS, with the state a dtype is given checked: a crafted state (e.g. flags that
    claim the items are Python objects) would make numpy read pixels as pointers."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")  # the official batches are Python 2 pickles
        self.path = path

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # Python 2's name, written by protocols 0-2
            module = "builtins"
        obj = SAFE_GLOBALS.get((module, name))
        if obj is None:
            raise DataError(
                f"{self.path}: refusing to load {module}.{name}; a CIFAR batch holds only "
                "arrays, lists and dicts, so this file is corrupt or malicious"
            )
        return obj

    def persistent_load(self, pid):
        raise DataError(f"{self.path}: unexpected persistent id in the pickle; not a CIFAR batch")

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.dtype):
            canonical = inst.__reduce__()[2]
            if not (
                isinstance(state, tuple)
                and len(state) == len(canonical)
                and state[0] == canonical[0]
                and state[1] in ("<", ">", "|", "=", b"<", b">", b"|", b"=")
                and state[2:] == canonical[2:]
            ):
                raise pickle.UnpicklingError(f"malformed state {state!r} for dtype {inst}")
        elif not isinstance(inst, np.ndarray):
            raise pickle.UnpicklingError(f"unexpected state for a {type(inst).__name__}")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as uint8 images (N, 3, 32, 32) and int64 labels (N,), shapes checked."""
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # any failure inside a hostile or damaged pickle
        raise DataError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: expected a dict with keys b'data' and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    if data.shape[1] != 3 * 32 * 32 or len(data) == 0:
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected (N, 3072), N >= 1")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"{path}: b'labels' must be a list of integers") from e
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def write_cifar_batch(file: str | Path, data: np.ndarray, labels) -> None:
    """Write a batch in the official layout (uint8 (N, 3072) + list of ints); used by tests."""
    batch = {
        b"data": np.ascontiguousarray(data, dtype=np.uint8),
        b"labels": [int(v) for v in labels],
    }
    with open(file, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _batch_folder(path: str) -> Path:
    folder = Path(path).expanduser()
    if (folder / FOLDER).is_dir():  # the user named the folder the archive was extracted into
        folder = folder / FOLDER
    if folder.is_file():
        raise DataError(f"data.path: {folder} is a file; extract cifar-10-python.tar.gz first")
    if not folder.is_dir():
        raise DataError(
            f"data.path: folder {folder} does not exist; point it at the {FOLDER} folder "
            "extracted from cifar-10-python.tar.gz"
        )
    return folder


@DATASETS.register("cifar10")
def cifar10(
    seed: int,
    path: str | None = None,
    split: Literal["train", "test"] = "train",
    limit: int | None = None,
) -> InMemoryData:
    """50,000 train / 10,000 test RGB images (N, 3, 32, 32) in [-1, 1], 10 classes.

    path: the cifar-10-batches-py folder (or the one it was extracted into); without it,
    gankit's data cache (`gankit data fetch cifar10`), then /usr/share/datasets/cifar10."""
    if limit is not None and limit < 1:
        raise ConfigError(f"data.limit: must be at least 1, got {limit}")
    folder = _batch_folder(str(locate("cifar10", where="data.path")) if path is None else path)
    names = TRAIN_FILES if split == "train" else TEST_FILES
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder}: missing {', '.join(missing)}; the {split} split needs {', '.join(names)} "
            "as extracted from cifar-10-python.tar.gz"
        )
    parts = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = to_unit_range(torch.from_numpy(images), 255.0)
    return InMemoryData(
        x, torch.from_numpy(labels), seed=seed, name=f"cifar10-{split}", num_classes=10
    )
