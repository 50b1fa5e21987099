"""What a run writes besides checkpoints: metrics.jsonl, TensorBoard scalars and sample pictures."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

logger = logging.getLogger("gankit.training")


def image_grid(
    images: Tensor, nrow: int | None = None, padding: int = 1, min_tile: int = 32
) -> np.ndarray:
    """NCHW images in [-1, 1] -> one uint8 HWC (or HW) array, tiles enlarged to >= min_tile px."""
    images = images.detach().float().cpu().clamp(-1, 1)
    n, c, h, w = images.shape
    scale = max(1, math.ceil(min_tile / max(h, w)))
    if scale > 1:
        images = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
        h, w = h * scale, w * scale
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.ones(c, ncol * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    array = ((grid + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return array[:, :, 0] if c == 1 else array


def save_image_grid(images: Tensor, path: Path, nrow: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, nrow)).save(path)
    return path


def save_points_plot(fake: Tensor, real: Tensor | None, path: Path, title: str = "") -> Path:
    """2D samples as a scatter plot over real samples (for the toy mixtures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if real is not None:
        r = real.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="tab:blue", alpha=0.3, label="real")
    f = fake.detach().float().cpu().numpy()
    ax.scatter(f[:, 0], f[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_samples(samples: Tensor, path: Path, real: Tensor | None = None, title: str = "") -> Path:
    """PNG of generated samples: an image grid, or a scatter plot for 2D points."""
    if samples.ndim == 4:
        return save_image_grid(samples, path)
    if samples.ndim == 2 and samples.shape[1] == 2:
        return save_points_plot(samples, real, path, title)
    raise ValueError(f"cannot draw samples of shape {tuple(samples.shape)}; save them as .npy")


class MetricsLog:
    """Appends one JSON line per log step and mirrors scalars (and images) to TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool = True):
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def event(self, step: int, values: dict) -> None:
        """A line that records something that happened (e.g. a divergence-guard rollback)."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None and "rollback" in values:
            self.writer.add_scalar("guard/rollbacks", values["rollback"], step)

    def image(self, step: int, tag: str, png_path: Path) -> None:
        if self.writer is not None:
            array = np.asarray(Image.open(png_path).convert("RGB"))
            self.writer.add_image(tag, array, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def read_metrics_lines(path: Path) -> list[tuple[str, dict | None]]:
    """(line, parsed value) for each non-empty line; None for a line that is not a JSON object
    (the last line of a run killed while writing it)."""
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        out.append((line, value if isinstance(value, dict) else None))
    return out


def read_metrics(run_dir: Path) -> list[dict]:
    """Every line of RUN_DIR/metrics.jsonl: one per logging step, plus event lines (a key
    "event", e.g. divergence-guard rollbacks). A line cut short by a kill is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [value for _, value in read_metrics_lines(path) if value is not None]


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a file's contents so that a kill at any moment leaves the old or the new
    contents, never a truncated file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def warn_user(message: str) -> None:
    """A warning that reaches the user: through `logging` when the application configured it,
    else printed above the progress bar."""
    if logger.hasHandlers():
        logger.warning(message)
    else:
        tqdm.write(f"gankit: warning: {message}", file=sys.stderr)
