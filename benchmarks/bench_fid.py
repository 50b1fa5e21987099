"""Time to compute FID on 10,000 generated + 10,000 real images (feature extraction +
statistics + distance): gankit vs torchmetrics' FrechetInceptionDistance with the same feature
extractor (gankit's shipped Fashion-MNIST classifier), side by side, alternating runs.

    pip install -e ".[bench]" && python benchmarks/bench_fid.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from gankit.metrics.classifier import load_classifier
from gankit.metrics.features import extract
from gankit.metrics.fid import FeatureStats, fid


class FeaturesOnly(nn.Module):
    """torchmetrics wants a module returning (N, F) features."""

    def __init__(self, extractor):
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features

    def forward(self, x):
        return self.extractor(x)[0]


def gankit_fid(extractor, real, fake, batch) -> float:
    f_real, _ = extract(extractor, real, batch_size=batch, progress=False)
    f_fake, _ = extract(extractor, fake, batch_size=batch, progress=False)
    return fid(FeatureStats.from_features(f_real), FeatureStats.from_features(f_fake))


def torchmetrics_fid(extractor, real, fake, batch) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=FeaturesOnly(extractor), normalize=True)
    with torch.no_grad():
        for i in range(0, len(real), batch):
            metric.update(real[i : i + batch], real=True)
        for i in range(0, len(fake), batch):
            metric.update(fake[i : i + batch], real=False)
        return float(metric.compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fid.md"))
    args = parser.parse_args()
    extractor = load_classifier("fashion-mnist").eval()
    g = torch.Generator().manual_seed(0)
    real = torch.rand(args.n, 1, 28, 28, generator=g) * 2 - 1
    fake = (torch.rand(args.n, 1, 28, 28, generator=g) * 2 - 1).clamp(-1, 0.5)
    ours, theirs, values = [], [], []
    gankit_fid(extractor, real[:512], fake[:512], args.batch)  # warm up
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = gankit_fid(extractor, real, fake, args.batch)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = torchmetrics_fid(extractor, real, fake, args.batch)
        theirs.append(time.perf_counter() - t)
        values.append((a, b))
    o, m = statistics.median(ours), statistics.median(theirs)
    text = (
        "| implementation | seconds (median) | FID |\n|---|---:|---:|\n"
        f"| gankit | {o:.2f} | {values[0][0]:.6f} |\n"
        f"| torchmetrics | {m:.2f} | {values[0][1]:.6f} |\n\n"
        f"{args.n} + {args.n} 28x28 images, shipped Fashion-MNIST classifier features, batch "
        f"{args.batch}, {args.repeats} alternating runs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.\n"
        f"Command: `python benchmarks/bench_fid.py --repeats {args.repeats}`\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
