"""MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST), raw or gzipped, read without torchvision.

The header is parsed by hand and every size is checked against the file, so a truncated download
fails with the file name and the expected size instead of a reshape error deep inside numpy.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gankit.data import DATASETS
from gankit.data.base import InMemoryData, to_unit_range
from gankit.data.fetch import locate
from gankit.errors import ConfigError, DataError

# IDX type code -> big-endian numpy dtype (yann.lecun.com/exdb/mnist, "THE IDX FILE FORMAT").
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytearray:
    """The file's (decompressed) bytes; a bytearray so the arrays built on it are writable."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return bytearray(f.read())
        return bytearray(path.read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        kind = "is not a valid gzip file" if path.name.endswith(".gz") else "cannot be read"
        raise DataError(f"{path} {kind} ({e}); download it again") from e


def read_idx(file_path: str | Path) -> np.ndarray:
    """An IDX file (gzipped when the name ends in .gz) as a native-endian array of its shape."""
    path = Path(file_path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: not an IDX file (the first two bytes must be zero, got {bytes(data[:2])!r})"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPES:
        raise DataError(
            f"{path}: unknown IDX type code 0x{type_code:02x}; "
            f"valid codes: {', '.join(f'0x{c:02x}' for c in IDX_TYPES)}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: corrupt header, negative dimension in {dims}")
    dtype = np.dtype(IDX_TYPES[type_code])
    count = math.prod(dims)  # Python ints: a corrupt header cannot overflow the check
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        what = "decompressed size" if path.name.endswith(".gz") else "size"
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {state}: header says shape {dims} so the {what} should be "
            f"{expected} bytes, but it is {len(data)} bytes; download it again"
        )
    array = np.frombuffer(data, dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(file_path: str | Path, array: np.ndarray) -> None:
    """Write `array` as an IDX file (gzipped when the name ends in .gz); used by tests and tools."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{file_path}: IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    payload = header + array.astype(IDX_TYPES[code], copy=False).tobytes()
    path = Path(file_path)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{folder}: found neither {name} nor {name}.gz; an IDX folder holds "
        f"{', '.join(n for pair in FILES.values() for n in pair)} (each raw or .gz)"
    )


def load_idx_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W) and labels (N,) of one split, shapes checked against each other."""
    image_path, label_path = (_find(folder, name) for name in FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    for path, array, ndim in ((image_path, images, 3), (label_path, labels, 1)):
        if array.ndim != ndim or array.dtype != np.uint8:
            raise DataError(
                f"{path}: expected {ndim}-D unsigned bytes (type code 0x08), "
                f"got {array.ndim}-D {array.dtype}"
            )
    if len(images) != len(labels):
        raise DataError(
            f"{folder}: {image_path.name} holds {len(images)} images but "
            f"{label_path.name} holds {len(labels)} labels; they must match"
        )
    if len(images) == 0 or 0 in images.shape[1:]:
        raise DataError(f"{image_path}: holds no pixels (shape {images.shape}); download it again")
    return images, labels


@DATASETS.register("idx")
def idx(
    seed: int,
    path: str | None = None,
    dataset: Literal["mnist", "fashion-mnist"] | None = None,
    split: Literal["train", "test"] = "train",
    classes: list[int] | None = None,
    limit: int | None = None,
) -> InMemoryData:
    """Images (N, 1, H, W) in [-1, 1] with their original labels, optionally a subset of classes.

    path: the folder with the IDX files. dataset: a standard data set, used when path is not
    given, found in gankit's data cache (`gankit data fetch NAME`) or /usr/share/datasets/NAME."""
    if path is None and dataset is None:
        raise ConfigError(
            "data.path: the idx data set needs the folder with the IDX files; "
            "set data.path=/folder/with/idx/files or data.dataset=mnist (or fashion-mnist), "
            "e.g. with --set"
        )
    folder = Path(path).expanduser() if path is not None else locate(dataset)
    if not folder.is_dir():
        raise DataError(f"data.path: folder {folder} does not exist")
    if limit is not None and limit < 1:
        raise ConfigError(f"data.limit: must be at least 1, got {limit}")
    images, labels = load_idx_arrays(folder, split)
    num_classes = int(labels.max()) + 1
    if classes is not None:
        missing = sorted(set(classes) - set(np.unique(labels).tolist()))
        if missing:
            raise ConfigError(
                f"data.classes: {missing} do not occur in {folder} ({split}); "
                f"its labels run from 0 to {num_classes - 1}"
            )
        keep = np.isin(labels, classes)
        images, labels = images[keep], labels[keep]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = to_unit_range(torch.from_numpy(images).unsqueeze(1), 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    name = f"{folder.name}-{split}"
    return InMemoryData(x, y, seed=seed, name=name, num_classes=num_classes)
