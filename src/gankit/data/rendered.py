"""Synthetic digits rendered with a font: SimGAN's offline "simulator" (data/domains.py
`rendered_digits` pairs them with real scikit-learn digits).

Each image: a digit 0-9 drawn in white on black with a TrueType font (Debian's DejaVu Sans Bold
by default, found under /usr/share/fonts), cropped to its ink, scaled to fit a box of
`scale` x the canvas (aspect kept), rotated by `rotation` degrees, shifted by (dx, dy), on a
`render_size` canvas, then downsampled to `size` x `size` by box averaging (each output pixel
the mean of a block, as the UCI optdigits bitmaps were made) and scaled so the brightest pixel is
1, then mapped to [-1, 1]. Digit, scale, rotation and shift come from numpy's RandomState(seed):
the same seed renders the same images.

Without a TrueType font (no DejaVu, none given), PIL's built-in default font is used and a
warning says so (`font_path` reports which file was found).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gankit.errors import DataError

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts")
FONT_NAMES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf")


def font_path(font: str | None = None) -> Path | None:
    """The font file to render with: `font` when given (it must exist), else the first DejaVu
    Sans found, else None (PIL's default font)."""
    if font is not None:
        path = Path(font).expanduser()
        if not path.is_file():
            raise DataError(f"data.font: no font file {path}")
        return path
    for folder in FONT_DIRS:
        for name in FONT_NAMES:
            path = Path(folder) / name
            if path.is_file():
                return path
    return None


def _load_font(path: Path | None, px: int):
    from PIL import ImageFont

    if path is None:
        warnings.warn(
            "rendered digits: no DejaVu font found; using PIL's default font", stacklevel=3
        )
        try:
            return ImageFont.load_default(size=px)
        except TypeError:  # Pillow < 10.1: a fixed bitmap font
            return ImageFont.load_default()
    return ImageFont.truetype(str(path), px)


def _glyph(font, digit: int, px: int) -> np.ndarray:
    """The digit's ink, cropped to its bounding box (float in [0, 1])."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (2 * px, 2 * px), 0)
    ImageDraw.Draw(canvas).text((px // 2, px // 4), str(digit), fill=255, font=font)
    box = canvas.getbbox()
    if box is None:
        raise DataError(f"rendered digits: the font draws nothing for {digit}")
    return canvas.crop(box)


def render_digits(
    n: int,
    seed: int,
    size: int = 8,
    render_size: int = 32,
    scale: tuple[float, float] = (0.75, 0.95),
    max_rotation: float = 10.0,
    max_shift: float = 0.08,
    font: str | None = None,
) -> tuple[Tensor, Tensor]:
    """n images (n, 1, size, size) in [-1, 1] and their digits (n,) (module docstring).
    scale: range of the glyph's box side over the canvas side; max_rotation in degrees;
    max_shift: largest shift as a fraction of the canvas side."""
    from PIL import Image

    if render_size % size:
        raise DataError(f"rendered digits: render_size {render_size} must be a multiple of {size}")
    rng = np.random.RandomState(seed)
    font_obj = _load_font(font_path(font), render_size)
    glyphs = [_glyph(font_obj, d, render_size) for d in range(10)]
    labels = rng.randint(0, 10, size=n)
    images = np.zeros((n, size, size), dtype=np.float32)
    for i, digit in enumerate(labels):
        s = rng.uniform(*scale)
        angle = rng.uniform(-max_rotation, max_rotation)
        dx, dy = rng.uniform(-max_shift, max_shift, size=2) * render_size
        glyph = glyphs[digit]
        fit = s * render_size / max(glyph.size)
        w, h = max(1, round(glyph.size[0] * fit)), max(1, round(glyph.size[1] * fit))
        glyph = glyph.resize((w, h), Image.BILINEAR).rotate(
            angle, resample=Image.BILINEAR, expand=True
        )
        canvas = Image.new("L", (render_size, render_size), 0)
        x0 = round((render_size - glyph.size[0]) / 2 + dx)
        y0 = round((render_size - glyph.size[1]) / 2 + dy)
        canvas.paste(glyph, (x0, y0))
        small = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32)
        images[i] = small / max(float(small.max()), 1e-6)
    x = torch.from_numpy(images).unsqueeze(1) * 2 - 1
    return x, torch.from_numpy(labels).long()
