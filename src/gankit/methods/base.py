"""What every training method provides to the generic trainer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.models.latent import sample_latent
from gankit.schema import OptimizerConfig, RunConfig


def build_optimizer(params, cfg: OptimizerConfig, fused: bool = False) -> torch.optim.Optimizer:
    """fused: one kernel for all parameters' updates (Adam, SGD) or the multi-tensor foreach
    implementation (RMSprop has no fused kernel); False: PyTorch's defaults."""
    params = list(params)
    speed = {"fused": True} if fused and cfg.name in ("adam", "sgd") else {}
    if fused and cfg.name == "rmsprop":
        speed = {"foreach": True}
    if cfg.name == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, **speed
        )
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, **speed
        )
    return torch.optim.SGD(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, **speed
    )


class Noise:
    """The generator's latent noise, from its own seeded generator (its state is checkpointed).

    Under data-parallel training (`shard`), every process draws the same global batch of n rows
    from the shared stream and keeps its own n / world rows, so the stream and its state are
    those of a single process."""

    rank: int = 0
    world: int = 1

    def __init__(self, dim: int, dist: str, seed: int, device: torch.device):
        self.dim = dim
        self.dist = dist
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def shard(self, rank: int, world: int) -> None:
        """From now on, __call__(n) returns rows [rank * n/world, (rank + 1) * n/world) of an
        n-row draw."""
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.rank, self.world = rank, world

    def __call__(self, n: int) -> Tensor:
        z = sample_latent(n, self.dim, self.dist, self.device, self.generator)
        if self.world == 1:
            return z
        if n % self.world:
            raise ConfigError(
                f"latent noise: a global batch of {n} rows cannot be split evenly among "
                f"{self.world} processes; use batch sizes that are multiples of {self.world}"
            )
        b = n // self.world
        return z[self.rank * b : (self.rank + 1) * b]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class Method:
    """Base class. Subclasses build their players in __init__ and implement train_step."""

    generator: nn.Module  # the network to sample from
    # Set by the trainer to True on the steps whose logs it reads (log steps): statistics that
    # cost extra work (gradient norms) are computed only then, so the hot loop stays lean.
    collect_stats: bool = False
    # True for a method that sets its own learning rates every step (CycleGAN's decay): the
    # trainer's schedule.lr_decay_* would fight it, so a recipe may not set both
    owns_lr_schedule: bool = False
    # What the method offers evaluation (metrics/evaluate.py reads these, never its name):
    trains_classifier: bool = False  # build_classifier + classifier_keys: metric accuracy
    conditional: bool = False  # G(z, labels=y) draws class y: metric class_accuracy, --labels
    evaluator: str | None = None  # scored by its own evaluator (metrics EVALUATORS), not FID

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        self.cfg = cfg
        self.data = data
        self.device = device

    def train_step(self, step: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """Every network whose parameters and buffers belong in a checkpoint."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def extra_state(self) -> dict:
        """Method state beyond networks and optimizers (noise streams, counters, pools)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass
