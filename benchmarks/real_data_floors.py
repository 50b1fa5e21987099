"""Scores of real data against real data: the floor a generator's FID can reach with the same
protocol, and the classifier score (IS with gankit's shipped classifier, 10 splits) of the real
test sets.

    python benchmarks/real_data_floors.py [--out benchmarks/results/floors.md]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gankit.data import build_dataset
from gankit.metrics.classifier import load_classifier
from gankit.metrics.features import extract
from gankit.metrics.fid import FeatureStats, fid
from gankit.metrics.inception_score import inception_score
from gankit.metrics.kid import kid

SETS = {
    "digits": ({"name": "digits"}, "digits"),
    "fashion-mnist": (
        {"name": "idx", "path": "/usr/share/datasets/fashion-mnist"},
        "fashion-mnist",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/floors.md"))
    args = parser.parse_args()
    rows = []
    for label, (data, extractor_name) in SETS.items():
        if data["name"] == "idx" and not os.path.isdir(data["path"]):
            print(f"skipping {label}: {data['path']} is absent")
            continue
        extractor = load_classifier(extractor_name)
        train = build_dataset({**data, "split": "train"}, seed=0).x
        test = build_dataset({**data, "split": "test"}, seed=0).x
        f_train, _ = extract(extractor, train, desc=f"{label} train")
        f_test, logits_test = extract(extractor, test, desc=f"{label} test")
        score = fid(FeatureStats.from_features(f_train), FeatureStats.from_features(f_test))
        k = kid(f_train.numpy(), f_test.numpy(), seed=0)
        s = inception_score(logits_test, splits=10)
        rows.append(
            (
                label,
                len(train),
                len(test),
                extractor.name,
                extractor.weights_sha256[:16],
                score,
                k["mean"],
                k["subset_size"],
                s["mean"],
                s["std"],
            )
        )
        print(rows[-1])
    lines = [
        "| data | n train | n test | features | sha256 (16) | FID test vs train | KID (subset) "
        "| classifier score of test set |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | `{r[4]}` | {r[5]:.3f} | {r[6]:.5f} ({r[7]}) "
        f"| {r[8]:.2f} +- {r[9]:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n\nCommand: `python benchmarks/real_data_floors.py`\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
