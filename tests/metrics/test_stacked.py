"""Stacked MNIST mode histogram and sample quality, worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.metrics.stacked import stacked_mode_histogram, stacked_quality


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


def one_hot_ish(digit: int, top: float) -> list[float]:
    """A 10-class probability vector with `top` on `digit` and the rest spread evenly."""
    return [top if d == digit else (1 - top) / 9 for d in range(10)]


def test_stacked_quality_by_hand():
    probs = torch.tensor(
        [
            [one_hot_ish(1, 0.95), one_hot_ish(2, 0.99), one_hot_ish(3, 0.90)],  # sure: 123
            [one_hot_ish(1, 0.97), one_hot_ish(2, 0.92), one_hot_ish(3, 0.93)],  # sure: 123
            [one_hot_ish(4, 0.99), one_hot_ish(5, 0.89), one_hot_ish(6, 0.99)],  # 5 is unsure
            [one_hot_ish(7, 0.91), one_hot_ish(8, 0.91), one_hot_ish(9, 0.91)],  # sure: 789
        ]
    )
    out = stacked_quality(probs)
    assert out == {"high_quality": 0.75, "confident_modes": 2}
    assert stacked_quality(probs, threshold=0.95) == {"high_quality": 0.0, "confident_modes": 0}
    assert stacked_quality(probs, threshold=0.5) == {"high_quality": 1.0, "confident_modes": 3}
    with pytest.raises(ValueError, match="N>0, 3, classes"):
        stacked_quality(probs[:, :2])


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
    # quality: the share of images whose three channels all get a top probability >= 0.9
    with torch.no_grad():
        tops = torch.stack([clf(x[:, c : c + 1])[1].softmax(1).max(1).values for c in range(3)])
    sure = (tops >= 0.9).all(0)
    assert result["metrics"]["stacked_high_quality"] == pytest.approx(sure.double().mean().item())
    sure_triples = {t for t, ok in zip(zip(*(d.tolist() for d in digits)), sure.tolist()) if ok}
    assert result["metrics"]["stacked_confident_modes"] == len(sure_triples)
    assert result["protocol"]["n_real"] == 300
    with pytest.raises(ConfigError, match="reads 1-channel images"):
        compute_metrics(RealStacked(x), (4, "normal"), data_cfg, metrics=["stacked", "fid"],
                        n_fake=300, progress=False)  # fmt: skip


def test_stacked_fashion_mnist_gets_the_fashion_classifier():
    from gankit.metrics.evaluate import auto_extractor

    cfg = {"name": "stacked", "source": "idx", "path": "/usr/share/datasets/fashion-mnist"}
    assert auto_extractor(cfg) == "fashion-mnist"
    assert auto_extractor({"name": "stacked", "source": "digits"}) == "digits"
    cfg = {"name": "stacked", "source": "idx", "dataset": "fashion-mnist"}  # the presets' form
    assert auto_extractor(cfg) == "fashion-mnist"
    assert auto_extractor({**cfg, "path": "/data/mnist"}) == "inception"  # the folder is read
    assert auto_extractor({**cfg, "dataset": "mnist"}) == "inception"
