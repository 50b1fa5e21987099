"""scikit-learn's 8x8 handwritten digits: 1,797 images that ship with scikit-learn (no download)."""

from __future__ import annotations

from typing import Literal

import torch

from gankit.data import DATASETS
from gankit.data.base import InMemoryData, to_unit_range


def load_digits_tensors(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 8, 8) in [-1, 1] and labels. Fixed stratified 80/20 train/test split."""
    # scikit-learn takes over a second to import: only runs that use the digits pay for it
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1)  # pixel values 0..16
    labels = torch.from_numpy(bunch.target).long()
    if split != "all":
        train_idx, test_idx = train_test_split(
            torch.arange(len(labels)).numpy(),
            test_size=0.2,
            random_state=0,
            stratify=labels.numpy(),
        )
        idx = torch.from_numpy(train_idx if split == "train" else test_idx)
        images, labels = images[idx], labels[idx]
    return to_unit_range(images, 16.0), labels


@DATASETS.register("digits")
def digits(seed: int, split: Literal["train", "test", "all"] = "train") -> InMemoryData:
    """The built-in default data: 1,437 train / 360 test images, 10 classes."""
    x, y = load_digits_tensors(split)
    return InMemoryData(x, y, seed=seed, name=f"digits-{split}", num_classes=10)
