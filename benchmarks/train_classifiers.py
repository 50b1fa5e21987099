"""Train the classifiers gankit ships as feature extractors and write their accuracy table.

Each classifier is trained on the train split of its data set with gankit.metrics.classifier's
train_classifier (fixed seed, so reruns on the same machine and torch build give the same
weights), scored on the test split, and saved with its training report in the safetensors
metadata. The table in benchmarks/results/classifiers.md is rebuilt from the metadata of every
shipped weight file found in --out-dir, so it always describes the files that ship.

    python benchmarks/train_classifiers.py --data all [--threads 1]
    python benchmarks/train_classifiers.py --data fashion-mnist --epochs 8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from gankit.metrics.classifier import SHIPPED, load_classifier, save_classifier, train_classifier

ROOT = Path(__file__).resolve().parent.parent
FASHION_PATH = "/usr/share/datasets/fashion-mnist"
# Shipped name -> (data section, default epochs). Epochs were chosen by measuring an epoch:
# digits is tiny; Fashion-MNIST takes about 20 s per epoch on an idle 2-core CPU
# (2 torch threads; 8 epochs reach 92% test accuracy in 3 minutes).
DATA = {
    "digits": ({"name": "digits"}, 20),
    "fashion-mnist": ({"name": "idx", "path": FASHION_PATH}, 8),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )


def write_table(out_dir: Path, results: Path) -> None:
    rows = [
        "| data | n_train | n_test | epochs | train acc | test acc | seconds | sha256 (16) "
        "| machine | command |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for short, file_name in SHIPPED.items():
        path = out_dir / file_name
        if not path.is_file():
            continue
        model = load_classifier(path)
        r = model.report
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sha == model.weights_sha256
        rows.append(
            f"| {short} (`{json.dumps(r['data'])}`) | {r['n_train']} | {r['n_test']} "
            f"| {r['epochs']} | {100 * r['train_accuracy']:.2f}% "
            f"| {100 * r['test_accuracy']:.2f}% | {r['seconds']:.0f} | `{sha[:16]}` "
            f"| {r.get('machine', '?')} | `{r.get('command', '?')}` |"
        )
    text = (
        "# Shipped classifiers (feature extractors for offline data sets)\n\n"
        "Small CNNs (gankit.metrics.classifier.ImageClassifier, 128-d features) trained by "
        "`benchmarks/train_classifiers.py`; accuracies are on the full train split (no "
        "augmentation, eval mode) and the full test split. Seconds include loading the data "
        "and scoring both splits.\n\n" + "\n".join(rows) + "\n"
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=[*DATA, "all"], default="all")
    parser.add_argument("--epochs", type=int, default=None, help="default: per data set")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "src/gankit/weights")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/classifiers.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/train_classifiers.py", *sys.argv[1:]])
    for short in DATA if args.data == "all" else [args.data]:
        data, default_epochs = DATA[short]
        epochs = args.epochs or default_epochs
        model, report = train_classifier(
            data,
            epochs=epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            name=f"gankit-{short}-cnn",
        )
        report.update(machine=machine(), command=command)
        sha = save_classifier(model, args.out_dir / SHIPPED[short], report)
        print(
            f"{short}: train {report['train_accuracy']:.4f}, test {report['test_accuracy']:.4f}, "
            f"{report['seconds']:.0f} s, sha256 {sha[:16]}",
            flush=True,
        )
    write_table(args.out_dir, args.results)


if __name__ == "__main__":
    main()
