"""Registries of what can be evaluated: metrics (with what they read, what data they apply to
and which way each of their scores is better) and feature extractors.

A metric is one function from its inputs to a dict of scores, registered with
`register_metric`; evaluation (metrics/evaluate.py) computes only the inputs the chosen metrics
need (reference features, sample features or logits, sample images, 2D points) and calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from gankit.registry import Registry

# what a metric can read, and what gives it to the metric
INPUTS = {
    "features": "features of the reference set and of the samples (the extractor's)",
    "logits": "the extractor's class logits of the samples",
    "images": "the samples as images, and the reference images",
    "points": "2D samples and fresh samples of the mixture",
    "classifier": "a classifier the run trained (its method offers one: ssl)",
    "conditional": "a class-conditional generator (cgan, acgan)",
}
DATA_KINDS = ("images", "points", "run")


@dataclass(frozen=True)
class Metric:
    name: str
    data: str  # "images", "points", or "run" (scored from a run's own networks)
    needs: tuple[str, ...]
    scores: dict[str, str]  # each score it returns -> "lower" / "higher" (better) or "info"
    compute: Callable[..., dict]
    description: str
    default: bool = True  # scored when no metrics are named


@dataclass
class MetricInputs:
    """What the chosen metrics read; fields a metric does not need stay None."""

    seed: int = 0
    real_features: Tensor | None = None
    fake_features: Tensor | None = None
    fake_logits: Tensor | None = None
    fake_images: Tensor | None = None
    real_images: Tensor | None = None
    fake_points: Tensor | None = None
    real_points: Tensor | None = None
    data: Any = None  # the data source (2D mixtures: their means and std)
    extractor: Any = None
    device: Any = None
    # a run's own networks (data "run" metrics): its trained classifier, its generator
    classifier: Any = None
    generator: Any = None
    latent: tuple[int, str] | None = None
    data_cfg: dict | None = None
    split: str = "test"
    n_fake: int = 10_000
    batch_size: int = 256
    progress: bool = False
    protocol: dict = field(default_factory=dict)  # what a metric adds to eval.json's protocol


METRICS = Registry("metric")
EXTRACTORS = Registry("feature extractor")


def register_metric(
    name: str,
    data: str,
    needs: tuple[str, ...],
    scores: dict[str, str],
    default: bool = True,
) -> Callable:
    """Register `compute(inputs: MetricInputs) -> {score: value}` as metric `name`; its
    docstring's first line is its description in `gankit eval --help` and the docs."""
    if data not in DATA_KINDS:
        raise ValueError(f"metric {name!r}: data must be one of {DATA_KINDS}, got {data!r}")
    unknown = set(needs) - set(INPUTS)
    if unknown:
        raise ValueError(f"metric {name!r}: unknown inputs {sorted(unknown)}; known: {[*INPUTS]}")
    bad = {k: v for k, v in scores.items() if v not in ("lower", "higher", "info")}
    if bad:
        raise ValueError(f"metric {name!r}: score directions must be lower/higher/info: {bad}")

    def decorate(compute: Callable) -> Callable:
        doc = (compute.__doc__ or name).strip().splitlines()[0]
        spec = Metric(name, data, tuple(needs), dict(scores), compute, doc, default)
        METRICS.register(name)(spec)
        return compute

    return decorate


def register_extractor(name: str) -> Callable:
    """Register `load() -> FeatureExtractor` as extractor `name` (--extractor, eval.extractor)."""
    return EXTRACTORS.register(name)


def get_metric(name: str, where: str = "metric") -> Metric:
    return METRICS.get(name, where=where)


def metric_names(data: str | None = None) -> list[str]:
    """Registered metrics, in registration order, optionally of one data kind."""
    specs = [METRICS.get(n) for n in METRICS.in_order()]
    return [m.name for m in specs if data is None or m.data == data]


def score_directions(data: tuple[str, ...] = DATA_KINDS) -> dict[str, str]:
    """Every score a metric (of those data kinds) returns that has a better direction:
    name -> lower / higher."""
    out = {}
    for name in metric_names():
        if get_metric(name).data not in data:
            continue
        for score, way in get_metric(name).scores.items():
            if way != "info":
                out[score] = way
    return out
