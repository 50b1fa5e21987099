"""Metrics of a SimGAN refiner (methods/simgan.py) on its offline task (data/domains.py
`rendered_digits`: font-rendered synthetic digits A with their rendered labels, real digits B).

    acc_synthetic  the shipped classifier's accuracy on the synthetic images (rendered labels)
    acc_refined    its accuracy on the refined images R(a) against the same labels: does the
                   refiner keep the digit?
    acc_real       its accuracy on the real images (the ceiling)
    fid_synthetic  FID of the synthetic images to the real ones
    fid_refined    FID of the refined images to the real ones: does refinement look more real?
    l1_refinement  mean |R(a) - a| (how far the refiner moved the images)

FID uses the classifier's 128-d penultimate features (metrics/fid.py, as `gankit eval` does for
digits). Computed on the `split` of the data (test: another rendered set and the real test
digits) by `evaluate_refinement`, which writes RUN_DIR/eval.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.data import DATASETS, build_dataset
from gankit.data.domains import DomainData
from gankit.errors import GankitError
from gankit.metrics.classifier import accuracy, load_classifier
from gankit.metrics.fid import FeatureStats, fid


@torch.no_grad()
def refinement_metrics(
    R: nn.Module, data: DomainData, classifier: nn.Module, batch_size: int = 256
) -> dict[str, float]:
    """The scores of refiner R (module docstring); modules used as given (eval mode, device)."""

    def chunks(x: Tensor):
        return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]

    def stats(x: Tensor) -> FeatureStats:
        return FeatureStats.from_features(torch.cat([classifier(c)[0] for c in chunks(x)]).float())

    a, labels_a = data.images("a")
    b, labels_b = data.images("b")
    refined = torch.cat([R(c).float() for c in chunks(a)])
    real = stats(b)
    out = {"n_synthetic": float(len(a)), "n_real": float(len(b))}
    if labels_a is not None:
        out["acc_synthetic"] = accuracy(classifier, a, labels_a)
        out["acc_refined"] = accuracy(classifier, refined, labels_a)
    if labels_b is not None:
        out["acc_real"] = accuracy(classifier, b, labels_b)
    out["fid_synthetic"] = fid(real, stats(a))
    out["fid_refined"] = fid(real, stats(refined))
    out["l1_refinement"] = float((refined - a).abs().mean())
    return out


def evaluate_refinement(
    run,
    split: str = "test",
    checkpoint: str | Path | None = None,
    classifier: str = "digits",
    ema: bool | None = None,
    device: str = "cpu",
    write: bool = True,
) -> dict:
    """refinement_metrics of a simgan run's newest checkpoint (or `checkpoint`) on `split`.
    run: an opened run (gankit.open_run)."""
    start = time.perf_counter()
    cfg = run.config
    if cfg.method != "simgan":
        raise GankitError(f"{run.path}: a {cfg.method!r} run, not simgan")
    ckpt = run.checkpoint(checkpoint)
    data_cfg = dict(cfg.data)
    used_split = "train (its data set has no other split)"
    if "split" in DATASETS.options(data_cfg["name"], ("seed",)):
        data_cfg["split"], used_split = split, split
    data = build_dataset(data_cfg, seed=cfg.seed).to(torch.device(device))
    R = run.generator(ema=ema, checkpoint=ckpt, device=device).net.eval()
    model = load_classifier(classifier).to(device)
    metrics = refinement_metrics(R, data, model)
    used_ema = ema if ema is not None else cfg.ema.enabled
    result = {
        "run": str(run.path),
        "checkpoint": ckpt.name,
        "generator": "ema" if used_ema else "raw",
        "metrics": metrics,
        "protocol": {
            "n_fake": int(metrics["n_synthetic"]),
            "n_real": int(metrics["n_real"]),
            "split": used_split,
            "classifier": classifier,
            "weights_sha256": getattr(model, "weights_sha256", None),
            "features": "classifier penultimate (128-d)",
        },
        "seconds": round(time.perf_counter() - start, 2),
    }
    if write:
        (run.path / "eval.json").write_text(json.dumps(result, indent=2, default=float))
    return result
