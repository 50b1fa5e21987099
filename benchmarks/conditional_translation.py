"""Class-conditional generation and unpaired translation, measured offline (the README's
ACGAN and CycleGAN tables).

    python benchmarks/conditional_translation.py --seeds 3 --jobs 2

- ACGAN on Fashion-MNIST (the acgan-fashion-mnist preset): for each of the 10 classes, 1,000
  samples asked for that class are classified by gankit's shipped Fashion-MNIST classifier
  (`class_accuracy`: how often it names the requested class; the classifier itself is 92.07%
  accurate on the real test images), and FID of 10,000 samples to the test images with that
  classifier's features; for the EMA generator (what `gankit eval` scores by default) and the
  raw one (kept in each run's eval_raw.json). Skipped, with a message, when Fashion-MNIST is
  not installed.
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
from tables import cell, seeds_footer, sweep_rows, write_summary

from gankit.sweep import run_sweep

# name -> (preset, overrides, metrics, needs Fashion-MNIST)
EXPERIMENTS: dict[str, tuple[str, list[str], list[str] | None, bool]] = {
    "acgan": ("acgan-fashion-mnist", ["logging.checkpoint_every=500"],
              ["class_accuracy", "fid"], True),
    "cyclegan": ("cyclegan-digits-invert", ["logging.checkpoint_every=500"], None, False),
}  # fmt: skip
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")  # fmt: skip


def raw_generator_scores(folder: Path) -> dict | None:
    """The ACGAN runs scored again with the raw generator (the sweep scores the EMA one, which
    lags a fast-moving generator at a short budget), kept in each run's eval_raw.json; their
    summary row, or None before the sweep has run."""
    import gankit
    from gankit.sweep import summarize

    path = folder / "sweep.json"
    if not path.is_file():
        return None
    runs = []
    for run in json.loads(path.read_text())["runs"]:
        if "metrics" not in run:
            continue
        out = Path(run["path"]) / "eval_raw.json"
        if not out.is_file():
            result = gankit.evaluate(run["path"], metrics=["class_accuracy", "fid"], ema=False,
                                     write=False, progress=False)  # fmt: skip
            out.write_text(json.dumps(result, indent=2, default=float))
        scores = json.loads(out.read_text())["metrics"]
        runs.append({**run, "metrics": scores})
    return summarize(runs, [])[0] if runs else None


def acgan_table(rows: dict, seeds: int, steps: int) -> str:
    """Class accuracy and FID per row; and class diversity (within-class spread of the samples'
    features over the real images', 1 for the real ones) where the rows were scored with it."""
    diversity = any("class_diversity" in row["stats"] for row in rows.values())
    extra_head, extra_rule = (" class diversity |", "---:|") if diversity else ("", "")
    lines = [
        "| method | generator | class accuracy % (mean of 10 classes) |" + extra_head
        + " FID (shipped classifier features) | runs | steps |",
        "|---|---|---:|" + extra_rule + "---:|---:|---:|",
    ]  # fmt: skip
    for which, row in rows.items():
        s = row["stats"]
        extra = f" {cell(s, 'class_diversity', 1, 2)} |" if diversity else ""
        lines.append(f"| ACGAN | {which} | {cell(s, 'class_accuracy', 100, 1)} |{extra} "
                     f"{cell(s, 'fid', 1, 2)} | {row['n']} of {seeds} | {steps} |")  # fmt: skip
    lines += [
        "| real test images (ceiling) | - | 92.07 |"
        + (" 1.00 |" if diversity else "")
        + " 0.02 (test vs train) | - | - |",
        "",
        "Per requested class, % classified as that class (mean ± std over seeds):",
        "",
        "| generator | " + " | ".join(FASHION_CLASSES) + " |",
        "|---|" + "---:|" * len(FASHION_CLASSES),
    ]
    for which, row in rows.items():
        per_class = [cell(row["stats"], f"class_accuracy/{c}", 100, 1) for c in range(10)]
        lines.append(f"| {which} | " + " | ".join(per_class) + " |")
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
    rows = sweep_rows(out / "acgan", steps["acgan"], [])
    if rows:
        by_generator = {"EMA (0.999)": rows[0], "raw": raw_generator_scores(out / "acgan")}
        table = acgan_table(by_generator, args.seeds, steps["acgan"])
        parts.append(f"## ACGAN on Fashion-MNIST\n\n{table}")
        plain = {k: {"n": r["n"], "stats": r["stats"]} for k, r in by_generator.items()}
        record["acgan"] = {"steps": steps["acgan"], **plain}
    rows = sweep_rows(out / "cyclegan", steps["cyclegan"], [])
    if rows:
        table = cyclegan_table(rows[0], args.seeds, steps["cyclegan"])
        parts.append(f"## CycleGAN, digits vs inverted\n\n{table}")
        record["cyclegan"] = {
            "steps": steps["cyclegan"],
            "n": rows[0]["n"],
            "stats": rows[0]["stats"],
        }
    md = (
        "# Class-conditional generation and unpaired translation\n\n"
        + "\n".join(parts)
        + seeds_footer(args.seeds, command, started)
    )
    write_summary(out, md, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
