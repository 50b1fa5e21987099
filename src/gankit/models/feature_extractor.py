"""The feature extractor interface: networks that map images to features (for FID, KID,
precision/recall) and class logits (for the classifier score and mode counting).

Every extractor takes NCHW images in [-1, 1] of any size and channel count it supports and
adapts them itself (resizing, channel repeat), so a score's protocol is fixed by the extractor's
name and weights hash alone. A network, so it lives with the models: the metrics read it, and
methods use the shipped classifiers as fixed feature networks in their losses.
"""

from __future__ import annotations

from torch import Tensor, nn


class FeatureExtractor(nn.Module):
    """Base class. Subclasses set the attributes below and implement forward."""

    name: str = "extractor"
    weights_sha256: str | None = None  # sha256 of the weights file; None for random/untrained
    num_features: int = 0
    num_classes: int | None = None  # None when the extractor has no classifier head
    input_channels: int = 3  # channels it reads (it adapts 1-channel images to 3 itself)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """images (N, C, H, W) in [-1, 1] -> (features (N, num_features), logits (N, K) or None)."""
        raise NotImplementedError

    def protocol(self) -> dict:
        return {"extractor": self.name, "weights_sha256": self.weights_sha256}
