"""SimGAN, composite synthesis losses, LAPGAN and AdaGAN on their offline tasks, each beside
the baseline it should beat (the README's "other GAN systems" tables).

    python benchmarks/systems.py --seeds 3 --jobs 2

Experiments (one `gankit sweep` each, seeds 0..S-1, in OUT/<name>/; rerunning resumes):

- simgan: the simgan-digits preset refines font-rendered digits toward scikit-learn's real
  digits; scored on a fresh rendered set and the real test digits (metrics/refinement.py): the
  shipped digits classifier's accuracy on synthetic vs refined images (rendered labels) and FID
  to real digits before vs after refinement.
- composite-full / composite-pixel: undo a known "pose" warp (20 degree rotation after a 0.25
  shear) of digits, paired (composite-digits-unwarp): the full composite loss (pixel L1 +
  symmetry + adversarial + identity-preserving + total variation) against pixel L1 alone;
  scored on the test digits: L1 to the true unwarped digit, the classifier's accuracy on the
  output, FID to the targets. composite-fashion-full / composite-fashion-pixel: the same on
  Fashion-MNIST items (composite-fashion-mnist-unwarp; about 8x the cost per step, so a shorter
  budget; skipped, with a message, when Fashion-MNIST is not installed).
- lapgan / lapgan-single: the lapgan-digits pyramid (4x4 -> 8x8) against one GAN with the
  same MLP networks on the 8x8 digits directly (method gan); FID, KID and precision/recall
  with the shipped digits classifier's features on the test digits.
- adagan-ring / adagan-grid against gan-ring / gan-grid: AdaGAN's 5-round mixture against a
  single GAN with the same networks and the same total number of steps (AdaGAN's include the
  200 steps of each round's reweighting classifier, so each of its 5 GANs trains for 1/5 of
  the budget or 200 steps less), PacGAN's 2D scoring (2,500 samples; modes captured, % high
  quality, reverse KL). adagan-stacked / gan-stacked: the same on stacked 8x8 digits (1,000
  modes, the stacked-digits preset's tiny DCGAN), 25,600 samples read channel by channel by
  the shipped digits classifier (modes hit, reverse KL).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from semi_supervised import fashion_available
from tables import cell, pick, seeds_footer, sweep_rows, sweep_steps, write_summary

from gankit.sweep import run_sweep

NO_TERMS = ["method_options.sym_weight=0", "method_options.adv_weight=0",
            "method_options.ip_weight=0", "method_options.tv_weight=0"]  # fmt: skip
STACKED_SAMPLES = 25_600  # scored per stacked run, as the stacked-MNIST protocol
# AdaGAN's rounds include its reweighting classifier's steps: 200 of each round's steps
ADAGAN = ["method_options.classifier_steps=200"]
# name -> (preset, overrides, metrics, steps flag)
EXPERIMENTS: dict[str, tuple[str, list[str], list[str] | None, str]] = {
    "simgan": ("simgan-digits", [], None, "simgan_steps"),
    "composite-full": ("composite-digits-unwarp", [], None, "composite_steps"),
    "composite-pixel": ("composite-digits-unwarp", NO_TERMS, None, "composite_steps"),
    "composite-fashion-full": ("composite-fashion-mnist-unwarp", [], None, "fashion_steps"),
    "composite-fashion-pixel": ("composite-fashion-mnist-unwarp", NO_TERMS, None, "fashion_steps"),
    "lapgan": ("lapgan-digits", [], ["fid", "kid", "pr"], "lapgan_steps"),
    "lapgan-single": ("lapgan-digits", ["method=gan", "method_options={}"],
                      ["fid", "kid", "pr"], "lapgan_steps"),
    "adagan-ring": ("adagan-ring8", ADAGAN, ["modes"], "adagan_steps"),
    "gan-ring": ("ring8", [], ["modes"], "adagan_steps"),
    "adagan-grid": ("adagan-grid25", ADAGAN, ["modes"], "adagan_steps"),
    "gan-grid": ("grid25", [], ["modes"], "adagan_steps"),
    "adagan-stacked": ("stacked-digits", ["method=adagan", "method_options={rounds: 5}", *ADAGAN],
                       ["stacked"], "stacked_steps"),
    "gan-stacked": ("stacked-digits", [], ["stacked"], "stacked_steps"),
}  # fmt: skip


def rows_of(results: dict, names: list[str]) -> list[tuple[str, dict]]:
    return [(n, results[n][0]) for n in names if n in results]


def runs(row: dict, seeds: int, steps: int) -> str:
    return f"{row['n']} of {seeds} | {steps} |"


def simgan_table(results: dict, seeds: int) -> str:
    out = ["| data | classifier accuracy % (rendered labels) | FID to real digits | "
           "mean moved L1 | runs | steps |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for _, (row, steps) in [(n, results[n]) for n in ["simgan"] if n in results]:
        s = row["stats"]
        out.append(
            f"| synthetic (rendered) | {cell(s, 'acc_synthetic', 100, 1)} | "
            f"{cell(s, 'fid_synthetic')} | - | {runs(row, seeds, steps)}"
        )
        out.append(
            f"| refined by SimGAN | {cell(s, 'acc_refined', 100, 1)} | "
            f"{cell(s, 'fid_refined')} | {cell(s, 'l1_refinement', 1, 3)} | "
            f"{runs(row, seeds, steps)}"
        )
        out.append(f"| real test digits (ceiling) | {cell(s, 'acc_real', 100, 1)} | 0 | - | "
                   f"{runs(row, seeds, steps)}")  # fmt: skip
    return "\n".join(out) + "\n"


def composite_table(results: dict, seeds: int) -> str:
    out = ["| data | loss | L1 to the unwarped image | classifier accuracy % of the output | "
           "FID to targets | FID of the warped inputs | runs | steps |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    full, pixel = "pixel + symmetry + adversarial + identity + TV", "pixel L1 only"
    label = {"composite-full": ("digits", full), "composite-pixel": ("digits", pixel),
             "composite-fashion-full": ("Fashion-MNIST", full),
             "composite-fashion-pixel": ("Fashion-MNIST", pixel)}  # fmt: skip
    for name, (data, loss) in label.items():
        if name not in results:
            continue
        row, steps = results[name]
        s = row["stats"]
        out.append(f"| {data} | {loss} | {cell(s, 'l1_ba', 1, 3)} | "
                   f"{cell(s, 'label_acc_ba', 100, 1)} | {cell(s, 'fid_ba')} | "
                   f"{cell(s, 'fid_source')} | {runs(row, seeds, steps)}")  # fmt: skip
    return "\n".join(out) + "\n"


def lapgan_table(results: dict, seeds: int) -> str:
    out = ["| model | FID | KID | precision | recall | runs | steps |",
           "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    label = {"lapgan": "LAPGAN (4x4 -> 8x8)", "lapgan-single": "one GAN, same MLPs, 8x8"}
    for name in ("lapgan", "lapgan-single"):
        if name not in results:
            continue
        row, steps = results[name]
        s = row["stats"]
        out.append(f"| {label[name]} | {cell(s, 'fid')} | {cell(s, 'kid', 1, 4)} | "
                   f"{cell(s, 'precision', 1, 3)} | {cell(s, 'recall', 1, 3)} | "
                   f"{runs(row, seeds, steps)}")  # fmt: skip
    return "\n".join(out) + "\n"


def adagan_table(results: dict, seeds: int) -> str:
    out = ["| model | data | modes | % high quality | reverse KL | runs | steps |",
           "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for model in ("adagan", "gan"):  # stacked digits: 1,000 modes, no quality score
        if f"{model}-stacked" in results:
            row, steps = results[f"{model}-stacked"]
            s = row["stats"]
            label = "AdaGAN (5 rounds)" if model == "adagan" else "one GAN"
            out.append(f"| {label} | stacked digits | {cell(s, 'stacked_modes', 1, 1)} | - | "
                       f"{cell(s, 'stacked_reverse_kl')} | {runs(row, seeds, steps)}")  # fmt: skip
    for data in ("ring", "grid"):
        for model in ("adagan", "gan"):
            name = f"{model}-{data}"
            if name not in results:
                continue
            row, steps = results[name]
            s = row["stats"]
            label = "AdaGAN (5 rounds)" if model == "adagan" else "one GAN"
            out.append(f"| {label} | {data} | {cell(s, 'modes_captured', 1, 1)} | "
                       f"{cell(s, 'high_quality', 100, 1)} | {cell(s, 'reverse_kl')} | "
                       f"{runs(row, seeds, steps)}")  # fmt: skip
    return "\n".join(out) + "\n"


TABLES = (
    ("SimGAN: font-rendered digits refined toward real digits", simgan_table),
    ("Composite synthesis losses: undoing a known warp (paired)", composite_table),
    ("LAPGAN against one GAN on 8x8 digits", lapgan_table),
    ("AdaGAN against one GAN on the 2D ring and grid and on stacked digits", adagan_table),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simgan-steps", type=int, default=2000)
    parser.add_argument("--composite-steps", type=int, default=1000)
    parser.add_argument("--fashion-steps", type=int, default=500, help="composite-fashion-*")
    parser.add_argument("--lapgan-steps", type=int, default=2000)
    parser.add_argument("--adagan-steps", type=int, default=6000)
    parser.add_argument("--stacked-steps", type=int, default=3000, help="*-stacked")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(EXPERIMENTS))
    parser.add_argument("--out", default="benchmarks/results/systems")
    args = parser.parse_args(argv)
    names = pick(parser, args.only, EXPERIMENTS, "experiments")
    out = Path(args.out)
    command = shlex.join(["python", "benchmarks/systems.py", *(argv or sys.argv[1:])])
    started = time.perf_counter()
    if not fashion_available():
        skipped = [n for n in names if "fashion" in n]
        print(f"Fashion-MNIST is not installed: skipping {', '.join(skipped)}", file=sys.stderr)
        names = [n for n in names if "fashion" not in n]
    for name in names:
        preset, overrides, metrics, steps_flag = EXPERIMENTS[name]
        n_fake = STACKED_SAMPLES if metrics == ["stacked"] else None
        run_sweep(preset, seeds=args.seeds, jobs=args.jobs, out=out / name,
                  steps=getattr(args, steps_flag), overrides=overrides, metrics=metrics,
                  command=command, n_fake=n_fake)  # fmt: skip
    # the tables: every experiment swept into OUT so far, at whatever budget it ran (each row
    # says its steps), so a call with --only adds to the tables instead of replacing them
    results = {}
    for name in EXPERIMENTS:
        rows = sweep_rows(out / name, None, [])
        if rows:
            results[name] = (rows[0], sweep_steps(out / name))
    parts = [f"## {title}\n\n{make(results, args.seeds)}" for title, make in TABLES]
    md = (
        "# SimGAN, composite losses, LAPGAN and AdaGAN on offline tasks\n\n" + "\n".join(parts)
    ) + seeds_footer(args.seeds, command, started)
    plain = {n: {"steps": st, "n": r["n"], "stats": r["stats"]} for n, (r, st) in results.items()}
    write_summary(out, md, {"command": command, "results": plain})
    return 0


if __name__ == "__main__":
    sys.exit(main())
