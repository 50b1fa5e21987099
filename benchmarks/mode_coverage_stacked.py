"""Mode coverage on stacked digits (1,000 modes): the stacked-MNIST protocol of Metz et al. 2016
(Unrolled GAN, Sec. 3.3.1) as Lin et al. 2018 (PacGAN, Table 3) report it, for every
mode-collapse remedy gankit ships.

    python benchmarks/mode_coverage_stacked.py --data digits,fashion --steps 5000 --seeds 3 --jobs 2

Protocol (the presets stacked-digits and stacked-fashion-mnist; PacGAN's reference code,
unrolled_GAN_experiment/D=0.25G): three digit images stacked as the channels of one image, 1,000
modes (digit triples); G maps 256-d N(0, I) noise through linear -> 4x4x64 -> 7x7x32 ->
14x14x16 -> 28x28x8 -> 3 channels (BN + ReLU, tanh; 8 px: 4x4x64 -> 8x8x32 -> 3); D has three
3x3 stride-2 convolutions of widths 2-4-8 ("D is 1/4 of G"; --d-size half: 4-8-16) with BN and
LeakyReLU 0.3, then a linear score; non-saturating loss, Adam D lr 2e-4, G lr 1e-4, betas
(0.5, 0.99), batch 128, for every method. 25,600 samples are scored: the shipped classifier of
the source images (digits, or Fashion-MNIST's) reads each channel, a sample's mode is its
triple, and the table gives the number of modes hit and the reverse KL of the mode histogram to
uniform, KL(p_G || uniform) (PacGAN's reference code). Beside them, not in the protocol: % high
quality, the share of samples whose three channels the classifier all reads with probability
>= 0.9, and confident modes, the modes those samples hit (a blurred or noisy channel still
counts as whichever digit it resembles most, so a high mode count alone can be noise). A row
"real stacked images" scores 25,600 real test images the same way: the floor the classifier
allows.

Each method is one `gankit sweep` per data set in OUT/<method>/<data>/ (seeds 0..S-1); rerunning
resumes and skips finished runs. Each run is scored by `gankit eval RUN --metrics stacked
--n-fake 25600` (the shipped classifier of the source images, picked automatically).

Deviations from the published setting: the step budget (the reference code trains 500,000
steps; the tables say how many ran), the data (8x8 scikit-learn digits or Fashion-MNIST instead
of MNIST; MNIST would need an MNIST IDX folder as data.path and a 1-channel MNIST classifier,
not wired into this script), a fixed draw of 25,000 training triples (the reference code draws
fresh triples every step), and for PacGAN 128 m samples per step (the reference code's 128
packs; gankit packs within a batch, so the batch is 128 m).

`--d-norm none` drops the discriminator's batch norm (a deviation from the protocol, written into
the folder and summary names): the protocol's D normalizes all-real and all-fake batches apart,
and at a few thousand steps it scores real and generated images alike (p = 0.50 for both) while
G still draws noise; without batch norm the same GAN starts drawing digit strokes.

`--updates simultaneous` and `--split-generator` run PacGAN's reference training loop, as in
benchmarks/mode_coverage_2d.py: both players' gradients at the same point (GAN, PacGANm,
WGAN-GP), and PacGANm's G in m calls of 128 noise vectors (batch-norm statistics per call).
Both are written into the folder and summary names (-simultaneous, -split-g).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tables import (
    UPDATES_NOTE,
    add_step_options,
    cell,
    commands_md,
    invocation,
    machine,
    pick,
    provenance,
    slug,
    step_overrides,
    sweep_commands,
    sweep_rows,
    with_registered_methods,
    write_summary,
)

from gankit.config import load_recipe
from gankit.errors import ConfigError
from gankit.sweep import run_sweep

SCRIPT = "benchmarks/mode_coverage_stacked.py"
N_FAKE = 25_600  # PacGAN's num_test_sample
BATCH = 128
# --data name -> (preset, shipped classifier that reads one channel, label in the tables)
DATA = {
    "digits": ("stacked-digits", "digits", "stacked digits 8x8"),
    "fashion": ("stacked-fashion-mnist", "fashion-mnist", "stacked Fashion-MNIST"),
}
# --d-size -> the protocol discriminator's widths
D_SIZES = {"quarter": [2, 4, 8], "half": [4, 8, 16]}
# BEGAN and EBGAN need an autoencoder D; BEGAN's convolutional shape (models/autoencoder.py),
# narrow (16 maps, code 64: gankit's choice, no published stacked-MNIST setting to copy).
# It replaces the protocol's D, so --d-size and --d-norm do not change their runs.
AUTOENCODER_D = "discriminator={name: conv_autoencoder, base_channels: 16, code_dim: 64}"

# name -> --set overrides on the data set's preset (method options as the ring8-* presets have
# them, with image networks where a method needs its own)
METHODS: dict[str, list[str]] = {
    "GAN": [],
    "Unrolled GAN (5 steps)": [
        "method=unrolled",
        "method_options={unroll_steps: 5, second_order: true}",
    ],
    "Unrolled GAN (10 steps)": [
        "method=unrolled",
        "method_options={unroll_steps: 10, second_order: true}",
    ],
    # 128 packs of m per step, as PacGAN's reference code (D sees 128 packs, G makes 128 m)
    "PacGAN2": ["method=pacgan", "method_options={pack: 2}", f"schedule.batch_size={2 * BATCH}"],
    "PacGAN3": ["method=pacgan", "method_options={pack: 3}", f"schedule.batch_size={3 * BATCH}"],
    "PacGAN4": ["method=pacgan", "method_options={pack: 4}", f"schedule.batch_size={4 * BATCH}"],
    # 4 generators (each the protocol's G) and the protocol's D with 5 outputs
    "MAD-GAN": [
        "method=madgan",
        "method_options={k: 4, variant: identify, shared_trunk: false}",
    ],
    # encoder: the DCGAN discriminator's convolutions, 16 maps (gankit's choice)
    "MRGAN": [
        "method=mrgan",
        "method_options={lambda1: 0.2, lambda2: 0.4, encoder: {name: dcgan, base_channels: 16}}",
    ],
    # layer norm instead of batch norm in D: the penalty takes each sample's gradient alone
    "WGAN-GP": ["objective={name: wgan_gp}", "schedule.n_critic=5", "discriminator.norm=layer"],
    "BEGAN": ["method=began", "method_options={gamma: 0.5, lambda_k: 0.001}", AUTOENCODER_D],
    # margin 1 on the per-pixel MSE energy of [-1, 1] images: not tuned
    "EBGAN": ["method=ebgan", "method_options={margin: 1.0, pt_weight: 0.1}", AUTOENCODER_D],
    # the 2D benchmark's method unchanged: the R1 penalty (gamma 1) on D's real inputs, sampled
    # from the EMA of G's weights (decay 0.999) with standing BatchNorm statistics
    "GAN + R1 + EMA": [
        "regularizers=[{name: r1, weight: 1.0}]",
        "ema.enabled=true",
        "ema.decay=0.999",
        "ema.bn_batches=100",
    ],
}
LABELLED = list(METHODS)  # the rows the published table shows (the default set)
# any other registered method, under its own name, on the protocol's networks (--methods NAME)
METHODS = with_registered_methods(METHODS, lambda name: [f"method={name}"])
# PacGAN Table 3 (MNIST 28 px, D = 1/4 G; DCGAN and Unrolled GAN from Metz et al. 2016,
# Table 2): modes hit, reverse KL
PUBLISHED = {
    "GAN": ("DCGAN", 30.6, 5.99),
    "Unrolled GAN (10 steps)": ("Unrolled GAN, 10 steps", 327.2, 4.66),
    "PacGAN4": ("PacDCGAN4", 667.4, 1.81),
}
REAL = "real stacked images"


# -- the classifier's floor ---------------------------------------------------------------------
class RealImages(torch.nn.Module):
    """A stand-in generator that returns real stacked test images in order, so `gankit eval`'s
    own scoring (compute_metrics) reads real images exactly as it reads a run's samples."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.images, self.done = images, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = self.images[self.done : self.done + len(z)]
        self.done += len(z)
        return batch


