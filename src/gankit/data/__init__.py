"""Data sets by name. Every image data set yields NCHW tensors in [-1, 1].

A recipe's `data.name` is a registered data set or the user's own `package.module:callable`,
called with the section's other keys (and `seed` if it takes one). The callable may return a
DataSource, a tensor of samples, a (samples, labels) pair, or a torch Dataset (or DataLoader),
which is held in memory when it fits and streamed otherwise: the keys `stream`, `workers` and
`memory_budget_mb` choose how, unless the callable takes them itself.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset

from gankit.data.base import DataSource, InMemoryData, SampledData
from gankit.data.streamed import DEFAULT_MEMORY_BUDGET_MB, from_dataset
from gankit.errors import ConfigError
from gankit.registry import Registry, accepted, coerce, is_import_path

DATASETS = Registry("dataset")

# How a Dataset returned by the user's callable is read (data/streamed.py).
STREAM_OPTIONS: dict[str, tuple[Any, Any]] = {
    "stream": (Literal["auto", "memory", "stream"], "auto"),
    "workers": (int | None, None),
    "memory_budget_mb": (float, float(DEFAULT_MEMORY_BUDGET_MB)),
}


def split_options(builder: Any, options: dict, where: str) -> tuple[dict, dict]:
    """(the builder's options, the stream options) of a data section; the stream options are
    gankit's only where the builder does not take them itself."""
    own = accepted(builder, dict.fromkeys(STREAM_OPTIONS))
    stream = {}
    for key, (tp, default) in STREAM_OPTIONS.items():
        if key in own:
            continue
        stream[key] = coerce(options.pop(key, default), tp, f"{where}.{key}")
    return options, stream


def resolve_data_options(section: dict, where: str = "data") -> dict:
    """A data section checked against its builder and completed with every default."""
    options = dict(section)
    name = options.pop("name", None)
    builder = DATASETS.get(name, where=f"{where}.name")
    explicit = set(options)
    options, stream = split_options(builder, options, where)
    resolved = DATASETS.check_options(name, options, where, framework_args=("seed",))
    if not is_import_path(name):  # gankit's own builders: only what the recipe set
        stream = {k: v for k, v in stream.items() if k in explicit}
    return {"name": name, **resolved, **stream}


def defaults() -> dict:
    return {k: default for k, (_, default) in STREAM_OPTIONS.items()}


def build_dataset(options: dict, seed: int, where: str = "data") -> DataSource:
    """Build the data set a recipe's `data:` section names (`name` plus its options)."""
    options = dict(options)
    name = options.pop("name", None)
    builder = DATASETS.get(name, where=f"{where}.name")
    options, stream = split_options(builder, options, where)
    resolved = DATASETS.check_options(name, options, where, framework_args=("seed",))
    result = builder(**accepted(builder, {"seed": seed}), **resolved)
    return as_data_source(result, seed, str(name), where, **stream)


def as_data_source(
    obj: Any, seed: int, name: str, where: str = "data", **stream: Any
) -> DataSource:
    """Whatever a data builder (or gankit.train's data=) gives, as a DataSource."""
    short = name.rpartition(":")[2] or "data"
    if isinstance(obj, DataSource):
        return obj
    if isinstance(obj, torch.Tensor):
        return InMemoryData(obj, seed=seed, name=short)
    if (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and all(isinstance(t, torch.Tensor) for t in obj)
    ):
        return InMemoryData(obj[0], obj[1], seed=seed, name=short)
    if isinstance(obj, DataLoader):
        stream.setdefault("workers", obj.num_workers)
        obj = obj.dataset
    if isinstance(obj, Dataset):
        stream = {**defaults(), **{k: v for k, v in stream.items() if v is not None}}
        return from_dataset(obj, seed=seed, name=short, **stream)
    raise ConfigError(
        f"{where}.name: {name!r} returned a {type(obj).__name__}; a data builder returns a "
        "torch Dataset, a DataLoader, a tensor of samples, a (samples, labels) pair or a "
        "gankit DataSource"
    )


# Importing a module registers its data sets.
from gankit.data import cifar, digits, domains, folder, idx, stacked, synthetic, toy2d  # noqa: E402,F401

__all__ = [
    "DATASETS",
    "DataSource",
    "InMemoryData",
    "SampledData",
    "as_data_source",
    "build_dataset",
    "resolve_data_options",
]
