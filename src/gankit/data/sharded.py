"""Data-parallel batches: every process draws the same global batch from a shared stream and
keeps its own rows, so the data order is the one a single process would see."""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.data.base import DataSource
from gankit.errors import ConfigError


def shard_rows(x: Tensor, rank: int, world: int, what: str) -> Tensor:
    """Rows [rank * b, (rank + 1) * b) of a global batch x, b = len(x) / world."""
    n = x.shape[0]
    if n % world:
        raise ConfigError(
            f"{what}: a global batch of {n} rows cannot be split evenly among {world} "
            f"processes; use batch sizes that are multiples of {world}"
        )
    b = n // world
    return x[rank * b : (rank + 1) * b]


class ShardedData(DataSource):
    """A data source whose `batch(n)` draws the global batch of n from the wrapped source (the
    same on every process: shared seed and state) and returns this rank's n / world rows.

    Everything else (reference samples, state, reseed, shape, classes) is the wrapped
    source's, so checkpoints hold the global data state."""

    def __init__(self, source: DataSource, rank: int, world: int):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.source = source
        self.rank = rank
        self.world = world
        self.name = source.name
        self.shape = source.shape
        self.num_classes = source.num_classes
        self.is_image = source.is_image

    def batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        x, labels = self.source.batch(n)
        x = shard_rows(x, self.rank, self.world, f"{self.name} batch")
        if labels is not None:
            labels = shard_rows(labels, self.rank, self.world, f"{self.name} labels")
        return x, labels

    def reference(self, n: int) -> Tensor:
        return self.source.reference(n)

    def to(self, device: torch.device) -> ShardedData:
        self.source = self.source.to(device)
        return self

    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.source.load_state_dict(state)

    def reseed(self, salt: int) -> None:
        self.source.reseed(salt)

    def describe(self) -> str:
        return self.source.describe()

    def __len__(self) -> int:
        return len(self.source)

    def __getattr__(self, name: str):
        # data-set specific attributes (e.g. toy2d's means); only called for missing names
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)
