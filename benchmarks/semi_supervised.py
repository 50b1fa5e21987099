"""Semi-supervised classification with the K+1 GAN against the same classifier trained on the
labeled examples alone (the README's semi-supervised table).

    python benchmarks/semi_supervised.py --seeds 3 --jobs 2

Settings: Fashion-MNIST with 100 labels (10 per class) and 1,000 labels (100 per class), and
scikit-learn's 8x8 digits with 50 labels (5 per class). Each setting is one `gankit sweep` over
`method_options.unlabeled_weight` = 1 (the K+1 GAN: the ssl-fashion-mnist / ssl-digits presets,
Salimans et al.'s permutation-invariant MNIST recipe) and 0 (supervised only: the same network,
noise layers, optimizer and classifier EMA, trained on the labeled examples alone; no generator,
no unlabeled data). The labeled subset is the same in every run (label_seed 1, the official
seed); the seed changes initialization, batches and noise. Scored with `gankit eval --metrics
accuracy` (the classifier EMA's error on the 10,000 Fashion-MNIST / 360 digits test images).
Short budgets, so the classifier EMA decays at 0.999 (the paper: 0.9999 over 300 epochs).
Fashion-MNIST settings are skipped, with a message, when its IDX files are not installed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from tables import cell, machine, pick, sweep_rows, write_summary

from gankit.data.idx import FILES
from gankit.sweep import run_sweep

FASHION = "/usr/share/datasets/fashion-mnist"
# name -> (preset, data set shown in the table, labels in all, overrides, steps flag)
SETTINGS: dict[str, tuple[str, str, int, list[str], str]] = {
    "fashion-100": ("ssl-fashion-mnist", "Fashion-MNIST", 100,
                    ["method_options.labels_per_class=10"], "fashion_steps"),
    "fashion-1000": ("ssl-fashion-mnist", "Fashion-MNIST", 1000,
                     ["method_options.labels_per_class=100"], "fashion_steps"),
    "digits-50": ("ssl-digits", "digits (8x8)", 50,
                  ["method_options.labels_per_class=5"], "digits_steps"),
}  # fmt: skip
COMMON = ["method_options.ema_decay=0.999", "logging.checkpoint_every=1000"]
GRID = "method_options.unlabeled_weight=1.0,0.0"
KEY = "method_options.unlabeled_weight"


def fashion_available() -> bool:
    folder = Path(FASHION)
    names = [n for pair in FILES.values() for n in pair]
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names)


def table(results: dict, seeds: int) -> str:
    lines = [
        "| data | labels | K+1 GAN: test error % | supervised only: test error % | runs | steps |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (rows, steps) in results.items():
        _, data, labels, _, _ = SETTINGS[name]
        by_weight = {float(row[KEY]): row for row in rows}
        gan, sup = by_weight.get(1.0), by_weight.get(0.0)
        err = lambda row: cell(row["stats"], "test_error", 100, 2) if row else "-"  # noqa: E731
        runs = " / ".join(str(row["n"]) if row else "0" for row in (gan, sup))
        lines.append(
            f"| {data} | {labels} | {err(gan)} | {err(sup)} | {runs} of {seeds} | {steps} |"
        )
    lines.append(
        "| MNIST, published (Salimans et al. 2016, Table 1) | 100 | 0.93 ± 0.065 | - | 10 | "
        "300 epochs |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fashion-steps", type=int, default=2000)
    parser.add_argument("--digits-steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--settings", help="comma-separated subset of: " + ", ".join(SETTINGS))
    parser.add_argument("--out", default="benchmarks/results/semi_supervised")
    args = parser.parse_args(argv)
    names = pick(parser, args.settings, SETTINGS, "settings")
    if not fashion_available():
        skipped = [n for n in names if n.startswith("fashion")]
        print(f"Fashion-MNIST is not in {FASHION} (apt-get install dataset-fashion-mnist): "
              f"skipping {', '.join(skipped)}", file=sys.stderr)  # fmt: skip
        names = [n for n in names if not n.startswith("fashion")]
    out = Path(args.out)
    command = shlex.join(["python", "benchmarks/semi_supervised.py", *(argv or sys.argv[1:])])
    started = time.perf_counter()
    for name in names:
        preset, _, _, extra, steps_flag = SETTINGS[name]
        run_sweep(
            preset,
            grid=[GRID],
            seeds=args.seeds,
            jobs=args.jobs,
            out=out / name,
            steps=getattr(args, steps_flag),
            overrides=[*COMMON, *extra],
            metrics=["accuracy"],
            command=command,
        )
    # the table: every setting swept into OUT so far at this budget (also by earlier calls)
    results = {}
    for name, (*_, steps_flag) in SETTINGS.items():
        steps = getattr(args, steps_flag)
        rows = sweep_rows(out / name, steps, [KEY])
        if rows is not None:
            results[name] = (rows, steps)
    minutes = (time.perf_counter() - started) / 60
    md = (
        "# Semi-supervised classification: K+1 GAN vs supervised only\n\n"
        f"{table(results, args.seeds)}\n"
        f"Test error of the classifier EMA, mean ± sample std over seeds 0..{args.seeds - 1} "
        f"(one fixed labeled subset, label_seed 1). Command: `{command}`. Machine: {machine()}. "
        f"Wall time of this invocation: {minutes:.1f} min (finished runs are skipped).\n"
    )
    plain = {
        name: {"steps": steps, "rows": [{KEY: r[KEY], "n": r["n"], "stats": r["stats"]}
                                        for r in rows]}
        for name, (rows, steps) in results.items()
    }  # fmt: skip
    write_summary(out, md, {"command": command, "results": plain})
    return 0


if __name__ == "__main__":
    sys.exit(main())
