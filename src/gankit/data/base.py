"""What every data set gives the trainer: batches on the training device and a resumable state.

Small data sets live in memory as one tensor and batches are sliced from a per-epoch permutation
(no per-sample collation). The permutation of epoch e comes from a generator seeded by
(seed, e), so the only state to checkpoint is (epoch, position) and resume is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gankit.errors import DataError


def permutation(n: int, seed: int, epoch: int, salt: int = 0) -> Tensor:
    """The sample order of epoch `epoch`, from (seed, epoch, and the salt of a reseed); the
    in-memory and the streamed sources both read it, so they agree."""
    s = seed * 1_000_003 + epoch
    if salt:
        s = (s + salt * 0x9E3779B97F4A7C15) % 2**63
    return torch.randperm(n, generator=torch.Generator().manual_seed(s))


class DataSource:
    """Interface: `batch(n)` -> (x, labels or None); `state_dict`/`load_state_dict` for resume."""

    name: str = "data"
    shape: tuple[int, ...]  # one sample's shape, e.g. (2,) or (1, 8, 8)
    num_classes: int | None = None
    is_image: bool = False

    def batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def reference(self, n: int) -> Tensor:
        """n real samples for plots and metrics, drawn without touching the training stream."""
        raise NotImplementedError

    def to(self, device: torch.device) -> DataSource:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def reseed(self, salt: int) -> None:
        """Draw a different (still deterministic) stream from now on; the divergence guard
        calls it after a rollback so the retry does not replay the same batches."""

    def describe(self) -> str:
        return f"{self.name}: samples of shape {tuple(self.shape)}"


class InMemoryData(DataSource):
    """A finite data set held as one tensor; batches sliced from a seeded per-epoch permutation."""

    def __init__(
        self,
        x: Tensor,
        labels: Tensor | None = None,
        *,
        seed: int = 0,
        name: str = "data",
        num_classes: int | None = None,
    ):
        if x.ndim < 2 or len(x) == 0:
            raise DataError(
                f"{name}: expected a non-empty batch of samples, got shape {tuple(x.shape)}"
            )
        if labels is not None and len(labels) != len(x):
            raise DataError(f"{name}: {len(x)} samples but {len(labels)} labels; they must match")
        if not torch.isfinite(x).all():
            raise DataError(f"{name}: the data contains NaN or infinite values")
        self.x = x.float().contiguous()
        self.labels = None if labels is None else labels.long()
        self.seed = seed
        self.name = name
        self.shape = tuple(self.x.shape[1:])
        self.is_image = self.x.ndim == 4
        if num_classes is None and self.labels is not None:
            num_classes = int(self.labels.max()) + 1
        self.num_classes = num_classes
        self.epoch = 0
        self.position = 0
        self.salt = 0  # set by reseed(); part of the permutation seed
        self._perm: Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> InMemoryData:
        self.x = self.x.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        self._perm = None
        return self

    def reference(self, n: int) -> Tensor:
        return self.x[:n]

    def _permutation(self) -> Tensor:
        if self._perm is None:
            order = permutation(len(self.x), self.seed, self.epoch, self.salt)
            self._perm = order.to(self.x.device)
        return self._perm

    def batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        parts = []
        need = n
        while need > 0:
            perm = self._permutation()
            take = perm[self.position : self.position + need]
            parts.append(take)
            need -= len(take)
            self.position += len(take)
            if self.position >= len(perm):
                self.epoch += 1
                self.position = 0
                self._perm = None
        idx = parts[0] if len(parts) == 1 else torch.cat(parts)
        return self.x[idx], None if self.labels is None else self.labels[idx]

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "position": self.position}
        if self.salt:
            state["salt"] = self.salt
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.salt = int(state.get("salt", 0))
        self._perm = None

    def reseed(self, salt: int) -> None:
        self.salt = int(salt)
        self._perm = None

    def describe(self) -> str:
        labels = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{self.name}: {len(self.x)} samples of shape {self.shape}{labels}"


class SampledData(DataSource):
    """An infinite distribution sampled fresh each step from its own seeded generator."""

    def __init__(
        self,
        sampler: Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]],
        shape: tuple[int, ...],
        *,
        seed: int = 0,
        name: str = "data",
        num_classes: int | None = None,
    ):
        self.sampler = sampler
        self.shape = tuple(shape)
        self.name = name
        self.num_classes = num_classes
        self.device = torch.device("cpu")
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def to(self, device: torch.device) -> SampledData:
        self.device = torch.device(device)
        return self

    def reference(self, n: int) -> Tensor:
        x, _ = self.sampler(n, torch.Generator().manual_seed(2**31 - 1))
        return x.to(self.device)

    def batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        x, y = self.sampler(n, self.generator)
        return x.to(self.device), None if y is None else y.to(self.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def reseed(self, salt: int) -> None:
        self.generator.manual_seed(int(salt))

    def describe(self) -> str:
        return f"{self.name}: samples of shape {self.shape}, drawn fresh each step"


def to_unit_range(x: Tensor, max_value: float) -> Tensor:
    """Map pixel values in [0, max_value] to [-1, 1], the range every gankit image uses."""
    return x.float() * (2.0 / max_value) - 1.0
