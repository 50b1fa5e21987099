"""The reference set a run's samples are compared with: the run's data at another split."""

from __future__ import annotations

from gankit.data import DATASETS


def reference_options(data_cfg: dict, split: str) -> tuple[dict, str]:
    """The data options for the reference set, and the split actually used."""
    options = {k: v for k, v in data_cfg.items()}
    has_split = "split" in DATASETS.options(options["name"], ("seed",))
    if has_split:
        options["split"] = split
        return options, split
    return options, "train (this data set has no other split)"
