"""The reference set a run's samples are compared with (the run's data at another split), and
the feature extractor that fits the data when none is named."""

from __future__ import annotations

from gankit.data import DATASETS
from gankit.models.classifier import shipped_classifier_for


def reference_options(data_cfg: dict, split: str) -> tuple[dict, str]:
    """The data options for the reference set, and the split actually used."""
    options = {k: v for k, v in data_cfg.items()}
    has_split = "split" in DATASETS.options(options["name"], ("seed",))
    if has_split:
        options["split"] = split
        return options, split
    return options, "train (this data set has no other split)"


def auto_extractor(data_cfg: dict) -> str:
    """The shipped classifier that reads the data, else the FID Inception network."""
    return shipped_classifier_for(data_cfg) or "inception"
