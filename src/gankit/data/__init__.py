"""Data sets by name. Every image data set yields NCHW tensors in [-1, 1]."""

from __future__ import annotations

from gankit.data.base import DataSource, InMemoryData, SampledData
from gankit.registry import Registry

DATASETS = Registry("dataset")


def build_dataset(options: dict, seed: int, where: str = "data") -> DataSource:
    """Build the data set a recipe's `data:` section names (`name` plus its options)."""
    options = dict(options)
    name = options.pop("name", None)
    builder = DATASETS.get(name, where=f"{where}.name")
    resolved = DATASETS.check_options(name, options, where, framework_args=("seed",))
    return builder(seed=seed, **resolved)


# Importing a module registers its data sets.
from gankit.data import cifar, digits, domains, folder, idx, stacked, synthetic, toy2d  # noqa: E402,F401

__all__ = ["DATASETS", "DataSource", "InMemoryData", "SampledData", "build_dataset"]
