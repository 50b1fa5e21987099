"""Open a finished (or running) run and sample from its generator, from Python or the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit.config import RunConfig, load_recipe
from gankit.errors import CheckpointError, GankitError
from gankit.methods import METHODS, build_sampling_generator
from gankit.models import build_generator
from gankit.models.latent import sample_latent
from gankit.registry import provided
from gankit.training.checkpoint import (
    checkpoint_step,
    list_checkpoints,
    load_checkpoint,
    load_module_state,
)
from gankit.training.outputs import read_metrics, save_samples
from gankit.tricks import build_tricks, wrap_generator


class Run:
    """A run folder: its resolved config, metrics, checkpoints and generator."""

    def __init__(
        self,
        path: str | Path,
        *,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        data: Any = None,
    ):
        """generator, discriminator, data: the objects a run trained from Python objects was
        given (gankit.train(generator=G, ...)), which nothing else can rebuild."""
        self.path = Path(path)
        objects = {"generator": generator, "discriminator": discriminator, "dataset": data}
        self.objects = {k: v for k, v in objects.items() if v is not None}
        if not (self.path / "config.yaml").is_file():
            raise GankitError(
                f"{self.path} is not a gankit run folder (no config.yaml); "
                "point to the folder `gankit train` printed"
            )
        with provided(self.objects):
            self.config: RunConfig = load_recipe(self.path / "config.yaml")
        info = self.path / "run.json"
        self.info: dict = json.loads(info.read_text()) if info.is_file() else {}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, step={self.info.get('step')})"

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.path / "checkpoints")

    def metrics(self) -> list[dict]:
        """Every line of metrics.jsonl (one per logging step)."""
        return read_metrics(self.path)

    def samples(self) -> list[Path]:
        return sorted((self.path / "samples").glob("step_*.png"))

    def checkpoint(self, checkpoint: int | str | Path | None = None) -> Path:
        """The newest checkpoint (None), the one of a step (an int, or digits that name no
        folder), or a checkpoint folder; an error when the run has none or not that step."""
        if isinstance(checkpoint, str) and checkpoint.isdigit() and not Path(checkpoint).exists():
            checkpoint = int(checkpoint)
        if isinstance(checkpoint, int):
            found = {checkpoint_step(p): p for p in self.checkpoints()}
            if checkpoint not in found:
                steps = ", ".join(map(str, sorted(found))) or "none yet"
                raise CheckpointError(
                    f"{self.path} has no checkpoint of step {checkpoint}; its steps: {steps}"
                )
            return found[checkpoint]
        if checkpoint is not None:
            return Path(checkpoint)
        found = self.checkpoints()
        if not found:
            raise CheckpointError(f"{self.path} has no checkpoint yet; train it first")
        return found[-1]

    def generator(
        self,
        ema: bool | None = None,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> nn.Module:
        """The generator of the newest checkpoint, in eval mode; the EMA copy when the run kept
        one (ema=None), unless ema=False."""
        path = self.checkpoint(checkpoint)
        state, meta = load_checkpoint(path)
        modules = state["modules"]
        if ema is None:
            ema = "generator_ema" in modules
        key = "generator_ema" if ema else "generator"
        if key not in modules:
            raise CheckpointError(f"{path} has no EMA generator: the run was trained without ema")
        shape = tuple(meta["data_shape"])
        with provided(self.objects):
            G = build_sampling_generator(self.config, shape)  # e.g. MAD-GAN's mixture
            if G is None:
                G = build_generator(self.config.generator, shape)
                G = wrap_generator(build_tricks(self.config), G, self.config)
        load_module_state(G, modules[key], key, path)
        return G.to(device).eval()

    @torch.no_grad()
    def sample(
        self,
        n: int = 64,
        seed: int = 0,
        ema: bool | None = None,
        device: str | torch.device = "cpu",
        labels: int | list[int] | Tensor | None = None,
        checkpoint: int | str | Path | None = None,
    ) -> Tensor:
        """n samples (images in [-1, 1], NCHW; or points) with the noise drawn from `seed`, from
        the newest checkpoint or `checkpoint` (a step or a folder).

        labels (class-conditional runs: cgan, acgan): one class for every sample (an int) or n
        labels; None: sample i has class i mod K."""
        if n < 1:
            raise GankitError(f"n: the number of samples must be at least 1, got {n}")
        G = self.generator(ema=ema, checkpoint=checkpoint, device=device)
        if labels is not None:
            if not METHODS[self.config.method].conditional:
                conditional = [n for n, c in METHODS.items() if c.conditional]
                raise GankitError(
                    f"labels: {self.config.method!r} runs are not class-conditional; "
                    f"labels are for {' and '.join(conditional)} runs"
                )
            labels = torch.full((n,), labels) if isinstance(labels, int) else labels
            labels = torch.as_tensor(labels, dtype=torch.long, device=device)
            if labels.shape != (n,) or labels.min() < 0 or labels.max() >= G.num_classes:
                raise GankitError(
                    f"labels: expected one class in [0, {G.num_classes}) or {n} of them, "
                    f"got {labels.tolist()}"
                )
        gen = torch.Generator(device=device).manual_seed(seed)
        g_cfg = self.config.generator
        out = []
        for start in range(0, n, 1024):
            z = sample_latent(
                min(1024, n - start),
                g_cfg["latent_dim"],
                g_cfg["latent_dist"],
                torch.device(device),
                gen,
            )
            if labels is not None:
                out.append(G(z, labels=labels[start : start + len(z)]).cpu())
                continue
            out.append(G(z).cpu())
        return torch.cat(out)

    def save_samples(
        self,
        out: str | Path,
        n: int = 64,
        seed: int = 0,
        ema: bool | None = None,
        labels: int | list[int] | Tensor | None = None,
        checkpoint: int | str | Path | None = None,
    ) -> Path:
        """Write samples to a .png (grid or scatter plot) or .npy (raw values) file; labels and
        checkpoint as for `sample`."""
        out = Path(out)
        if out.suffix not in (".png", ".npy"):
            raise GankitError(f"--out {out}: use a .png (picture) or .npy (raw samples) file name")
        samples = self.sample(n, seed=seed, ema=ema, labels=labels, checkpoint=checkpoint)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".npy":
            np.save(out, samples.numpy())
            return out
        G = self.generator(ema=ema, checkpoint=checkpoint)
        if hasattr(G, "sample_grid"):  # image-to-image: (source, translation) pairs
            with torch.no_grad():
                samples = G.sample_grid(torch.zeros(n, 1))
        return save_samples(samples, out)


def open_run(path: str | Path) -> Run:
    return Run(path)
