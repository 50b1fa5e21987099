"""Metrics for image-to-image translation on the offline two-domain tasks (data/domains.py).

cycle_error_a = mean |F(G(a)) - a| and cycle_error_b = mean |G(F(b)) - b| (mean absolute
error per pixel value, images in [-1, 1], so 2 is the largest possible): how well a CycleGAN's
two mappings invert each other.

Label preservation, for `transformed` tasks (B = T(x) for a known transform T of a labeled
image set, e.g. digits and their color-inverted versions): a translation should keep the
class. The shipped classifier (digits or Fashion-MNIST, metrics/classifier.py) was trained on
the untransformed images, the appearance of domain A, so:

    label_acc_ba = accuracy of classifier(F(b)) against b's label        (F's output looks like A)
    label_acc_ab = accuracy of classifier(T^-1(G(a))) against a's label   (invertible T only)

T^-1 maps G's B-looking output back to A's appearance exactly, so label_acc_ab measures whether
G(a) is the transform of an image of a's class, without training another classifier on B.
`classifier_acc` is the classifier's accuracy on the real A images: the ceiling of both.
For paired data (pix2pix) `l1_ab` = mean |G(a) - b| against the true targets (`l1_ba` =
mean |G(b) - a| for direction BtoA, whose translations are scored by label_acc_ba). Every value is
on the held-out split when the source data set has one (`evaluate_translation`: split test).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.data import DATASETS, build_dataset
from gankit.data.domains import INVERTIBLE, DomainData, invert_transform
from gankit.errors import GankitError
from gankit.metrics.classifier import accuracy, load_classifier
from gankit.metrics.fid import FeatureStats, fid
from gankit.models.classifier import source_classifier
from gankit.models.resnet_generator import build_translator
from gankit.training.checkpoint import load_checkpoint, load_module_state


@torch.no_grad()
def _map(net: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([net(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def translation_metrics(
    G: nn.Module,
    data: DomainData,
    F: nn.Module | None = None,
    classifier: nn.Module | None = None,
    reverse: bool = False,
    batch_size: int = 256,
) -> dict[str, float]:
    """Scores of translator G (A -> B; reverse: B -> A, pix2pix's BtoA) and, for CycleGAN, F
    (B -> A) on all images of `data` (module docstring). Modules are used as given (put them
    in eval mode and on the data's device first)."""

    if reverse and F is not None:
        raise ValueError("reverse is for a single translator (pix2pix BtoA)")
    a, labels_a = data.images("a")
    b, labels_b = data.images("b")
    out: dict[str, float] = {"n_a": float(len(a)), "n_b": float(len(b))}
    # to_b: translations of A images (B's appearance); to_a: translations of B images
    to_b = None if reverse else _map(G, a, batch_size)
    to_a = _map(G, b, batch_size) if reverse else None if F is None else _map(F, b, batch_size)
    if data.paired:
        out["l1_ba" if reverse else "l1_ab"] = float(
            ((to_a - a) if reverse else (to_b - b)).abs().mean()
        )
    if F is not None:
        out["cycle_error_a"] = float((_map(F, to_b, batch_size) - a).abs().mean())
        out["cycle_error_b"] = float((_map(G, to_a, batch_size) - b).abs().mean())
    if classifier is None or data.transform is None:
        return out  # no known relation between the domains' appearance (or no classifier)
    if labels_a is not None:
        out["classifier_acc"] = accuracy(classifier, a, labels_a)
        if to_b is not None and data.transform in INVERTIBLE:
            back = invert_transform(data.transform, to_b)
            out["label_acc_ab"] = accuracy(classifier, back, labels_a)
    if to_a is not None and labels_b is not None:
        out["label_acc_ba"] = accuracy(classifier, to_a, labels_b)
    return out


@torch.no_grad()
def target_fid(
    G: nn.Module, data: DomainData, classifier: nn.Module, reverse: bool, batch_size: int = 256
) -> dict[str, float]:
    """FID (classifier features, metrics/fid.py) of G's translations of every source image to
    the true targets: fid_ba for reverse (B -> A), else fid_ab; `fid_source` is the FID of the
    untranslated sources to the targets (the score before any translation)."""

    src, dst = ("b", "a") if reverse else ("a", "b")
    x, y = data.images(src)[0], data.images(dst)[0]

    def stats(images: Tensor) -> FeatureStats:
        feats = [
            classifier(images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)
        ]
        return FeatureStats.from_features(torch.cat(feats).float())

    target = stats(y)
    return {
        f"fid_{src}{dst}": fid(target, stats(_map(G, x, batch_size))),
        "fid_source": fid(target, stats(x)),
    }


def evaluate_translation(
    run,
    split: str = "test",
    checkpoint: str | Path | None = None,
    classifier: str | None = "auto",
    ema: bool | None = None,
    device: str = "cpu",
    write: bool = True,
) -> dict:
    """translation_metrics of a pix2pix or cyclegan run's newest checkpoint (or `checkpoint`)
    on the `split` of its data (when its source data set has splits); writes RUN_DIR/eval.json.
    classifier: "auto" (the shipped one for the source data), a name or path, or None.
    run: an opened run (gankit.open_run)."""
    start = time.perf_counter()
    cfg = run.config
    if cfg.method not in ("pix2pix", "cyclegan", "composite"):
        raise GankitError(f"{run.path}: a {cfg.method!r} run, not pix2pix, cyclegan or composite")
    ckpt = run.checkpoint(checkpoint)
    data_cfg = dict(cfg.data)
    used_split = "train (its source has no other split)"
    source = data_cfg.get("source") or data_cfg.get("a")
    if source and "split" in DATASETS.options(source["name"], ("seed",)):
        data_cfg["split"], used_split = split, split
    data = build_dataset(data_cfg, seed=cfg.seed).to(torch.device(device))
    G = run.generator(ema=ema, checkpoint=ckpt, device=device).net
    F = None
    if cfg.method == "cyclegan":
        state, _ = load_checkpoint(ckpt)
        shape = data.shape_a
        F = build_translator(cfg.generator, shape, shape[0])
        load_module_state(F, state["modules"]["generator_ba"], "generator_ba", ckpt)
        F = F.to(device).eval()
    name = source_classifier(cfg.data) if classifier == "auto" else classifier
    model = load_classifier(name).to(device) if name else None
    paired = cfg.method in ("pix2pix", "composite")
    reverse = paired and cfg.method_options.get("direction") == "BtoA"
    metrics = translation_metrics(G, data, F, model, reverse=reverse)
    if cfg.method == "composite" and model is not None:  # FID of the outputs to the targets
        metrics.update(target_fid(G, data, model, reverse))
    used_ema = ema if ema is not None else cfg.ema.enabled
    n_in = metrics["n_b"] if reverse else metrics["n_a"] + (metrics["n_b"] if F else 0)
    result = {
        "run": str(run.path),
        "checkpoint": ckpt.name,
        "generator": "ema" if used_ema else "raw",
        "metrics": metrics,
        "protocol": {
            "n_fake": int(n_in),  # translated images
            "n_real": int(metrics["n_a"] + metrics["n_b"]),
            "split": used_split,
            "classifier": name,
            "weights_sha256": getattr(model, "weights_sha256", None),
            "direction": "BtoA" if reverse else "AtoB",
        },
        "seconds": round(time.perf_counter() - start, 2),
    }
    if write:
        (run.path / "eval.json").write_text(json.dumps(result, indent=2, default=float))
    return result
