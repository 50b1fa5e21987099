"""The metrics and feature extractors gankit ships, registered by name (metrics/registry.py).

Each metric is one function of the inputs it declares; the math lives in its own module
(fid.py, kid.py, prdc.py, ...), cited there.
"""

from __future__ import annotations

from gankit.data import build_dataset
from gankit.data.streamed import materialize
from gankit.errors import ConfigError
from gankit.metrics.accuracy import class_accuracy, classifier_accuracy
from gankit.metrics.classifier import (
    load_classifier,
    stacked_digit_probabilities,
)
from gankit.metrics.fid import FeatureStats, fid
from gankit.metrics.inception import load_fid_inception
from gankit.metrics.inception_score import inception_score
from gankit.metrics.kid import kid
from gankit.metrics.modes import mixture_modes
from gankit.metrics.prdc import density_coverage, precision_recall
from gankit.metrics.reference import reference_options
from gankit.metrics.registry import MetricInputs, register_extractor, register_metric
from gankit.metrics.stacked import stacked_mode_histogram, stacked_quality
from gankit.metrics.wasserstein import sliced_wasserstein, wasserstein1


# -- images -----------------------------------------------------------------------------------
@register_metric("fid", "images", ("features",), {"fid": "lower"})
def fid_metric(x: MetricInputs) -> dict:
    """Frechet distance between Gaussians fitted to reference and sample features (Heusel 2017)."""
    return {
        "fid": fid(
            FeatureStats.from_features(x.real_features), FeatureStats.from_features(x.fake_features)
        )
    }


@register_metric(
    "kid",
    "images",
    ("features",),
    {"kid": "lower", "kid_std": "info", "kid_subset_size": "info"},
)
def kid_metric(x: MetricInputs) -> dict:
    """Unbiased MMD^2 with a cubic polynomial kernel over 100 feature subsets (Binkowski 2018)."""
    k = kid(x.real_features.numpy(), x.fake_features.numpy(), seed=x.seed)
    return {"kid": k["mean"], "kid_std": k["std"], "kid_subset_size": k["subset_size"]}


@register_metric("is", "images", ("features", "logits"), {"is": "higher", "is_std": "info"})
def is_metric(x: MetricInputs) -> dict:
    """Inception Score with the extractor's classifier head, 10 splits (Salimans 2016)."""
    if x.fake_logits is None:
        raise ConfigError(f"metric 'is': extractor {x.extractor.name} has no classifier head")
    s = inception_score(x.fake_logits, splits=10)
    return {"is": s["mean"], "is_std": s["std"]}


@register_metric("pr", "images", ("features",), {"precision": "higher", "recall": "higher"})
def pr_metric(x: MetricInputs) -> dict:
    """Improved precision and recall on k=3 nearest-neighbour balls (Kynkaanniemi 2019)."""
    return precision_recall(x.real_features, x.fake_features, k=3)


@register_metric("dc", "images", ("features",), {"density": "higher", "coverage": "higher"})
def dc_metric(x: MetricInputs) -> dict:
    """Density and coverage on k=5 nearest-neighbour balls (Naeem 2020)."""
    return density_coverage(x.real_features, x.fake_features, k=5)


@register_metric("swd", "images", ("images",), {"swd": "lower"}, default=False)
def swd_metric(x: MetricInputs) -> dict:
    """Sliced Wasserstein-1 distance between sample and reference pixels (128 projections)."""
    return {
        "swd": sliced_wasserstein(
            x.fake_images.flatten(1).double().numpy(),
            x.real_images.flatten(1).double().numpy(),
            seed=x.seed,
        )
    }


