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

from gankit.data import DATASETS, build_dataset
from gankit.errors import ConfigError
from gankit.metrics.features import FeatureExtractor, extract
from gankit.version import __version__

IMAGE_METRICS = ("fid", "kid", "is", "pr", "dc", "swd", "stacked")
POINT_METRICS = ("modes", "w1")
ALL_METRICS = IMAGE_METRICS + POINT_METRICS
# Scalar names, and which way is better (for keeping the best checkpoint).
LOWER_IS_BETTER = {"fid", "kid", "swd", "w1", "reverse_kl", "stacked_reverse_kl"}
HIGHER_IS_BETTER = {
    "is", "precision", "recall", "density", "coverage", "modes_captured", "high_quality",
    "stacked_modes", "stacked_high_quality", "stacked_confident_modes",
}  # fmt: skip
N_POINTS_2D = 2500  # PacGAN's protocol


def default_metrics(data_cfg: dict) -> list[str]:
    name = data_cfg["name"]
    if name == "toy2d":
        return ["w1"] if data_cfg.get("mode") == "spiral" else ["modes", "w1"]
    if name == "stacked":  # the shipped classifiers read one channel: FID needs --extractor
        return ["stacked"]
    return ["fid", "kid", "is", "pr", "dc"]


def default_n_fake(data_cfg: dict) -> int:
    return N_POINTS_2D if data_cfg["name"] == "toy2d" else 10_000


def check_metrics(metrics: list[str], data_cfg: dict) -> list[str]:
    points = data_cfg["name"] == "toy2d"
    valid = POINT_METRICS if points else IMAGE_METRICS
    for m in metrics:
        if m not in valid:
            kind = "2D point" if points else "image"
            raise ConfigError(
                f"metric {m!r} does not apply to {kind} data {data_cfg['name']!r}; "
                f"valid here: {', '.join(valid)}"
            )
    if "modes" in metrics and data_cfg.get("mode") == "spiral":
        raise ConfigError("metric 'modes': the spiral has no discrete modes; use w1")
    return list(metrics)


def check_run_metrics(metrics: list[str], cfg) -> list[str]:
    """check_metrics for `gankit eval` of a run of recipe `cfg`: also the metrics scored from the
    run's own networks (accuracy: methods that train a classifier; class_accuracy: class-
    conditional generators)."""
    from gankit.methods import METHODS

    for m in metrics:
        if m in CLASSIFIER_METRICS and not hasattr(METHODS[cfg.method], "build_classifier"):
            raise ConfigError(
                f"metric {m!r}: method {cfg.method!r} trains no classifier; it is for "
                "semi-supervised runs (method ssl)"
            )
        if m in CONDITIONAL_METRICS and cfg.method not in ("cgan", "acgan"):
            raise ConfigError(
                f"metric {m!r}: method {cfg.method!r} is not class-conditional; it is for "
                "cgan and acgan runs"
            )
    check_metrics([m for m in metrics if m not in RUN_METRICS], cfg.data)
    return list(metrics)


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


def load_extractor(name: str, data_cfg: dict) -> FeatureExtractor:
    """'auto', 'inception' (the standard FID InceptionV3), 'digits', 'fashion-mnist' (gankit's
    shipped classifiers) or a path to a classifier made by `gankit classifier train`."""
    if name == "auto":
        name = auto_extractor(data_cfg)
    if name == "inception":
        from gankit.metrics.inception import load_fid_inception

        return load_fid_inception()
    from gankit.metrics.classifier import load_classifier

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
    images = data.x
    feats, logits = extract(
        extractor,
        images,
        batch_size=batch_size,
        device=device,
        progress=progress,
        desc="reference features",
    )
    if use_cache and extractor.weights_sha256 is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"features": feats.float().numpy(), "n": np.array(len(images))}
        if logits is not None:
            arrays["logits"] = logits.float().numpy()
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        feats = feats.float().double()  # identical to what a cache hit returns
        logits = None if logits is None else logits.float().double()
    return feats, logits, len(images)


