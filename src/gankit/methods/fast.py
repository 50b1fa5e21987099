"""Fast mode: how a method runs its forward and backward passes on this device.

One object, resolved once from the recipe's `fast` section, that a method asks for
- `autocast()`: reduced-precision autocast around forward passes and losses (bf16, or fp16 with
  a GradScaler), or nothing in fp32;
- `prepare(module)`: channels_last memory format for convolutional models;
- `compiled(module)`: a torch.compile'd version for forward passes, when asked;
- `backward(loss)` / `step(optimizer)`: loss scaling for fp16, plain calls otherwise.

`precision: auto` picks bf16 only where it is measured to pay: on CUDA GPUs that support it
(else fp16 with loss scaling) and, for convolutional models, on CPUs with AMX tiles. On CPUs with
AVX-512 BF16 but no AMX, bf16 convolutions are not faster than fp32
(benchmarks/results/speed/bench.md), so auto stays fp32 there; for recipes whose networks are all
fully connected (`dense_only`: the 2D mixtures' MLPs) it stays fp32 on CPUs too, since such small
steps are not faster in bf16 and 2D samples need more precision than bf16's 8 bits (a ring mode
has std 0.01). `precision: bf16` still forces it. With `enabled: false` nothing here changes the
step: plain fp32, default optimizers, as a hand-written PyTorch loop.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.schema import FastConfig

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """True when this CPU has AMX tiles the OS lets processes use (Linux reports amx_tile in
    /proc/cpuinfo only then)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_tile" in flags and "amx_bf16" in flags


# model names whose networks are fully connected only
DENSE_MODELS = {"mlp", "autoencoder"}


def dense_only(recipe) -> bool:
    """True when the recipe's generator and discriminator are fully connected (no convolution)."""
    names = [recipe.generator.get("name"), (recipe.discriminator or {}).get("name")]
    return all(name in DENSE_MODELS for name in names if name)


def resolve_precision(cfg: FastConfig, device: torch.device, dense: bool = False) -> str:
    """'fp32', 'bf16' or 'fp16' for this recipe on this device (`dense`: fully connected
    networks only)."""
    if not cfg.enabled or cfg.precision == "fp32":
        return "fp32"
    if cfg.precision != "auto":
        if device.type == "cuda" and cfg.precision == "bf16" and not _cuda_bf16(device):
            raise ConfigError(
                f"fast.precision: bf16 asked for, but {torch.cuda.get_device_name(device)} does "
                "not support it; use fp16 (with loss scaling) or fp32"
            )
        return cfg.precision
    if device.type == "cuda":
        return "bf16" if _cuda_bf16(device) else "fp16"
    if device.type == "cpu" and cpu_has_amx() and not dense:
        return "bf16"
    return "fp32"


def _cuda_bf16(device: torch.device) -> bool:
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported()


class FastMode:
    def __init__(self, cfg: FastConfig, device: torch.device, dense: bool = False):
        self.device = torch.device(device)
        self.precision = resolve_precision(cfg, self.device, dense)
        self.dtype = DTYPES.get(self.precision)  # None: fp32, no autocast
        self.channels_last = cfg.enabled and cfg.channels_last
        self.fused_optimizer = cfg.enabled and cfg.fused_optimizer
        self.compile = cfg.enabled and cfg.compile
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    @classmethod
    def for_recipe(cls, recipe, device: torch.device) -> FastMode:
        """The fast mode of a whole recipe: its `fast` section, and whether its networks are all
        fully connected (`dense_only`), which `precision: auto` reads."""
        return cls(recipe.fast, device, dense_only(recipe))

    def describe(self) -> str:
        parts = [self.precision]
        if self.channels_last:
            parts.append("channels_last for conv models")
        if self.fused_optimizer:
            parts.append("fused optimizers")
        if self.compile:
            parts.append("torch.compile")
        return ", ".join(parts)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: nn.Module) -> nn.Module:
        """channels_last for models with 4-d weights (convolutions); others are unchanged."""
        if self.channels_last and any(p.ndim == 4 for p in module.parameters()):
            module = module.to(memory_format=torch.channels_last)
        return module

    def compiled(self, module: nn.Module) -> nn.Module | None:
        """torch.compile(module) when fast.compile is on (it shares the module's parameters;
        checkpoints keep using the module itself), else None."""
        return torch.compile(module) if self.compile else None

    def full_precision(self):
        """Turns autocast off inside an autocast region (penalties that differentiate twice)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, enabled=False)

    def backward(self, loss: Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Make the gradients true gradients before they are read (statistics, clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)  # skipped when the scaled gradients overflowed
        self.scaler.update()
        # an overflow is the scaler's business, not a divergence: drop the gradients so the
        # divergence guard does not read the skipped step's inf gradients
        optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {} if self.scaler is None else {"grad_scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])


@torch.no_grad()
def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (Adam's moments, ...) its parameter's memory layout.

    A checkpoint stores tensors contiguous, so after loading, the moments of a channels_last
    convolution weight are laid out differently from the weight. PyTorch's fused CPU Adam
    (torch 2.13) then pairs elements by memory position, not by index, and silently applies
    wrong updates; matching the layouts after every load avoids it (and costs nothing when they
    already match).
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if (
                    isinstance(value, Tensor)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
