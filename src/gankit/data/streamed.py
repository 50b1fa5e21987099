"""Data too big for memory, read as a stream: a torch Dataset behind a DataLoader.

Worker processes decode samples while the model trains; images stay uint8 until they reach the
training device (4x less to copy than float32). The order is the in-memory path's: epoch e
reads the permutation seeded by (seed, e), so a folder gives the same batches streamed or in
memory, and resume needs only (epoch, position). Random transforms (crops, flips, and any
randomness inside the user's own Dataset) draw from a generator seeded by (seed, epoch, index),
not from the worker's state, so a resumed run sees the batches an uninterrupted one would, with
any number of workers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from gankit.data.base import DataSource, InMemoryData, permutation
from gankit.errors import DataError, GankitError

NO_LABEL = -1
REFERENCE_EPOCH = -1  # the key of untransformed samples (reference(), memory loading)
DEFAULT_MEMORY_BUDGET_MB = 1024  # data sets whose float32 copy fits this are held in memory


def item_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch) * 1_000_000_007 + index & (2**63 - 1)


class seeded_item:
    """Seed torch, numpy and random for one sample, and put the caller's states back, so a
    Dataset's own random transforms are reproducible and the training stream is untouched
    when samples are decoded in the main process (workers=0)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self) -> torch.Generator:
        self.states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        torch.manual_seed(self.seed)
        np.random.seed(self.seed % 2**32)
        random.seed(self.seed)
        return torch.Generator().manual_seed(self.seed)

    def __exit__(self, *exc: Any) -> None:
        torch.set_rng_state(self.states[0])
        np.random.set_state(self.states[1])
        random.setstate(self.states[2])


def as_image(value: Any, index: int, where: str) -> Tensor:
    """One sample as a (C, H, W) tensor: uint8 0..255 kept as is, floats checked to lie in
    [-1, 1] (the range every gankit image uses); PIL images and numpy arrays accepted."""
    if hasattr(value, "mode") and hasattr(value, "size") and not isinstance(value, Tensor):
        array = np.asarray(value.convert("RGB" if value.mode not in ("L", "RGB") else value.mode))
        value = torch.from_numpy(array.reshape(*array.shape[:2], -1).copy()).permute(2, 0, 1)
    elif isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        raise DataError(
            f"{where}: sample {index} is a {type(value).__name__}; a Dataset must return an "
            "image tensor (C, H, W) or (image, label)"
        )
    if value.ndim == 2:
        value = value.unsqueeze(0)
    if value.ndim != 3:
        raise DataError(
            f"{where}: sample {index} has shape {tuple(value.shape)}; expected an image (C, H, W)"
        )
    if value.dtype == torch.uint8:
        return value
    if not value.is_floating_point():
        raise DataError(
            f"{where}: sample {index} has dtype {value.dtype}; expected uint8 (0..255) or "
            "floats in [-1, 1]"
        )
    if not torch.isfinite(value).all():
        raise DataError(f"{where}: sample {index} contains NaN or infinite values")
    low, high = float(value.min()), float(value.max())
    if low < -1.001 or high > 1.001:
        raise DataError(
            f"{where}: sample {index} has values in [{low:.3g}, {high:.3g}]; gankit images are "
            "floats in [-1, 1] (x * 2 - 1 maps [0, 1] there) or uint8 0..255"
        )
    return value.float()


class KeyedSamples(Dataset):
    """A Dataset read by keys (epoch, index): each sample is decoded under its own seed and
    checked, and returned as (image, label, ok). ok is False for a file skipped as unreadable
    (policy on_error=skip of the image files)."""

    def __init__(self, dataset: Dataset, seed: int, shape: tuple[int, ...] | None, where: str):
        self.dataset = dataset
        self.seed = seed
        self.shape = None if shape is None else tuple(shape)  # None: not known yet (probe)
        self.where = where

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int, bool]:
        epoch, index = key
        seed = item_seed(self.seed, epoch, index)
        load = getattr(self.dataset, "load", None)
        if load is not None:  # gankit's image files: their transforms draw from `generator` only
            generator = torch.Generator().manual_seed(seed)
            item = load(index, generator, epoch != REFERENCE_EPOCH)
        else:  # the user's Dataset may draw from torch, numpy or random: seed them all
            with seeded_item(seed):
                item = self.dataset[index]
        if item is None:  # skipped unreadable file
            return torch.zeros(self.shape, dtype=torch.uint8), NO_LABEL, False
        label = NO_LABEL
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise DataError(
                    f"{self.where}: sample {index} is a {len(item)}-tuple; a Dataset returns an "
                    "image or (image, label)"
                )
            item, label = item
            try:
                label = int(label)
            except (TypeError, ValueError):
                raise DataError(
                    f"{self.where}: sample {index} has label {label!r}; labels are integers"
                ) from None
        image = as_image(item, index, self.where)
        if self.shape is not None and tuple(image.shape) != self.shape:
            raise DataError(
                f"{self.where}: sample {index} has shape {tuple(image.shape)}, but sample 0 has "
                f"{self.shape}; every sample must have the same shape (resize them)"
            )
        return image, label, True


