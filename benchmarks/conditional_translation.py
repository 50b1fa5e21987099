"""Class-conditional generation and unpaired translation, measured offline (the README's
ACGAN and CycleGAN tables).

    python benchmarks/conditional_translation.py --seeds 3 --jobs 2

- ACGAN on Fashion-MNIST (the acgan-fashion-mnist preset): for each of the 10 classes, 1,000
  samples asked for that class are classified by gankit's shipped Fashion-MNIST classifier
  (`class_accuracy`: how often it names the requested class; the classifier itself is 92.07%
  accurate on the real test images), and FID of 10,000 samples to the test images with that
  classifier's features. Skipped, with a message, when Fashion-MNIST is not installed.
- CycleGAN on digits vs color-inverted digits (the cyclegan-digits-invert preset; the two
  training halves are disjoint, so the task is unpaired): label preservation of both mappings
  (the shipped digits classifier, 99.17% on real test digits, on F(b) and on T^-1(G(a))) and
  the cycle reconstruction errors, on the 360 test digits.

Each is one `gankit sweep` (seeds 0..S-1) in OUT/<name>/; rerunning resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from semi_supervised import fashion_available
from tables import cell, machine, sweep_rows

from gankit.sweep import run_sweep

# name -> (preset, overrides, metrics, needs Fashion-MNIST)
EXPERIMENTS: dict[str, tuple[str, list[str], list[str] | None, bool]] = {
    "acgan": ("acgan-fashion-mnist", ["logging.checkpoint_every=500"],
              ["class_accuracy", "fid"], True),
    "cyclegan": ("cyclegan-digits-invert", ["logging.checkpoint_every=500"], None, False),
}  # fmt: skip
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")  # fmt: skip


def acgan_table(row: dict, seeds: int, steps: int) -> str:
    s = row["stats"]
    lines = [
        "| method | class accuracy % (mean of 10 classes) | FID (shipped classifier features) "
        "| runs | steps |",
        "|---|---:|---:|---:|---:|",
        f"| ACGAN | {cell(s, 'class_accuracy', 100, 1)} | {cell(s, 'fid', 1, 2)} | "
        f"{row['n']} of {seeds} | {steps} |",
        "| real test images (ceiling) | 92.07 | 0.02 (test vs train) | - | - |",
        "",
        "Per requested class, % classified as that class (mean ± std over seeds):",
        "",
        "| " + " | ".join(FASHION_CLASSES) + " |",
        "|" + "---:|" * len(FASHION_CLASSES),
        "| " + " | ".join(cell(s, f"class_accuracy/{c}", 100, 1) for c in range(10)) + " |",
    ]
    return "\n".join(lines) + "\n"


def cyclegan_table(row: dict, seeds: int, steps: int) -> str:
    s = row["stats"]
    return (
        "| task | label kept A->B % | label kept B->A % | cycle error A | cycle error B | "
        "classifier on real A % | runs | steps |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| digits -> inverted digits | {cell(s, 'label_acc_ab', 100, 1)} | "
        f"{cell(s, 'label_acc_ba', 100, 1)} | {cell(s, 'cycle_error_a', 1, 3)} | "
        f"{cell(s, 'cycle_error_b', 1, 3)} | {cell(s, 'classifier_acc', 100, 1)} | "
        f"{row['n']} of {seeds} | {steps} |\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acgan-steps", type=int, default=1500)
    parser.add_argument("--cyclegan-steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=list(EXPERIMENTS), help="run one experiment")
    parser.add_argument("--out", default="benchmarks/results/conditional_translation")
    args = parser.parse_args(argv)
    out = Path(args.out)
    command = shlex.join(["python", "benchmarks/conditional_translation.py",
                          *(argv or sys.argv[1:])])  # fmt: skip
    steps = {"acgan": args.acgan_steps, "cyclegan": args.cyclegan_steps}
    started = time.perf_counter()
    for name, (preset, overrides, metrics, needs_fashion) in EXPERIMENTS.items():
        if args.only and name != args.only:
            continue
        if needs_fashion and not fashion_available():
            print(f"{name}: Fashion-MNIST is not installed; skipped", file=sys.stderr)
            continue
        run_sweep(preset, seeds=args.seeds, jobs=args.jobs, out=out / name,
                  steps=steps[name], overrides=overrides, metrics=metrics,
                  command=command)  # fmt: skip
    parts, record = [], {"command": command}
    for name, make in (("acgan", acgan_table), ("cyclegan", cyclegan_table)):
        rows = sweep_rows(out / name, steps[name], [])
        if rows:
            title = "ACGAN on Fashion-MNIST" if name == "acgan" else "CycleGAN, digits vs inverted"
            parts.append(f"## {title}\n\n{make(rows[0], args.seeds, steps[name])}")
            record[name] = {"steps": steps[name], "n": rows[0]["n"], "stats": rows[0]["stats"]}
    minutes = (time.perf_counter() - started) / 60
    md = (
        "# Class-conditional generation and unpaired translation\n\n" + "\n".join(parts) +
        f"\nMean ± sample std over seeds 0..{args.seeds - 1}. Command: `{command}`. "
        f"Machine: {machine()}. Wall time of this invocation: {minutes:.1f} min "
        "(finished runs are skipped).\n"
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(md)
    (out / "summary.json").write_text(json.dumps(record, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
