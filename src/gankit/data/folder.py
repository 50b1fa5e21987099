"""A folder of PNG/JPEG images (CelebA, LSUN exports, your own photos) resized to one square size.

Images are decoded once at start-up into one uint8 array, so training batches are tensor slices
with no per-step decoding. One subfolder per class (at least two) gives labels, as in ImageFolder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from gankit.data import DATASETS
from gankit.data.base import InMemoryData, to_unit_range
from gankit.errors import ConfigError, DataError

EXTENSIONS = (".png", ".jpg", ".jpeg")


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, recursive, sorted (deterministic order), hidden ones skipped."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


def class_labels(root: Path, paths: list[Path]) -> tuple[np.ndarray | None, int | None]:
    """Labels by top-level subfolder when every image lies in one of at least two of them."""
    tops = [p.relative_to(root).parts for p in paths]
    if any(len(parts) < 2 for parts in tops):
        return None, None
    classes = sorted({parts[0] for parts in tops})
    if len(classes) < 2:
        return None, None
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[parts[0]] for parts in tops], dtype=np.int64), len(classes)


def load_image(path: Path, size: int, mode: str, crop: str) -> np.ndarray:
    """One image as uint8 (size, size, channels): EXIF-rotated, converted, cropped, resized."""
    try:
        with Image.open(path) as im:
            im.draft(mode, (size, size))  # JPEGs decode at a reduced scale when much larger
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I"):  # 16-bit PNG: scale to 8 bits, as convert() clips
                pixels = np.asarray(im, dtype=np.int64) // 257
                im = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
            im = im.convert(mode)
            if crop == "center":  # crop first, as torchvision does: no pixels from outside
                w, h = im.size
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((size, size), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8).reshape(size, size, -1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read the image ({e}); remove or replace the file") from e


@DATASETS.register("folder")
def folder(
    seed: int,
    path: str | None = None,
    size: int = 64,
    channels: Literal[1, 3] = 3,
    crop: Literal["center", "none"] = "center",
    limit: int | None = None,
) -> InMemoryData:
    """Images (N, channels, size, size) in [-1, 1]; labels only for one-subfolder-per-class."""
    if path is None:
        raise ConfigError(
            "data.path: the folder data set needs a folder of images; "
            "set data.path=/folder/with/images (e.g. with --set)"
        )
    if size < 1:
        raise ConfigError(f"data.size: must be at least 1, got {size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"data.limit: must be at least 1, got {limit}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path: folder {root} does not exist")
    paths = find_images(root)
    if not paths:
        raise DataError(
            f"{root}: no images found (searched recursively for {', '.join(EXTENSIONS)}, "
            "any letter case)"
        )
    labels, num_classes = class_labels(root, paths)
    if limit is not None:
        paths = paths[:limit]
        labels = None if labels is None else labels[:limit]
    mode = "L" if channels == 1 else "RGB"
    pixels = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    bar = tqdm(paths, desc=f"loading {root.name}", unit="img", disable=len(paths) <= 1000)
    for i, p in enumerate(bar):
        pixels[i] = load_image(p, size, mode, crop)
    x = to_unit_range(torch.from_numpy(pixels).permute(0, 3, 1, 2), 255.0)
    y = None if labels is None else torch.from_numpy(labels)
    return InMemoryData(x, y, seed=seed, name=f"folder-{root.name}", num_classes=num_classes)
