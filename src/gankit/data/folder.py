"""A folder (or a .zip / uncompressed .tar) of PNG/JPEG/WebP images, resized to one square size.

Small sets are decoded once into memory and batches are tensor slices; sets whose float32 copy
exceeds data.memory_budget_mb are streamed by DataLoader workers (data/streamed.py), with the
same batch order either way. One subfolder per class (at least two) gives labels, as in
ImageFolder. Transforms: a center (or random) crop after resizing the shorter side to
data.load_size, and horizontal flips; their randomness is seeded per (seed, epoch, image), so
resume is exact.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from gankit.data import DATASETS
from gankit.data.base import DataSource
from gankit.data.streamed import DEFAULT_MEMORY_BUDGET_MB, from_dataset
from gankit.errors import ConfigError, DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
ARCHIVES = (".zip", ".tar")
COMPRESSED_TARS = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_image_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.lower().endswith(EXTENSIONS) and not any(p.startswith(".") for p in parts)


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, recursive, sorted (deterministic order), hidden ones skipped."""
    return sorted(
        p for p in root.rglob("*") if is_image_name(p.relative_to(root).as_posix()) and p.is_file()
    )


def class_labels(parts: list[tuple[str, ...]]) -> tuple[np.ndarray | None, int | None]:
    """Labels by top-level subfolder when every image lies in one of at least two of them."""
    if any(len(p) < 2 for p in parts):
        return None, None
    classes = sorted({p[0] for p in parts})
    if len(classes) < 2:
        return None, None
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[p[0]] for p in parts], dtype=np.int64), len(classes)


