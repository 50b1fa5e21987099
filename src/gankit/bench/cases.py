"""What `gankit bench` times: cases (a shipped recipe on in-memory data) x modes.

Every case is a recipe with overrides (its data replaced by `random_images` of the recipe's
shape, so nothing is downloaded; a step costs the same whatever the pixels show). Modes:

  reference         the plain PyTorch loop of bench/reference.py, fp32
  gankit-fp32       gankit's method with fast.enabled false (plain fp32 gankit)
  gankit-fast       fast.enabled true, the recipe's fast defaults (precision auto)
  gankit-fast-bf16  fast.precision bf16, on CUDA and on CPUs with AVX-512 BF16 or AMX, so the
                    table shows bf16 where auto picks fp32

A runner is one mode of one case, built from a seed so every mode starts from equal weights;
`step()` runs one training step and returns its detached losses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from gankit.bench.pix2pix import Pix2PixStep, build_pix2pix_players
from gankit.bench.reference import ReferenceGAN, ReferencePix2Pix
from gankit.config import RunConfig, load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.methods import METHODS


class Runner(Protocol):
    batch_size: int
    precision: str  # what the step computes in: fp32, bf16 or fp16

    def step(self) -> dict[str, Tensor]: ...

    def modules(self) -> dict[str, nn.Module]: ...


@dataclass(frozen=True)
class Case:
    name: str
    title: str  # for the table
    recipe: str
    overrides: dict[str, Any]
    sample: str = "image"  # what one sample of the batch is (img/s counts these)
    kind: str = "gan"  # gan: gankit's GANMethod; pix2pix: bench/pix2pix.py's step
    unet: dict[str, Any] = field(default_factory=dict)  # pix2pix only
    l1_weight: float = 100.0  # pix2pix only


def _images(channels: int, size: int, n: int = 2048) -> dict[str, Any]:
    return {"name": "random_images", "channels": channels, "size": size, "n": n}


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case(
            "mlp-ring8",
            "MLP on ring8 (G 4x400 ReLU+BN, D 3x200 maxout-5), batch 100",
            "ring8",
            {},
            sample="2-D point",
        ),
        Case(
            "dcgan32",
            "DCGAN-32, 3x32x32 images, batch 64",
            "dcgan-fashion-mnist",
            {"data": _images(3, 32)},
        ),
        Case(
            "dcgan28",
            "DCGAN-28, 1x28x28 (Fashion-MNIST shape), batch 64",
            "dcgan-fashion-mnist",
            {"data": _images(1, 28)},
        ),
        Case(
            "improved-gan-mlp",
            "Improved-GAN MLP, 1x28x28, batch 64: G 2x500 softplus+VBN, D 3x500 ReLU + "
            "minibatch discrimination; historical averaging, label smoothing 0.9",
            "improved-gan-fashion-mnist",
            {
                "data": _images(1, 28),
                "generator": {
                    "name": "mlp",
                    "latent_dim": 100,
                    "hidden": 500,
                    "depth": 2,
                    "activation": "softplus",
                    "batch_norm": True,
                },
                "discriminator": {"name": "mlp", "hidden": 500, "depth": 3, "activation": "relu"},
            },
        ),
        Case(
            "patchgan-unet",
            "pix2pix step: U-Net G (depth 6, 64 base channels), 70-px PatchGAN D on "
            "(input, output), 3x64x64 pairs, batch 16, non-saturating + 100 L1",
            "patchgan-fashion-mnist",
            {
                "data": _images(6, 64, n=512),
                "discriminator": {
                    "name": "patchgan",
                    "base_channels": 64,
                    "n_layers": 3,
                    "norm": "batch",
                },
                "objective": {"name": "non_saturating"},
                "schedule.batch_size": 16,
            },
            sample="image pair",
            kind="pix2pix",
            unet={"base_channels": 64, "depth": 6, "dropout": 0.5},
        ),
    ]
}

MODES: dict[str, dict[str, Any] | None] = {
    "reference": None,
    "gankit-fp32": {"fast.enabled": False},
    "gankit-fast": {"fast.enabled": True},
    "gankit-fast-bf16": {"fast.enabled": True, "fast.precision": "bf16"},
}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_capable(device: torch.device) -> bool:
    """Whether bf16 runs natively: CUDA with bf16 support, or a CPU with AVX-512 BF16 or AMX."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def modes_for(device: torch.device) -> list[str]:
    return [m for m in MODES if m != "gankit-fast-bf16" or bf16_capable(device)]


def check_cases(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ConfigError(
            f"--cases: unknown case{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid cases: {', '.join(CASES)}"
        )
    if not names:
        raise ConfigError(f"--cases: name at least one; valid cases: {', '.join(CASES)}")
    return list(dict.fromkeys(names))


def case_config(
    case: Case, mode: str, device: torch.device, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """The resolved recipe of a case in a mode (the reference reads the fp32 one)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    items = {**case.overrides, **(overrides or {}), **(MODES[mode] or {"fast.enabled": False})}
    return load_recipe(case.recipe, {**items, "device": str(device)})


def build_runner(
    case: Case, mode: str, device: torch.device, overrides: dict[str, Any] | None = None
) -> Runner:
    """One mode of one case, its networks initialized from the recipe's seed."""

    cfg = case_config(case, mode, device, overrides)
    data = build_dataset(cfg.data, seed=cfg.seed).to(device)
    torch.manual_seed(cfg.seed)  # every mode builds its networks from the same state
    if case.kind == "pix2pix":
        if mode == "reference":
            G, D = build_pix2pix_players(cfg, data.shape, case.unet)
            return ReferencePix2Pix(cfg, data.x, G, D, case.l1_weight, device)
        return Pix2PixStep(cfg, data, case.unet, case.l1_weight, device)
    if mode == "reference":
        return ReferenceGAN(cfg, data, device)
    return GankitRunner(METHODS[cfg.method](cfg, data, device), cfg)


class GankitRunner:
    """gankit's method as the trainer drives it: `train_step(step)` with a counting step."""

    def __init__(self, method, cfg: RunConfig):
        self.method = method
        self.batch_size = cfg.schedule.batch_size
        fast = getattr(method, "fast", None)
        self.precision = getattr(fast, "precision", "fp32")
        self.steps = itertools.count()

    def modules(self) -> dict[str, nn.Module]:
        return self.method.modules()

    def step(self) -> dict[str, Tensor]:
        return self.method.train_step(next(self.steps))


def describe_runner(runner: Runner) -> str:
    """What a mode runs, for the table: fast mode's settings, or plain fp32."""
    fast = getattr(runner, "fast", None) or getattr(getattr(runner, "method", None), "fast", None)
    if fast is not None and hasattr(fast, "describe"):
        return fast.describe()
    return (
        "fp32 (plain PyTorch)" if isinstance(runner, (ReferenceGAN, ReferencePix2Pix)) else "fp32"
    )
