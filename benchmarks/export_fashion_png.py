"""Write Fashion-MNIST's training images as PNG folders (one subfolder per class), resized to
64x64 and 128x128, so the streamed-data benchmark trains from files as a user's photos would be.

    python benchmarks/export_fashion_png.py --out /tmp/fashion-png --sizes 64 128

Images are resized with PIL's bicubic filter from 28x28; OUT/<size>/<class>/<index>.png.
An existing complete folder (its count file matches) is left as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from gankit.data.idx import load_idx_arrays

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "boot")  # fmt: skip


def export(idx_folder: Path, out: Path, size: int, limit: int | None = None) -> Path:
    images, labels = load_idx_arrays(idx_folder, "train")
    if limit:
        images, labels = images[:limit], labels[:limit]
    folder = out / str(size)
    done = folder / "COUNT"
    if done.is_file() and done.read_text().strip() == str(len(images)):
        return folder
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, (pixels, label) in enumerate(
        tqdm(zip(images, labels), total=len(images), desc=f"{size} px", unit="img")
    ):
        im = Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC)
        im.save(folder / CLASSES[label] / f"{i:05d}.png", compress_level=6)
    done.write_text(f"{len(images)}\n")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--idx", type=Path, default=FASHION, help="folder with the IDX files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    args = p.parse_args()
    for size in args.sizes:
        print(export(args.idx, args.out, size, args.limit))


if __name__ == "__main__":
    main()