def score_points(fake: Tensor, data_cfg: dict, metrics: list[str], seed: int) -> tuple[dict, dict]:
    from gankit.metrics.modes import mixture_modes
    from gankit.metrics.wasserstein import wasserstein1

    data = build_dataset(data_cfg, seed=seed)
    real = data.reference(len(fake)).double()
    scores: dict = {}
    if "modes" in metrics:
        m = mixture_modes(fake.double(), data.means.double(), data.std)
        scores.update(
            modes_captured=m["modes_captured"],
            n_modes=m["n_modes"],
            high_quality=m["high_quality_fraction"],
            reverse_kl=m["reverse_kl"],
        )
    if "w1" in metrics:
        scores["w1"] = wasserstein1(fake.double().numpy(), real.numpy())
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
    from gankit.metrics.fid import FeatureStats, fid
    from gankit.metrics.inception_score import inception_score
    from gankit.metrics.kid import kid
    from gankit.metrics.prdc import density_coverage, precision_recall

    ref_options, split_used = reference_options(data_cfg, ref_split)
    feature_metrics = [m for m in metrics if m not in ("swd", "stacked")]
    stacked_data = data_cfg["name"] == "stacked"
    if feature_metrics and stacked_data and getattr(extractor, "input_shape", (3,))[0] == 1:
        raise ConfigError(
            f"metrics {', '.join(feature_metrics)} on stacked data: extractor {extractor.name} "
            "reads 1-channel images, these are 3-channel; score `stacked` (each channel on its "
            "own) and `swd`, or pass a 3-channel --extractor (inception)"
        )
    real_f = n_real = None
    if feature_metrics:
        real_f, _, n_real = reference_features(ref_options, extractor, batch_size, device, progress)
    keep_images = "swd" in metrics or "stacked" in metrics
    fake_images = fake_f = fake_logits = None
    if keep_images:
        parts, done = [], 0
        while done < n_fake:
            parts.append(sample(min(batch_size, n_fake - done)).cpu())
            done += len(parts[-1])
        fake_images = torch.cat(parts)
    if keep_images and feature_metrics:
        fake_f, fake_logits = extract(
            extractor,
            fake_images,
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc="sample features",
        )
    elif feature_metrics:
        fake_f, fake_logits = extract(
            extractor,
            sample,
            n=n_fake,
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc="sample features",
        )
    scores: dict = {}
    if "fid" in metrics:
        scores["fid"] = fid(FeatureStats.from_features(real_f), FeatureStats.from_features(fake_f))
    if "kid" in metrics:
        k = kid(real_f.numpy(), fake_f.numpy(), seed=seed)
        scores.update(kid=k["mean"], kid_std=k["std"], kid_subset_size=k["subset_size"])
    if "is" in metrics:
        if fake_logits is None:
            raise ConfigError(f"metric 'is': extractor {extractor.name} has no classifier head")
        s = inception_score(fake_logits, splits=10)
        scores.update({"is": s["mean"], "is_std": s["std"]})
    if "pr" in metrics:
        scores.update(precision_recall(real_f, fake_f, k=3))
    if "dc" in metrics:
        scores.update(density_coverage(real_f, fake_f, k=5))
    if "swd" in metrics:
        from gankit.metrics.wasserstein import sliced_wasserstein

        real_images = build_dataset(ref_options, seed=0).x
        scores["swd"] = sliced_wasserstein(
            fake_images.flatten(1).double().numpy(),
            real_images.flatten(1).double().numpy(),
            seed=seed,
        )
    if "stacked" in metrics:
        from gankit.metrics.classifier import stacked_digit_probabilities
        from gankit.metrics.stacked import stacked_mode_histogram, stacked_quality

        probs = stacked_digit_probabilities(extractor.to(device), fake_images.to(device)).cpu()
        h = stacked_mode_histogram(probs.argmax(2).numpy())
        q = stacked_quality(probs)
        scores.update(
            stacked_modes=h["modes_hit"],
            stacked_reverse_kl=h["reverse_kl"],
            stacked_high_quality=q["high_quality"],
            stacked_confident_modes=q["confident_modes"],
        )
    if n_real is None:  # only sample-level scores: the reference set's size
        n_real = len(build_dataset(ref_options, seed=0).x)
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
    from gankit.models.latent import sample_latent

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


