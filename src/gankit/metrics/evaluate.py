"""Score a generator against reference data with a pinned, self-describing protocol.

Which metrics make sense depends on the data: mode coverage and exact Wasserstein-1 for the 2D
mixtures; FID, KID, the classifier score (Inception Score with the extractor's classifier),
precision/recall and density/coverage for images; the 1,000-mode count for stacked digits.
Every result carries what produced it: sample counts, reference data and split, extractor name
and the sha256 of its weights, seed, gankit version.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gankit.data import build_dataset
from gankit.data.streamed import StreamedData, materialize
from gankit.errors import ConfigError
from gankit.methods import METHODS
from gankit.metrics import standard  # noqa: F401 - registers the shipped metrics and extractors
from gankit.metrics.accuracy import (  # noqa: F401 - re-exported: gankit eval's scores
    class_accuracy,
    classifier_accuracy,
    run_classifier,
)
from gankit.metrics.classifier import load_classifier
from gankit.metrics.features import FeatureExtractor, extract
from gankit.metrics.reference import auto_extractor, reference_options
from gankit.metrics.refinement import evaluate_refinement
from gankit.metrics.registry import (
    EXTRACTORS,
    MetricInputs,
    get_metric,
    metric_names,
    score_directions,
)
from gankit.metrics.translation import evaluate_translation
from gankit.models.latent import sample_latent
from gankit.registry import provided
from gankit.version import __version__

# a method's own evaluation (Method.evaluator) -> the function that scores its runs
EVALUATORS = {"refinement": evaluate_refinement, "translation": evaluate_translation}

N_POINTS_2D = 2500  # PacGAN's protocol


def data_kind(data_cfg: dict) -> str:
    """ "points" for the 2D mixtures, else "images": which metrics apply."""
    return "points" if data_cfg["name"] == "toy2d" else "images"


def score_direction(score: str) -> str | None:
    """ "lower" or "higher" (which way a score is better), None for unknown scores."""
    return score_directions().get(score)


def default_metrics(data_cfg: dict) -> list[str]:
    """The registered default metrics of the data's kind (stacked digits: their mode count,
    since the shipped classifiers read one channel and FID needs an --extractor; the spiral:
    w1, as it has no discrete modes)."""
    name = data_cfg["name"]
    if name == "toy2d" and data_cfg.get("mode") == "spiral":
        return ["w1"]
    if name == "stacked":
        return ["stacked"]
    kind = data_kind(data_cfg)
    return [m for m in metric_names(kind) if get_metric(m).default]


def default_n_fake(data_cfg: dict) -> int:
    return N_POINTS_2D if data_cfg["name"] == "toy2d" else 10_000


def check_metrics(metrics: list[str], data_cfg: dict) -> list[str]:
    kind = data_kind(data_cfg)
    valid = metric_names(kind)
    for m in metrics:
        if m not in valid:
            where = "2D point" if kind == "points" else "image"
            raise ConfigError(
                f"metric {m!r} does not apply to {where} data {data_cfg['name']!r}; "
                f"valid here: {', '.join(valid)}"
            )
    if "modes" in metrics and data_cfg.get("mode") == "spiral":
        raise ConfigError("metric 'modes': the spiral has no discrete modes; use w1")
    return list(metrics)


def check_run_metrics(metrics: list[str], cfg) -> list[str]:
    """check_metrics for `gankit eval` of a run of recipe `cfg`: also the metrics scored from the
    run's own networks (accuracy: methods that train a classifier; class_accuracy: class-
    conditional generators), as the method declares it offers them."""
    method = METHODS[cfg.method]
    for m in metrics:
        if m not in metric_names("run"):
            continue
        needs = get_metric(m).needs
        if "classifier" in needs and not method.trains_classifier:
            with_one = [n for n, c in METHODS.items() if c.trains_classifier]
            raise ConfigError(
                f"metric {m!r}: method {cfg.method!r} trains no classifier; it is for "
                f"semi-supervised runs (method {', '.join(with_one)})"
            )
        if "conditional" in needs and not method.conditional:
            conditional = [n for n, c in METHODS.items() if c.conditional]
            raise ConfigError(
                f"metric {m!r}: method {cfg.method!r} is not class-conditional; it is for "
                f"{' and '.join(conditional)} runs"
            )
    check_metrics([m for m in metrics if m not in metric_names("run")], cfg.data)
    return list(metrics)


def load_extractor(name: str, data_cfg: dict) -> FeatureExtractor:
    """'auto', a registered extractor (inception: the standard FID InceptionV3; digits,
    fashion-mnist: gankit's shipped classifiers) or a path to a classifier made by
    `gankit classifier train`."""
    if name == "auto":
        name = auto_extractor(data_cfg)
    if name in EXTRACTORS:
        return EXTRACTORS.get(name)()
    return load_classifier(name)


def cache_dir() -> Path:
    root = os.environ.get("GANKIT_CACHE") or Path.home() / ".cache" / "gankit"
    return Path(root) / "reference-features"


def reference_features(
    data_options: dict,
    extractor: FeatureExtractor,
    batch_size: int,
    device: torch.device,
    progress: bool,
    use_cache: bool = True,
) -> tuple[Tensor, Tensor | None, int]:
    """Features and logits of the whole reference set, cached on disk keyed by the data
    options and the extractor's weights, so repeated evaluations skip this pass."""
    key = json.dumps(
        {"data": data_options, "extractor": extractor.name, "sha256": extractor.weights_sha256},
        sort_keys=True,
    )
    path = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                logits = torch.from_numpy(f["logits"]).double() if "logits" in f else None
                return torch.from_numpy(f["features"]).double(), logits, int(f["n"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed and replaced
    data = build_dataset(data_options, seed=0)
    images = reference_images(data, batch_size)
    feats, logits = extract(
        extractor,
        images,
        n=len(data),
        batch_size=batch_size,
        device=device,
        progress=progress,
        desc="reference features",
    )
    if use_cache and extractor.weights_sha256 is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"features": feats.float().numpy(), "n": np.array(len(data))}
        if logits is not None:
            arrays["logits"] = logits.float().numpy()
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        feats = feats.float().double()  # identical to what a cache hit returns
        logits = None if logits is None else logits.float().double()
    return feats, logits, len(data)


def reference_images(data, batch_size: int) -> Tensor | Callable[[int], Tensor]:
    """All of a data set's images for feature extraction: its tensor when in memory, else a
    reader that hands out the next images in order, so a streamed set never sits in memory."""
    if not isinstance(data, StreamedData):
        return data.x
    batches = data.reference_batches(len(data), batch_size=batch_size)
    pending: list[Tensor] = []

    def next_images(n: int) -> Tensor:
        while sum(len(p) for p in pending) < n:
            pending.append(next(batches)[0])
        x = torch.cat(pending)
        pending[:] = [x[n:]]
        return x[:n]

    return next_images


def score_points(fake: Tensor, data_cfg: dict, metrics: list[str], seed: int) -> tuple[dict, dict]:
    data = build_dataset(data_cfg, seed=seed)
    real = data.reference(len(fake)).double()
    inputs = MetricInputs(seed=seed, fake_points=fake, real_points=real, data=data)
    scores: dict = {}
    for name in metrics:
        scores.update(get_metric(name).compute(inputs))
    protocol = {
        "n_real": len(real),
        "reference": {"data": data_cfg, "split": "fresh samples (seeded)"},
        "modes_rule": "nearest mode; high quality if Mahalanobis distance < 3 (PacGAN)",
    }
    return scores, protocol


def score_images(
    sample: Callable[[int], Tensor],
    data_cfg: dict,
    metrics: list[str],
    n_fake: int,
    ref_split: str,
    extractor: FeatureExtractor,
    seed: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> tuple[dict, dict]:
    """Compute the inputs the metrics declare they need, once, then each metric."""
    ref_options, split_used = reference_options(data_cfg, ref_split)
    needs = {need for m in metrics for need in get_metric(m).needs}
    feature_metrics = [m for m in metrics if "features" in get_metric(m).needs]
    if feature_metrics and data_cfg["name"] == "stacked" and extractor.input_channels == 1:
        raise ConfigError(
            f"metrics {', '.join(feature_metrics)} on stacked data: extractor {extractor.name} "
            "reads 1-channel images, these are 3-channel; score `stacked` (each channel on its "
            "own) and `swd`, or pass a 3-channel --extractor (inception)"
        )
    x = MetricInputs(seed=seed, extractor=extractor, device=device)
    n_real = None
    if "features" in needs:
        x.real_features, _, n_real = reference_features(
            ref_options, extractor, batch_size, device, progress
        )
    if "images" in needs:
        parts, done = [], 0
        while done < n_fake:
            parts.append(sample(min(batch_size, n_fake - done)).cpu())
            done += len(parts[-1])
        x.fake_images = torch.cat(parts)
        x.real_images = materialize(build_dataset(ref_options, seed=0), n_fake)[0]
    if "features" in needs or "logits" in needs:
        source = x.fake_images if x.fake_images is not None else sample
        x.fake_features, x.fake_logits = extract(
            extractor,
            source,
            n=None if x.fake_images is not None else n_fake,
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc="sample features",
        )
    scores: dict = {}
    for name in metrics:
        scores.update(get_metric(name).compute(x))
    if n_real is None:  # only sample-level scores: the reference set's size
        n_real = len(build_dataset(ref_options, seed=0))
    protocol = {
        "n_real": n_real,
        "reference": {"data": ref_options, "split": split_used},
        **extractor.protocol(),
        "kid": "unbiased MMD^2, cubic polynomial kernel, 100 subsets",
        "is": "10 splits, p(y) per split",
        "pr_k": 3,
        "dc_k": 5,
    }
    return scores, protocol


def compute_metrics(
    generator: torch.nn.Module,
    latent: tuple[int, str],
    data_cfg: dict,
    metrics: list[str] | None = None,
    n_fake: int | None = None,
    ref_split: str = "test",
    extractor: str | FeatureExtractor = "auto",
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Scores of `generator` (a module mapping latent noise to samples) and their protocol.

    The noise comes from its own generator seeded with `seed`: evaluation never touches the
    training run's random streams.
    """
    device = torch.device(device)
    metrics = check_metrics(metrics or default_metrics(data_cfg), data_cfg)
    n_fake = n_fake or default_n_fake(data_cfg)
    if n_fake < 2:
        raise ConfigError(f"n_fake: needs at least 2 samples, got {n_fake}")
    noise = torch.Generator(device=device).manual_seed(seed)
    was_training = generator.training
    generator.eval()

    @torch.no_grad()
    def sample(n: int) -> Tensor:
        return generator(sample_latent(n, latent[0], latent[1], device, noise)).float()

    start = time.perf_counter()
    try:
        if data_cfg["name"] == "toy2d":
            scores, protocol = score_points(sample(n_fake).cpu(), data_cfg, metrics, seed)
        else:
            if isinstance(extractor, str):
                extractor = load_extractor(extractor, data_cfg)
            scores, protocol = score_images(
                sample,
                data_cfg,
                metrics,
                n_fake,
                ref_split,
                extractor,
                seed,
                batch_size,
                device,
                progress,
            )
    finally:
        generator.train(was_training)
    return {
        "metrics": scores,
        "protocol": {
            "metrics": metrics,
            "n_fake": n_fake,
            **protocol,
            "seed": seed,
            "gankit_version": __version__,
        },
        "seconds": round(time.perf_counter() - start, 2),
    }


def offers(method, needs: tuple[str, ...]) -> bool:
    """Does a method offer what a run metric reads (Method.trains_classifier, .conditional)?"""
    return ("classifier" not in needs or method.trains_classifier) and (
        "conditional" not in needs or method.conditional
    )


def evaluate(
    run,
    metrics: list[str] | None = None,
    n_fake: int | None = None,
    ref_split: str = "test",
    extractor: str = "auto",
    seed: int = 0,
    ema: bool | None = None,
    checkpoint: str | Path | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
    write: bool = True,
) -> dict:
    """Evaluate a run's newest checkpoint (or `checkpoint`) and write RUN_DIR/eval.json.
    run: an opened run (gankit.open_run; gankit.evaluate takes its folder)."""
    options = dict(locals())
    with provided(run.objects):  # the run's own Python objects, if any
        return _evaluate(**options)


def _evaluate(
    run,
    metrics,
    n_fake,
    ref_split,
    extractor,
    seed,
    ema,
    checkpoint,
    batch_size,
    device,
    progress,
    write,
) -> dict:
    method = METHODS[run.config.method]
    if method.evaluator is not None:  # refiners, translators: scored as such
        return EVALUATORS[method.evaluator](
            run, ref_split, checkpoint, ema=ema, device=device, write=write
        )
    started = time.perf_counter()
    ckpt = run.checkpoint(checkpoint)
    check_run_metrics(metrics or [], run.config)
    # the run's own networks: a trained classifier's test accuracy (ssl), how often each
    # requested class comes out (cgan, acgan); with the samples' metrics when none are named
    wanted = [
        m
        for m in metric_names("run")
        if (metrics is None or m in metrics) and offers(method, get_metric(m).needs)
    ]
    G = run.generator(ema=ema, checkpoint=ckpt, device=device)
    g_cfg = run.config.generator
    latent = (g_cfg["latent_dim"], g_cfg["latent_dist"])
    x = MetricInputs(
        seed=seed, device=device, generator=G, latent=latent, data_cfg=run.config.data,
        split=ref_split, n_fake=n_fake or default_n_fake(run.config.data),
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    if any("classifier" in get_metric(m).needs for m in wanted):
        x.classifier = run_classifier(run, ckpt, device)
    if any("logits" in get_metric(m).needs for m in wanted):
        if isinstance(extractor, str):
            extractor = load_extractor(extractor, run.config.data)
        x.extractor = extractor
    extra_scores: dict = {}
    for m in wanted:
        extra_scores.update(get_metric(m).compute(x))
    extra_protocol = x.protocol
    used_ema = ema if ema is not None else run.config.ema.enabled
    head = {
        "run": str(run.path),
        "checkpoint": ckpt.name,
        "generator": "ema" if used_ema else "raw",
    }
    run_metrics = metric_names("run")
    sample_metrics = None if metrics is None else [m for m in metrics if m not in run_metrics]
    if sample_metrics == []:  # only metrics of the run's own networks were asked for
        result = {
            **head,
            "metrics": extra_scores,
            "protocol": {"metrics": metrics, **extra_protocol, "gankit_version": __version__},
        }
    else:
        result = {
            **head,
            **compute_metrics(
                G, latent, run.config.data, sample_metrics, n_fake, ref_split, extractor, seed,
                batch_size, device, progress,
            ),
        }  # fmt: skip
        result["metrics"].update(extra_scores)
        result["protocol"].update(extra_protocol)
    result["seconds"] = round(time.perf_counter() - started, 2)  # all of it, classifiers too
    if write:
        (run.path / "eval.json").write_text(json.dumps(result, indent=2, default=float))
    return result