@register_metric(
    "stacked",
    "images",
    ("images",),
    {
        "stacked_modes": "higher",
        "stacked_reverse_kl": "lower",
        "stacked_high_quality": "higher",
        "stacked_confident_modes": "higher",
    },
    default=False,
)
def stacked_metric(x: MetricInputs) -> dict:
    """Modes of 3-digit stacked MNIST hit, each channel read by the classifier (VEEGAN 2017)."""
    probs = stacked_digit_probabilities(x.extractor.to(x.device), x.fake_images.to(x.device)).cpu()
    h = stacked_mode_histogram(probs.argmax(2).numpy())
    q = stacked_quality(probs)
    return {
        "stacked_modes": h["modes_hit"],
        "stacked_reverse_kl": h["reverse_kl"],
        "stacked_high_quality": q["high_quality"],
        "stacked_confident_modes": q["confident_modes"],
    }


# -- 2D points --------------------------------------------------------------------------------
@register_metric(
    "modes",
    "points",
    ("points",),
    {
        "modes_captured": "higher",
        "n_modes": "info",
        "high_quality": "higher",
        "reverse_kl": "lower",
    },
)
def modes_metric(x: MetricInputs) -> dict:
    """Modes captured, high-quality fraction and reverse KL on Gaussian mixtures (PacGAN)."""
    if getattr(x.data, "means", None) is None:
        raise ConfigError("metric 'modes': the data has no discrete modes (a spiral?); use w1")
    m = mixture_modes(x.fake_points.double(), x.data.means.double(), x.data.std)
    return {
        "modes_captured": m["modes_captured"],
        "n_modes": m["n_modes"],
        "high_quality": m["high_quality_fraction"],
        "reverse_kl": m["reverse_kl"],
    }


@register_metric("w1", "points", ("points",), {"w1": "lower"})
def w1_metric(x: MetricInputs) -> dict:
    """Exact Wasserstein-1 distance between samples and fresh data (optimal transport, POT)."""
    return {"w1": wasserstein1(x.fake_points.double().numpy(), x.real_points.numpy())}


# -- a run's own networks (scored by metrics/evaluate.py: evaluate) ----------------------------
@register_metric(
    "accuracy",
    "run",
    ("classifier",),
    {"accuracy": "higher", "test_error": "lower", "test_errors": "info"},
)
def accuracy_metric(x: MetricInputs) -> dict:
    """Test accuracy of the classifier a semi-supervised run trained."""
    net, key = x.classifier
    scores, protocol = classifier_accuracy(net, x.data_cfg, x.split, x.batch_size, x.device)
    x.protocol["accuracy"] = {**protocol, "classifier": key}
    return scores


@register_metric(
    "class_accuracy",
    "run",
    ("conditional", "logits"),
    {"class_accuracy": "higher", "class_diversity": "higher"},
)
def class_accuracy_metric(x: MetricInputs) -> dict:
    """How often the extractor's classifier names the class each sample was drawn for."""
    G = x.generator
    per_class = max(1, x.n_fake // G.num_classes)
    options, _ = reference_options(x.data_cfg, x.split)
    reference = build_dataset(options, seed=0)
    scores, protocol = class_accuracy(
        G, x.latent, G.num_classes, x.extractor, per_class, x.seed, x.batch_size, x.device,
        x.progress, real=materialize(reference),
    )  # fmt: skip
    protocol["class_diversity"] = (
        "mean pairwise feature distance of a class's samples over that of the reference "
        f"images of the class ({x.split} split, at most n_per_class of them)"
    )
    x.protocol["class_accuracy"] = protocol
    return scores


# -- feature extractors -----------------------------------------------------------------------
@register_extractor("inception")
def inception_extractor():
    """The FID InceptionV3 (pytorch-fid's weights, from GANKIT_INCEPTION or the cache)."""
    return load_fid_inception()


@register_extractor("digits")
def digits_extractor():
    """gankit's shipped CNN classifier for 8x8 scikit-learn digits."""
    return load_classifier("digits")


@register_extractor("fashion-mnist")
def fashion_extractor():
    """gankit's shipped CNN classifier for Fashion-MNIST (92% test accuracy)."""
    return load_classifier("fashion-mnist")