# -- classifier accuracy (methods that train a classifier: ssl) ---------------------------------
CLASSIFIER_METRICS = ("accuracy",)  # scored by `evaluate` from the run's classifier
CONDITIONAL_METRICS = ("class_accuracy",)  # scored by `evaluate` from a conditional generator
RUN_METRICS = CLASSIFIER_METRICS + CONDITIONAL_METRICS


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
) -> tuple[dict, dict]:
    """How often a classifier (the extractor's head: gankit's shipped classifiers) names the
    class each sample was generated for (ACGAN's measure, Odena et al. 2017): per class
    (class_accuracy/c) and their mean (class_accuracy). `generator(z, labels=y)` draws class y."""
    from gankit.models.latent import sample_latent

    device = torch.device(device)
    noise = torch.Generator(device=device).manual_seed(seed)
    was_training = generator.training
    generator.eval()
    per_class = {}
    try:
        for c in range(num_classes):

            def sample(n: int, c: int = c) -> Tensor:
                z = sample_latent(n, latent[0], latent[1], device, noise)
                y = torch.full((n,), c, dtype=torch.long, device=device)
                return generator(z, labels=y).float()

            _, logits = extract(extractor, sample, n=n_per_class, batch_size=batch_size,
                                device=device, progress=progress, desc=f"class {c}")  # fmt: skip
            if logits is None:
                raise ConfigError(
                    f"metric 'class_accuracy': extractor {extractor.name} has no classifier head; "
                    "use a shipped classifier (digits, fashion-mnist) or your own with one"
                )
            per_class[c] = float((logits.argmax(1) == c).double().mean())
    finally:
        generator.train(was_training)
    scores = {"class_accuracy": sum(per_class.values()) / num_classes}
    scores.update({f"class_accuracy/{c}": acc for c, acc in per_class.items()})
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
    from gankit.methods import METHODS
    from gankit.training.checkpoint import load_checkpoint, load_module_state

    method = METHODS[run.config.method]
    if not hasattr(method, "build_classifier"):
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
    data = build_dataset(options, seed=0)
    if data.labels is None:
        raise ConfigError(f"metric 'accuracy': data {data_cfg['name']!r} has no labels")
    correct = 0
    for start in range(0, len(data.x), batch_size):
        x = data.x[start : start + batch_size].to(device)
        y = data.labels[start : start + batch_size].to(device)
        correct += int((net(x).argmax(1) == y).sum())
    n = len(data.x)
    scores = {"accuracy": correct / n, "test_error": 1 - correct / n, "test_errors": n - correct}
    protocol = {"data": options, "split": split_used, "n": n, "rule": "argmax of the K logits"}
    return scores, protocol


def evaluate(
    run_dir: str | Path,
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
    """Evaluate a run's newest checkpoint (or `checkpoint`) and write RUN_DIR/eval.json."""
    from gankit.run import Run

    run = Run(run_dir)
    if run.config.method == "simgan":  # refiner: metrics/refinement.py
        from gankit.metrics.refinement import evaluate_refinement

        return evaluate_refinement(
            run_dir, ref_split, checkpoint, ema=ema, device=device, write=write
        )
    if run.config.method in ("pix2pix", "cyclegan", "composite"):  # metrics/translation.py
        from gankit.metrics.translation import evaluate_translation

        return evaluate_translation(
            run_dir, ref_split, checkpoint, ema=ema, device=device, write=write
        )
    started = time.perf_counter()
    ckpt = run.checkpoint(checkpoint)
    check_run_metrics(metrics or [], run.config)
    extra_scores: dict = {}  # metrics scored from the run's own networks
    extra_protocol: dict = {}
    # a run that trains a classifier (ssl): its accuracy on the test split, with the samples'
    # metrics when none are named; --metrics accuracy alone scores only the classifier
    if metrics is None or "accuracy" in metrics:
        found_classifier = run_classifier(run, ckpt, device)
        if found_classifier is not None:
            net, key = found_classifier
            scores, acc_protocol = classifier_accuracy(net, run.config.data, ref_split, 256, device)
            extra_scores.update(scores)
            extra_protocol["accuracy"] = {**acc_protocol, "classifier": key}
    G = run.generator(ema=ema, checkpoint=ckpt, device=device)
    g_cfg = run.config.generator
    latent = (g_cfg["latent_dim"], g_cfg["latent_dist"])
    # a class-conditional run (cgan, acgan): how often each requested class comes out
    if (metrics is None or "class_accuracy" in metrics) and hasattr(G, "num_classes"):
        if isinstance(extractor, str):
            extractor = load_extractor(extractor, run.config.data)
        per_class = max(1, (n_fake or default_n_fake(run.config.data)) // G.num_classes)
        scores, cls_protocol = class_accuracy(
            G, latent, G.num_classes, extractor, per_class, seed, batch_size, device, progress
        )
        extra_scores.update(scores)
        extra_protocol["class_accuracy"] = cls_protocol
    used_ema = ema if ema is not None else run.config.ema.enabled
    head = {
        "run": str(run.path),
        "checkpoint": ckpt.name,
        "generator": "ema" if used_ema else "raw",
    }
    sample_metrics = None if metrics is None else [m for m in metrics if m not in RUN_METRICS]
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
