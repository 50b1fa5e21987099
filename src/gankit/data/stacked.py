"""Stacked digits: three digit images as the three channels of one image, 1,000 modes.

The mode-collapse protocol of Metz et al. 2016 (Unrolled GAN) and Srivastava et al. 2017
(VEEGAN), "stacked MNIST", built here from scikit-learn's 8x8 digits so it works offline; an IDX
folder (MNIST) can be the source instead. The label of a stacked image is 100*a + 10*b + c.
"""

from __future__ import annotations

from typing import Literal

import torch

from gankit.data import DATASETS, build_dataset
from gankit.data.base import InMemoryData
from gankit.errors import ConfigError


@DATASETS.register("stacked")
def stacked(
    seed: int,
    source: Literal["digits", "idx"] = "digits",
    path: str | None = None,
    dataset: Literal["mnist", "fashion-mnist"] | None = None,
    split: Literal["train", "test"] = "train",
    n: int = 25_000,
) -> InMemoryData:
    """n stacked images; the triples are drawn with a fixed generator (seed 0 for the test
    split, so every run evaluates against the same reference), the digits from `source`
    (idx: the folder `path`, or the standard data set `dataset` as the idx data set finds it)."""
    if n < 1:
        raise ConfigError(f"data.n: must be at least 1, got {n}")
    options = {"name": source, "split": split}
    if source == "idx":
        options.update(path=path, dataset=dataset)
    base = build_dataset(options, seed=0)
    g = torch.Generator().manual_seed(1_000 + (0 if split == "test" else 1))
    idx = torch.randint(len(base.x), (n, 3), generator=g)
    x = base.x[idx].squeeze(2)  # (n, 3, 1, H, W) -> (n, 3, H, W)
    digits = base.labels[idx]
    labels = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    return InMemoryData(x, labels, seed=seed, name=f"stacked-{source}-{split}", num_classes=1000)
