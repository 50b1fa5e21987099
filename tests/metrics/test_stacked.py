"""Stacked MNIST mode histogram, worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.metrics.stacked import stacked_mode_histogram


def test_stacked_mode_histogram_by_hand():
    digits = np.array([[1, 2, 3], [1, 2, 3], [0, 0, 0], [9, 9, 9]])
    out = stacked_mode_histogram(digits)
    assert out["modes_hit"] == 3 and out["n_modes"] == 1000
    expected = 0.5 * math.log(0.5 * 1000) + 2 * 0.25 * math.log(0.25 * 1000)
    assert out["reverse_kl"] == pytest.approx(expected, rel=1e-12)
    # 123 and 321 are distinct modes; all 1000 once each is uniform
    assert stacked_mode_histogram(torch.tensor([[1, 2, 3], [3, 2, 1]]))["modes_hit"] == 2
    everything = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    full = stacked_mode_histogram(everything)
    assert full["modes_hit"] == 1000 and full["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        stacked_mode_histogram(np.array([[1, 2, 10]]))


class RealStacked(torch.nn.Module):
    """A 'generator' that returns the stacked test images in order."""

    def __init__(self, x):
        super().__init__()
        self.x, self.done = x, 0

    def forward(self, z):
        out = self.x[self.done : self.done + len(z)]
        self.done += len(z)
        return out


def test_gankit_eval_scores_stacked_modes_with_the_one_channel_classifier():
    """`stacked` on 3-channel images: each channel read by the shipped 1-channel classifier
    (checked by a per-channel loop); FID with that classifier is refused with the fix."""
    import pytest

    from gankit.data import build_dataset
    from gankit.errors import ConfigError
    from gankit.metrics.classifier import load_classifier
    from gankit.metrics.evaluate import compute_metrics, default_metrics

    data_cfg = {"name": "stacked", "source": "digits", "n": 300}
    x = build_dataset({**data_cfg, "split": "test"}, seed=0).x
    assert default_metrics(data_cfg) == ["stacked"]
    result = compute_metrics(RealStacked(x), (4, "normal"), data_cfg, n_fake=300, progress=False)
    clf = load_classifier("digits").eval()
    with torch.no_grad():
        digits = [clf(x[:, c : c + 1])[1].argmax(1) for c in range(3)]
    triples = {(int(a), int(b), int(c)) for a, b, c in zip(*digits)}
    assert result["metrics"]["stacked_modes"] == len(triples)
    assert result["protocol"]["n_real"] == 300
    with pytest.raises(ConfigError, match="reads 1-channel images"):
        compute_metrics(RealStacked(x), (4, "normal"), data_cfg, metrics=["stacked", "fid"],
                        n_fake=300, progress=False)  # fmt: skip


def test_stacked_fashion_mnist_gets_the_fashion_classifier():
    from gankit.metrics.evaluate import auto_extractor

    cfg = {"name": "stacked", "source": "idx", "path": "/usr/share/datasets/fashion-mnist"}
    assert auto_extractor(cfg) == "fashion-mnist"
    assert auto_extractor({"name": "stacked", "source": "digits"}) == "digits"