def decode(
    source: str | Path | io.BytesIO,
    size: int,
    mode: str,
    crop: str,
    load_size: int | None = None,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """One image as uint8 (size, size, channels): EXIF-rotated, converted, cropped, resized.

    Without load_size: crop the centered square ("center") or not ("none"), then resize to
    size. With load_size: resize the shorter side to load_size, then cut size x size from the
    center or, for crop="random", at a position drawn from `generator`."""
    with Image.open(source) as im:
        target = load_size or size
        im.draft(mode, (target, target))  # JPEGs decode at a reduced scale when much larger
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I"):  # 16-bit PNG: scale to 8 bits, as convert() clips
            pixels = np.asarray(im, dtype=np.int64) // 257
            im = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        im = im.convert(mode)
        if load_size is None:
            if crop == "center":  # crop first, as torchvision does: no pixels from outside
                w, h = im.size
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        else:
            w, h = im.size
            scale = load_size / min(w, h)
            w, h = max(load_size, round(w * scale)), max(load_size, round(h * scale))
            im = im.resize((w, h), Image.Resampling.BICUBIC)
            if crop == "random":
                left = int(torch.randint(0, w - size + 1, (), generator=generator))
                top = int(torch.randint(0, h - size + 1, (), generator=generator))
            else:
                left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
        return np.array(im, dtype=np.uint8).reshape(size, size, -1)  # writable


class ArchiveReader:
    """Image members of a .zip or an uncompressed .tar, read without extracting. Each process
    opens its own handle (DataLoader workers cannot share one)."""

    def __init__(self, path: Path):
        self.path = path
        self.kind = "zip" if path.suffix.lower() == ".zip" else "tar"
        self._pid, self._handle = None, None
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(path) as z:
                    infos = [i for i in z.infolist() if not i.is_dir()]
                    self.members = {i.filename: None for i in infos if is_image_name(i.filename)}
            else:
                with tarfile.open(path, "r:") as t:
                    self.members = {
                        m.name: (m.offset_data, m.size)
                        for m in t.getmembers()
                        if m.isfile() and is_image_name(m.name)
                    }
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
            raise DataError(f"{path}: not a readable {self.kind} archive ({e})") from None
        self.names = sorted(self.members)

    def read(self, name: str) -> io.BytesIO:
        if self._pid != os.getpid():
            self._handle = (
                zipfile.ZipFile(self.path) if self.kind == "zip" else open(self.path, "rb")
            )
            self._pid = os.getpid()
        if self.kind == "zip":
            return io.BytesIO(self._handle.read(name))
        offset, size = self.members[name]
        self._handle.seek(offset)
        return io.BytesIO(self._handle.read(size))

    def __getstate__(self) -> dict:  # sent to workers without the open handle
        return {**self.__dict__, "_pid": None, "_handle": None}


class ImageFiles(Dataset):
    """Image files of a folder or an archive as uint8 (C, size, size) tensors (with labels by
    subfolder), decoded on demand. `load(i, generator, transform)` applies the random crop and
    flip; `on_error="skip"` turns an unreadable file into None (counted by the stream)."""

    def __init__(
        self,
        root: Path,
        *,
        size: int,
        channels: int,
        crop: str,
        load_size: int | None,
        flip: bool,
        on_error: str,
        limit: int | None = None,
    ):
        self.root = root
        self.size, self.mode = size, "L" if channels == 1 else "RGB"
        self.crop, self.load_size, self.flip, self.on_error = crop, load_size, flip, on_error
        self.archive = None
        if root.is_dir():
            self.files: list[str] = [p.relative_to(root).as_posix() for p in find_images(root)]
        else:
            self.archive = ArchiveReader(root)
            self.files = self.archive.names
        if not self.files:
            raise DataError(
                f"{root}: no images found (searched recursively for {', '.join(EXTENSIONS)}, "
                "any letter case)"
            )
        parts = [tuple(f.split("/")) for f in self.files]
        if self.archive is not None and all(len(p) > 1 for p in parts):
            if len({p[0] for p in parts}) == 1:  # an archive of one folder: look inside it
                parts = [p[1:] for p in parts]
        labels, self.num_classes = class_labels(parts)
        if limit is not None:
            self.files = self.files[:limit]
            labels = None if labels is None else labels[:limit]
        self.labels = labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        return self.load(index, None, False)

    def load(self, index: int, generator: torch.Generator | None, transform: bool):
        name = self.files[index]
        source = self.root / name if self.archive is None else None
        crop = self.crop if transform or self.crop != "random" else "center"
        try:
            if source is None:
                source = self.archive.read(name)
            pixels = decode(source, self.size, self.mode, crop, self.load_size, generator)
        except (OSError, SyntaxError, ValueError, KeyError, Image.DecompressionBombError) as e:
            if self.on_error == "skip":
                return None
            where = self.root / name if self.archive is None else f"{self.root}:{name}"
            raise DataError(
                f"{where}: cannot read the image ({e}); remove or replace the file, or set "
                "data.on_error=skip to skip unreadable files"
            ) from None
        image = torch.from_numpy(pixels).permute(2, 0, 1)
        if transform and self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image = image.flip(-1)
        image = image.contiguous()
        return image if self.labels is None else (image, int(self.labels[index]))


@DATASETS.register("folder")
def folder(
    seed: int,
    path: str | None = None,
    size: int = 64,
    channels: Literal[1, 3] = 3,
    crop: Literal["center", "random", "none"] = "center",
    load_size: int | None = None,
    flip: bool = False,
    limit: int | None = None,
    stream: Literal["auto", "memory", "stream"] = "auto",
    workers: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    on_error: Literal["error", "skip"] = "error",
) -> DataSource:
    """Images (N, channels, size, size) in [-1, 1]; labels only for one-subfolder-per-class.

    path: a folder, a .zip or an uncompressed .tar. load_size: resize the shorter side to it,
    then crop size x size (crop: center or random). flip: random horizontal flips. stream:
    auto holds the images in memory when their float32 copy fits memory_budget_mb and streams
    them through `workers` DataLoader processes (default min(4, cores - 1)) otherwise."""
    if path is None:
        raise ConfigError(
            "data.path: the folder data set needs a folder of images; "
            "set data.path=/folder/with/images (e.g. with --set)"
        )
    if size < 1:
        raise ConfigError(f"data.size: must be at least 1, got {size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"data.limit: must be at least 1, got {limit}")
    if load_size is not None and load_size < size:
        raise ConfigError(
            f"data.load_size: must be at least data.size ({size}) to crop from, got {load_size}"
        )
    if crop == "random" and load_size is None:
        raise ConfigError(
            "data.crop: random crops need data.load_size (the shorter side is resized to it, "
            f"then a {size}x{size} square is cut), e.g. --set data.load_size={size * 9 // 8}"
        )
    if workers is not None and workers < 0:
        raise ConfigError(
            f"data.workers: must be >= 0 (0 reads in the main process), got {workers}"
        )
    if not memory_budget_mb >= 0:
        raise ConfigError(f"data.memory_budget_mb: must be >= 0, got {memory_budget_mb}")
    random_transforms = flip or crop == "random"
    if stream == "memory" and random_transforms:
        raise ConfigError(
            "data.stream: random crops and flips are applied as images are read, so they need "
            "data.stream=stream (or auto), not memory"
        )
    root = Path(path).expanduser()
    if root.name.lower().endswith(COMPRESSED_TARS):
        raise DataError(
            f"data.path: {root} is a compressed tar, which cannot be read without extracting; "
            "extract it, or use an uncompressed .tar or a .zip"
        )
    if not root.exists():
        raise DataError(f"data.path: {root} does not exist")
    if root.is_file() and root.suffix.lower() not in ARCHIVES:
        raise DataError(
            f"data.path: {root} is a file; give a folder of images, a .zip or a .tar of them"
        )
    images = ImageFiles(
        root,
        size=size,
        channels=channels,
        crop=crop,
        load_size=load_size,
        flip=flip,
        on_error=on_error,
        limit=limit,
    )
    return from_dataset(
        images,
        seed=seed,
        name=f"folder-{root.name}",
        stream="stream" if random_transforms and stream == "auto" else stream,
        workers=workers,
        memory_budget_mb=memory_budget_mb,
        num_classes=images.num_classes,
    )
