"""The reference set a run's samples are compared with (the run's data at another split), and
the feature extractor that fits the data when none is named."""

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


def auto_extractor(data_cfg: dict) -> str:
    name = data_cfg["name"]
    if name == "digits" or (name == "stacked" and data_cfg.get("source") == "digits"):
        return "digits"
    if name in ("idx", "stacked") and "fashion" in str(data_cfg.get("path", "")).lower():
        return "fashion-mnist"  # (stacked: source idx, a Fashion-MNIST folder)
    return "inception"