def score_real(preset: str, n: int = N_FAKE) -> dict:
    """The stacked score of n real stacked test images (the classifier's floor)."""
    from gankit.data import build_dataset
    from gankit.metrics.evaluate import compute_metrics

    data_cfg = {**load_recipe(preset).data, "split": "test", "n": n}
    images = build_dataset(data_cfg, seed=0).x
    scores = compute_metrics(RealImages(images), (1, "normal"), data_cfg, ["stacked"], n_fake=n,
                             progress=False)["metrics"]  # fmt: skip
    return {
        "modes_hit": scores["stacked_modes"],
        "reverse_kl": scores["stacked_reverse_kl"],
        "high_quality": scores["stacked_high_quality"],
        "confident_modes": scores["stacked_confident_modes"],
    }


# -- the table ------------------------------------------------------------------------------------
def table(results: dict, real: dict, steps: int, seeds: int, variant: str, data: list[str]) -> str:
    lines = [
        "| method | data | modes (of 1,000) | reverse KL | % high quality | confident modes | "
        "runs | steps |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    published_shown: set[str] = set()
    for key in data:
        label = DATA[key][2]
        if key in real:
            r = real[key]
            lines.append(
                f"| {REAL} (classifier floor) | {label} | {r['modes_hit']} | "
                f"{r['reverse_kl']:.2f} | {100 * r['high_quality']:.1f} | "
                f"{r['confident_modes']} | - | - |"
            )
        for name, rows in results.items():
            row = rows.get(key)
            if row is None:
                continue
            s = row["stats"]
            lines.append(
                f"| {name} | {label} | {cell(s, 'stacked_modes', digits=1)} | "
                f"{cell(s, 'stacked_reverse_kl')} | {cell(s, 'stacked_high_quality', 100, 1)} | "
                f"{cell(s, 'stacked_confident_modes', digits=1)} | {row['n']} of {seeds} | "
                f"{steps} |"
            )
            if name in PUBLISHED and not variant and name not in published_shown:
                published_shown.add(name)  # once, under the first data set's row
                what, modes, kl = PUBLISHED[name]
                lines.append(
                    f"| {what}, published (PacGAN Table 3) | stacked MNIST 28x28 | {modes} | "
                    f"{kl} | - | - | paper's | paper's |"
                )
    return "\n".join(lines) + "\n"


def variant_suffix(
    d_size: str, d_norm: str, updates: str = "alternating", split_generator: bool = False
) -> str:
    """'' for the protocol's discriminator and training loop, else what differs: '-d-half',
    '-d-norm-none', '-simultaneous', '-split-g', in that order."""
    return (
        ("" if d_size == "quarter" else f"-d-{d_size}")
        + ("" if d_norm == "batch" else f"-d-norm-{d_norm}")
        + ("" if updates == "alternating" else f"-{updates}")
        + ("-split-g" if split_generator else "")
    )


def folder(out: Path, name: str, data: str, variant: str) -> Path:
    return out / slug(name) / f"{data}{variant}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="digits", help="comma-separated: digits, fashion")
    parser.add_argument("--steps", type=int, default=5000, help="generator steps per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--methods",
        help="comma-separated (default: the table's rows): " + ", ".join(LABELLED)
        + ", or a registered method's name: " + ", ".join(METHODS.keys() - set(LABELLED)),
    )  # fmt: skip
    parser.add_argument(
        "--d-size",
        choices=list(D_SIZES),
        default="quarter",
        help="the discriminator's widths: quarter 2-4-8 (D = 1/4 G), half 4-8-16",
    )
    parser.add_argument(
        "--d-norm",
        choices=["batch", "none"],
        default="batch",
        help="the discriminator's normalization: batch (the protocol's) or none (a deviation: "
        "batch norm over all-real and all-fake batches slows the tiny D down at short budgets)",
    )
    add_step_options(parser, pack_batch=BATCH)
    parser.add_argument("--out", default="benchmarks/results/modes_stacked")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: rebuild OUT's summary for this --d-size/--d-norm/--updates/"
        "--split-generator from the sweeps",
    )
    args = parser.parse_args(argv)

    data = [d.strip() for d in args.data.split(",") if d.strip()]
    if not data or any(d not in DATA for d in data):
        parser.error(f"--data: choose from {', '.join(DATA)}, got {args.data!r}")
    names = pick(parser, args.methods, METHODS, "methods", default=LABELLED)
    out = Path(args.out)
    started = time.perf_counter()
    command = invocation(SCRIPT, sys.argv[1:] if argv is None else argv)
    variant = variant_suffix(args.d_size, args.d_norm, args.updates, args.split_generator)
    # the protocol's D, changed by --d-size / --d-norm; before a method's own D overrides
    d_overrides = [f"discriminator.widths={D_SIZES[args.d_size]}"]
    if args.d_norm != "batch":
        d_overrides.append(f"discriminator.norm={args.d_norm}")
    refused: dict[str, str] = {}
    for name in [] if args.table_only else names:
        for key in data:
            preset = DATA[key][0]
            overrides = [
                *d_overrides,
                *METHODS[name],
                *step_overrides(name, args.updates, args.split_generator),
            ]
            try:  # a recipe gankit refuses is listed as not run, with the reason
                load_recipe(preset, overrides)
            except ConfigError as exc:
                refused[name] = str(exc)
                print(f"not running {name}: {exc}", file=sys.stderr)
                break
            run_sweep(
                preset,
                seeds=args.seeds,
                jobs=args.jobs,
                out=folder(out, name, key, variant),
                steps=args.steps,
                overrides=overrides,
                metrics=["stacked"],
                command=command,
                n_fake=N_FAKE,
            )
    # the table: every method and data set swept into OUT so far at this step budget (also by
    # earlier calls with other --methods or --data)
    results: dict[str, dict] = {}
    for name in METHODS:
        for key in DATA:
            rows = sweep_rows(folder(out, name, key, variant), args.steps, [])
            if rows:
                results.setdefault(name, {})[key] = rows[0]
    shown = [key for key in DATA if key in data or any(key in rows for rows in results.values())]
    real = {key: score_real(DATA[key][0]) for key in shown}
    minutes = (time.perf_counter() - started) / 60
    commands = sweep_commands(
        [folder(out, name, key, variant) for name, rows in results.items() for key in rows]
    )
    last = provenance(command, minutes, args.table_only)
    where = machine(threads=not args.table_only)
    not_run = "".join(f"- {name}: not run: {why}\n" for name, why in refused.items())
    md = (
        f"# Mode coverage on stacked images, 1,000 modes (stacked-MNIST protocol, D widths "
        f"{'-'.join(map(str, D_SIZES[args.d_size]))}, D norm {args.d_norm}, "
        f"{UPDATES_NOTE[args.updates]}"
        f"{', PacGANm generator in m calls' if args.split_generator else ''})\n\n"
        f"{table(results, real, args.steps, args.seeds, variant, shown)}\n"
        + (f"{not_run}\n" if not_run else "")
        + f"Mean ± sample std over seeds 0..{args.seeds - 1}; {args.steps} generator steps per "
        f"run (the reference code trains 500,000); {N_FAKE:,} samples scored per run with the "
        f"shipped classifier of the source images, one channel at a time. Published rows: "
        f"MNIST, the paper's budget and 10 or more runs. Machine: {where}. {last}\n\n"
        f"{commands_md(commands)}"
    )
    stem = f"summary{variant}"
    plain = {
        name: {key: {"n": row["n"], "stats": row["stats"]} for key, row in rows.items()}
        for name, rows in results.items()
    }
    record = {
        "steps": args.steps,
        "seeds": args.seeds,
        "d_widths": D_SIZES[args.d_size],
        "d_norm": args.d_norm,
        "updates": args.updates,
        "split_generator": args.split_generator,
        "n_fake": N_FAKE,
        "commands": commands,
        "results": plain,
        "real": real,
        "not_run": refused,
        "published": {
            name: {"modes": m, "reverse_kl": kl} for name, (_, m, kl) in PUBLISHED.items()
        },
    }
    write_summary(out, md, record, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
