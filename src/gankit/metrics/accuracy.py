"""Accuracy metrics of a run's own networks: the classifier a semi-supervised run trained
(`accuracy`) and how often a class-conditional generator draws the class it is asked for
(`class_accuracy`, ACGAN's measure)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gankit.data import build_dataset
from gankit.data.streamed import materialize
from gankit.errors import ConfigError
from gankit.methods import METHODS
from gankit.metrics.features import FeatureExtractor, extract
from gankit.metrics.reference import reference_options
from gankit.models.latent import sample_latent
from gankit.training.checkpoint import load_checkpoint, load_module_state


@torch.no_grad()
def class_accuracy(
    generator: torch.nn.Module,
    latent: tuple[int, str],
    num_classes: int,
    extractor: FeatureExtractor,
    n_per_class: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
    real: tuple[Tensor, Tensor] | None = None,
) -> tuple[dict, dict]:
    """How often a classifier (the extractor's head: gankit's shipped classifiers) names the
    class each sample was generated for (ACGAN's measure, Odena et al. 2017): per class
    (class_accuracy/c) and their mean (class_accuracy). `generator(z, labels=y)` draws class y.

    With `real` (images, labels): also class_diversity, the mean over classes of the samples'
    mean pairwise feature distance over that of the real images of the class (about 1 for a
    generator as varied as the data, near 0 when each class collapsed to a few images, which
    a high class accuracy alone does not show)."""
    device = torch.device(device)
    noise = torch.Generator(device=device).manual_seed(seed)
    was_training = generator.training
    generator.eval()
    per_class, spread = {}, {}
    try:
        for c in range(num_classes):

            def sample(n: int, c: int = c) -> Tensor:
                z = sample_latent(n, latent[0], latent[1], device, noise)
                y = torch.full((n,), c, dtype=torch.long, device=device)
                return generator(z, labels=y).float()

            feats, logits = extract(
                extractor, sample, n=n_per_class, batch_size=batch_size, device=device,
                progress=progress, desc=f"class {c}",
            )  # fmt: skip
            if logits is None:
                raise ConfigError(
                    f"metric 'class_accuracy': extractor {extractor.name} has no classifier head; "
                    "use a shipped classifier (digits, fashion-mnist) or your own with one"
                )
            per_class[c] = float((logits.argmax(1) == c).double().mean())
            if real is not None:
                images = real[0][real[1] == c][:n_per_class]
                real_feats, _ = extract(extractor, images, batch_size=batch_size,
                                        device=device, progress=False)  # fmt: skip
                spread[c] = float(mean_distance(feats) / mean_distance(real_feats))
    finally:
        generator.train(was_training)
    scores = {"class_accuracy": sum(per_class.values()) / num_classes}
    scores.update({f"class_accuracy/{c}": acc for c, acc in per_class.items()})
    if spread:
        scores["class_diversity"] = sum(spread.values()) / num_classes
        scores.update({f"class_diversity/{c}": d for c, d in spread.items()})
    protocol = {
        "n_per_class": n_per_class,
        "classifier": extractor.name,
        "rule": "argmax of the classifier's logits equals the requested class",
    }
    return scores, protocol


def run_classifier(run, checkpoint: Path, device: str | torch.device = "cpu"):
    """(classifier, its module key) of a run whose method declares one (`classifier_keys`,
    `build_classifier`), loaded from `checkpoint` in eval mode; None for other methods. The
    classifier EMA when the run kept one."""
    method = METHODS[run.config.method]
    if not method.trains_classifier:
        return None
    state, meta = load_checkpoint(checkpoint)
    key = next(k for k in method.classifier_keys if k in state["modules"])
    data = build_dataset(run.config.data, seed=0)
    net = method.build_classifier(run.config, tuple(meta["data_shape"]), data.num_classes)
    load_module_state(net, state["modules"][key], key, checkpoint)
    return net.to(device).eval(), key


@torch.no_grad()
def classifier_accuracy(
    net: torch.nn.Module,
    data_cfg: dict,
    split: str = "test",
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[dict, dict]:
    """Accuracy (argmax of the K logits) of a classifier on a labeled split of the run's data."""
    options, split_used = reference_options(data_cfg, split)
    images, labels = materialize(build_dataset(options, seed=0))
    if labels is None:
        raise ConfigError(f"metric 'accuracy': data {data_cfg['name']!r} has no labels")
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        correct += int((net(x).argmax(1) == y).sum())
    n = len(images)
    scores = {"accuracy": correct / n, "test_error": 1 - correct / n, "test_errors": n - correct}
    protocol = {"data": options, "split": split_used, "n": n, "rule": "argmax of the K logits"}
    return scores, protocol


def mean_distance(x: Tensor) -> Tensor:
    """Mean Euclidean distance over all pairs of distinct rows."""
    return torch.pdist(x.double()).mean()