class EpochSampler(Sampler):
    """Keys (epoch, index) of one epoch's permutation from `start` on."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self.epoch, self.start, self.salt = 0, 0, 0

    def __len__(self) -> int:
        return self.n - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        perm = permutation(self.n, self.seed, self.epoch, self.salt)
        return ((self.epoch, int(i)) for i in perm[self.start :])


def read_error(exc: BaseException, workers: int) -> GankitError:
    """A failure while reading samples as one line. A DataLoader worker wraps the original
    error in a traceback text; its last line is the original message."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    if isinstance(exc, GankitError):
        for prefix in ("gankit.errors.DataError: ", "gankit.errors.ConfigError: "):
            last = last.removeprefix(prefix)
        return type(exc)(last)
    if workers and "Traceback" in str(exc):
        what = last  # "OSError: ..." from the worker's traceback
    else:
        what = f"{type(exc).__name__}: {last}"
    where = "a data loader worker failed" if workers else "reading the data failed"
    hint = "; rerun with data.workers=0 to see the error in the main process" if workers else ""
    return DataError(f"{where} ({what}){hint}")


def default_workers() -> int:
    """One core stays with training: min(4, cores - 1) worker processes, 0 on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(4, (cores or 1) - 1))


class StreamedData(DataSource):
    """Batches read through a DataLoader from a map-style Dataset (see the module docstring)."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        seed: int = 0,
        name: str = "data",
        num_classes: int | None = None,
        workers: int | None = None,
    ):
        try:
            n = len(dataset)
        except TypeError:
            raise DataError(
                f"{name}: the Dataset has no len(); gankit reads map-style Datasets "
                "(__len__ and __getitem__)"
            ) from None
        if n == 0:
            raise DataError(f"{name}: the Dataset is empty")
        self.name = name
        self.seed = seed
        self.n = n
        self.workers = default_workers() if workers is None else workers
        image, label = _probe(KeyedSamples(dataset, seed, None, name))
        self.shape = tuple(image.shape)
        self.is_image = True
        self.keyed = KeyedSamples(dataset, seed, self.shape, name)
        self.has_labels = label != NO_LABEL
        self.num_classes = num_classes if self.has_labels else None
        self.device = torch.device("cpu")
        self.sampler = EpochSampler(n, seed)
        self.position = 0  # samples handed out (or skipped) in the current epoch
        self.skipped = 0
        self._loader: DataLoader | None = None
        self._iter: Iterator | None = None
        self._rows: list[tuple[Tensor, Tensor, Tensor]] = []  # decoded, not yet handed out
        self._chunk = 0

    def __len__(self) -> int:
        return self.n

    @property
    def x(self) -> Tensor:
        """What in-memory data sets have; methods that read every sample at once need it."""
        raise DataError(
            f"{self.name}: this needs the whole data set in memory as one tensor, but it is "
            "streamed; set data.stream=memory (or raise data.memory_budget_mb)"
        )

    # --- the stream ---------------------------------------------------------------------------

    def _restart(self) -> None:
        """Start reading the current epoch at the current position."""
        self._rows = []
        self.sampler.start = self.position
        if self._loader is not None:
            self._iter = iter(self._loader)

    def _next_chunk(self) -> tuple[Tensor, Tensor, Tensor] | None:
        if self._loader is None:
            workers = self.workers
            self._loader = DataLoader(
                self.keyed,
                batch_size=self._chunk,
                sampler=self.sampler,
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if workers > 0 else None,
                generator=torch.Generator(),  # its worker seeds must not draw from training's
            )
            self._restart()
        try:
            return next(self._iter)
        except StopIteration:
            return None
        except Exception as exc:  # the user's Dataset raised, or a worker was killed
            raise read_error(exc, self.workers) from None

    def batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        if not self._chunk:
            self._chunk = n
        xs, ys, need = [], [], n
        while need > 0:
            if not self._rows:
                chunk = self._next_chunk()
                if chunk is None:  # the epoch is over
                    self.sampler.epoch += 1
                    self.position = 0
                    self._restart()
                    continue
                self._rows = [chunk]
            x, y, ok = self._rows[0]
            take = min(need, len(x))
            self.position += take
            self._rows[0] = (x[take:], y[take:], ok[take:])
            if len(self._rows[0][0]) == 0:
                self._rows.pop(0)
            x, y, ok = x[:take], y[:take], ok[:take]
            if not bool(ok.all()):
                self.skipped += int((~ok).sum())
                x, y = x[ok], y[ok]
            xs.append(x)
            ys.append(y)
            need -= len(x)
        x = xs[0] if len(xs) == 1 else torch.cat(xs)
        y = ys[0] if len(ys) == 1 else torch.cat(ys)
        return self._on_device(x), (y.to(self.device) if self.has_labels else None)

    def _on_device(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.float() * (2.0 / 255) - 1.0 if x.dtype == torch.uint8 else x

    # --- reference samples, state -------------------------------------------------------------

    def reference_batches(self, n: int, batch_size: int = 256, progress: bool = False):
        """The first n samples in index order, untransformed, batch by batch (for metrics)."""
        n = min(n, self.n)
        keys = [(REFERENCE_EPOCH, i) for i in range(n)]
        loader = DataLoader(
            self.keyed, batch_size=batch_size, sampler=keys, generator=torch.Generator()
        )
        bar = tqdm(total=n, desc=f"reading {self.name}", unit="img", disable=not progress)
        batches = iter(loader)
        while True:
            try:
                x, y, ok = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # the user's Dataset raised
                raise read_error(exc, 0) from None
            bar.update(len(x))
            yield self._on_device(x[ok]), (y[ok].to(self.device) if self.has_labels else None)
        bar.close()

    def reference(self, n: int) -> Tensor:
        return materialize(self, n)[0]

    def to(self, device: torch.device) -> StreamedData:
        self.device = torch.device(device)
        return self

    def state_dict(self) -> dict:
        state = {"epoch": self.sampler.epoch, "position": self.position}
        if self.sampler.salt:
            state["salt"] = self.sampler.salt
        return state

    def load_state_dict(self, state: dict) -> None:
        self.sampler.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.sampler.salt = int(state.get("salt", 0))
        self._restart()

    def reseed(self, salt: int) -> None:
        self.sampler.salt = int(salt)
        self._restart()

    def describe(self) -> str:
        labels = f", {self.num_classes} classes" if self.num_classes else ""
        return (
            f"{self.name}: {self.n} samples of shape {self.shape}{labels}, streamed by "
            f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        )


def _probe(samples: KeyedSamples) -> tuple[Tensor, int]:
    """The first readable sample, checked, to learn the shape and whether there are labels."""
    for index in range(len(samples)):
        image, label, ok = samples[(REFERENCE_EPOCH, index)]
        if ok:
            return image, label
    raise DataError(f"{samples.where}: no sample could be read")


def in_memory(streamed: StreamedData) -> InMemoryData:
    """Decode a whole data set once into one tensor (the fast path for data that fits)."""
    x, y = materialize(streamed)
    return InMemoryData(
        x, y, seed=streamed.seed, name=streamed.name, num_classes=streamed.num_classes
    )


def materialize(data: DataSource, n: int | None = None) -> tuple[Tensor, Tensor | None]:
    """The first n samples (all: None) of a data set and their labels, as tensors: the data
    itself when it is in memory, read in order (untransformed) when it is streamed."""
    if isinstance(data, StreamedData):
        n = len(data) if n is None else n
        parts = list(data.reference_batches(n, progress=n > 2000))
        x = torch.cat([p[0] for p in parts])
        return x, (torch.cat([p[1] for p in parts]) if data.has_labels else None)
    x, labels = data.x, getattr(data, "labels", None)
    if n is not None:
        x, labels = x[:n], (None if labels is None else labels[:n])
    return x, labels


def float_bytes(n: int, shape: tuple[int, ...]) -> int:
    return n * int(np.prod(shape)) * 4


def from_dataset(
    dataset: Dataset,
    *,
    seed: int,
    name: str,
    stream: str = "auto",
    workers: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    num_classes: int | None = None,
) -> DataSource:
    """A Dataset as a data source: in memory when its float32 copy fits the budget (or
    stream="memory"), streamed through a DataLoader otherwise (or stream="stream")."""
    if num_classes is None:
        classes = getattr(dataset, "classes", None)
        num_classes = getattr(dataset, "num_classes", None) or (len(classes) if classes else None)
    source = StreamedData(dataset, seed=seed, name=name, num_classes=num_classes, workers=workers)
    too_big = float_bytes(source.n, source.shape) > memory_budget_mb * 2**20
    if stream == "stream" or (stream == "auto" and too_big):
        return source  # no worker starts before the first batch
    return in_memory(source)
