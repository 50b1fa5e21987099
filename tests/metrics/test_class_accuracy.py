"""class_accuracy (metrics/evaluate.py): how often the shipped classifier names the class a
conditional generator was asked for, checked with generators that return real test digits."""

import pytest
import torch
from torch import nn

from gankit.data.digits import load_digits_tensors
from gankit.errors import ConfigError
from gankit.metrics.classifier import load_classifier
from gankit.metrics.evaluate import check_run_metrics, class_accuracy, load_extractor

N = 20  # per class; every class has more test digits than that


class RealDigits(nn.Module):
    """A 'generator' whose samples for class y are the first test digits of class shift(y)."""

    def __init__(self, shift: int = 0):
        super().__init__()
        self.x, self.y = load_digits_tensors("test")
        self.num_classes, self.shift = 10, shift

    def forward(self, z, labels):
        c = (int(labels[0]) + self.shift) % 10
        assert (labels == labels[0]).all()
        return self.x[self.y == c][: len(z)]


def by_hand(shift: int) -> list[float]:
    net = load_classifier("digits").eval()
    x, y = load_digits_tensors("test")
    out = []
    with torch.no_grad():
        for c in range(10):
            _, logits = net(x[y == (c + shift) % 10][:N])
            pred = logits.argmax(1)
            out.append(sum(int(p) == c for p in pred) / N)
    return out


@pytest.mark.parametrize("shift", [0, 3])
def test_class_accuracy_counts_the_requested_class(shift):
    extractor = load_extractor("digits", {"name": "digits"})
    scores, protocol = class_accuracy(
        RealDigits(shift), (4, "normal"), 10, extractor, n_per_class=N, progress=False
    )
    expected = by_hand(shift)
    for c in range(10):
        assert scores[f"class_accuracy/{c}"] == pytest.approx(expected[c])
    assert scores["class_accuracy"] == pytest.approx(sum(expected) / 10)
    if shift == 0:  # real digits: the shipped classifier gets most right
        assert scores["class_accuracy"] > 0.9
    else:  # every sample is of another class than asked for
        assert scores["class_accuracy"] < 0.1
    assert protocol["n_per_class"] == N


def test_run_metrics_are_checked_against_the_method():
    from gankit.config import load_recipe

    check_run_metrics(["class_accuracy", "fid"], load_recipe("cgan-digits"))
    with pytest.raises(ConfigError, match="not class-conditional"):
        check_run_metrics(["class_accuracy"], load_recipe("quickstart"))
    with pytest.raises(ConfigError, match="trains no classifier"):
        check_run_metrics(["accuracy"], load_recipe("cgan-digits"))


class OneImagePerClass(RealDigits):
    """Collapsed within each class: every sample of class c is the same real image."""

    def forward(self, z, labels):
        return super().forward(z, labels)[:1].expand(len(z), -1, -1, -1)


def test_class_diversity_is_one_for_the_real_images_and_zero_for_a_collapsed_generator():
    from gankit.metrics.accuracy import mean_distance

    extractor = load_extractor("digits", {"name": "digits"})
    real = load_digits_tensors("test")
    same, _ = class_accuracy(RealDigits(0), (4, "normal"), 10, extractor, n_per_class=N,
                             progress=False, real=real)  # fmt: skip
    for c in range(10):  # the samples of class c are the real test images of class c
        assert same[f"class_diversity/{c}"] == pytest.approx(1.0)
    collapsed, _ = class_accuracy(OneImagePerClass(0), (4, "normal"), 10, extractor,
                                  n_per_class=N, progress=False, real=real)  # fmt: skip
    assert collapsed["class_diversity"] == 0.0
    assert collapsed["class_accuracy/0"] in (0.0, 1.0)  # one image: all right or all wrong
    # the distance, against a naive loop over pairs
    x = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pairs = [(x[i] - x[j]).norm() for i in range(7) for j in range(i + 1, 7)]
    assert float(mean_distance(x)) == pytest.approx(float(sum(pairs) / len(pairs)))
