"""Mode coverage on the 2D ring (8 modes) and grid (25 modes), PacGAN's protocol, for every
mode-collapse remedy gankit ships (the README's mode-coverage table).

    python benchmarks/mode_coverage_2d.py --steps 2000 --seeds 3 --jobs 2

Protocol (Lin et al. 2018, PacGAN, section 5.1; the networks of the ring8 preset): G maps 2-d
N(0, I) noise through 4 hidden layers of 400 units (BN + ReLU) to 2-d; D has 3 maxout layers of
200 units with 5 pieces; Adam lr 1e-4, beta1 0.8 for both players and every method; batch 100
(PacGANm: 100 packs of m samples, so 100 m samples per step, as PacGAN's reference code); 2,500
samples scored with `gankit eval` (a sample is high quality when its Mahalanobis distance
to the nearest mode is < 3; a mode is captured when it has at least one high-quality sample;
reverse KL of the mode histogram to uniform). Each method is one `gankit sweep` (grid over the
two data sets, seeds 0..S-1) in OUT/<method>/; rerunning resumes. The papers trained for far
longer than this CPU allows; the step budget is written beside every number.

`--init normal` starts every MLP (G, and D where it is one) from N(0, 0.02) weights and zero
biases, as PacGAN's code does; the default keeps PyTorch's init. Use a separate --out per init:
a table summarizes one folder.

    python benchmarks/mode_coverage_2d.py --steps 20000 --init normal --methods GAN,PacGAN4 \
        --out benchmarks/results/modes_2d_20k

`--updates simultaneous` takes both players' gradients at the same point, as the reference code
of PacGAN (ALI's training algorithm) does, for the methods that run the GAN method's step (GAN,
PacGANm, WGAN-GP; Unrolled GAN is simultaneous by its definition, the others have their own
steps). `--split-generator` runs PacGANm's G as that code does: m calls of 100 noise vectors,
batch-norm statistics per call. Again a separate --out for each choice.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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

from gankit.sweep import run_sweep

# name -> (preset, extra overrides)
METHODS: dict[str, tuple[str, list[str]]] = {
    "GAN": ("ring8", []),
    "Unrolled GAN (5 steps)": ("ring8-unrolled", ["method_options.unroll_steps=5"]),
    "Unrolled GAN (10 steps)": ("ring8-unrolled", ["method_options.unroll_steps=10"]),
    # 100 packs of m per step, as PacGAN's reference code (its batch is 100 packs; G makes 100 m
    # samples): gankit packs within a batch, so the batch is 100 m
    "PacGAN2": ("ring8-pacgan4", ["method_options.pack=2", "schedule.batch_size=200"]),
    "PacGAN3": ("ring8-pacgan4", ["method_options.pack=3", "schedule.batch_size=300"]),
    "PacGAN4": ("ring8-pacgan4", ["method_options.pack=4", "schedule.batch_size=400"]),
    "MAD-GAN": ("ring8-madgan", []),
    "MRGAN": ("ring8-mrgan", []),
    "WGAN-GP": ("ring8-wgan-gp", []),
    "BEGAN": ("ring8-began", []),
    "EBGAN": ("ring8-ebgan", []),
    # the plain GAN with Mescheder et al. 2018's R1 penalty (gamma 1) on D's real inputs
    "GAN + R1": ("ring8", ["regularizers=[{name: r1, weight: 1.0}]"]),
    # and sampled from the EMA of G's weights, its BatchNorm statistics recomputed for them
    "GAN + R1 + EMA": (
        "ring8",
        [
            "regularizers=[{name: r1, weight: 1.0}]",
            "ema.enabled=true",
            "ema.decay=0.999",
            "ema.bn_batches=100",
        ],
    ),
}
# ... and its learning rates decayed linearly toward 0 over the last LR_DECAY_STEPS steps (the
# last half of a shorter run): schedule.lr_decay_start is set from --steps
METHODS["GAN + R1 + EMA + lr decay"] = METHODS["GAN + R1 + EMA"]
LABELLED = list(METHODS)  # the rows the published table shows (the default set)
# any other registered method, under its own name, on ring8's networks (--methods NAME)
METHODS = with_registered_methods(METHODS, lambda name: ("ring8", [f"method={name}"]))
LR_DECAY = {"GAN + R1 + EMA + lr decay"}
LR_DECAY_STEPS = 10_000
PROTOCOL = [
    "optim.generator.name=adam",
    "optim.discriminator.name=adam",
    "optim.generator.lr=1.0e-4",
    "optim.discriminator.lr=1.0e-4",
    "optim.generator.betas=[0.8,0.999]",
    "optim.discriminator.betas=[0.8,0.999]",
    "schedule.batch_size=100",
]
# PacGAN Table 1 (10 trials, the paper's own step budget): modes, % high quality, reverse KL
INIT_NOTE = {
    "default": "PyTorch's default",
    "normal": "weights N(0, 0.02), biases 0 (PacGAN's code)",
}
PUBLISHED = {
    ("GAN", "ring"): (6.3, 98.2, 0.45),
    ("GAN", "grid"): (17.3, 94.8, 0.70),
    ("PacGAN4", "ring"): (7.8, 95.9, 0.07),
    ("PacGAN4", "grid"): (24.8, 93.6, 0.04),
}
SCRIPT = "benchmarks/mode_coverage_2d.py"
# methods whose discriminator is an autoencoder, not an MLP: --init reaches their G only
AUTOENCODER_D = {"BEGAN", "EBGAN"}
SCORES = ("modes_captured", "high_quality", "reverse_kl")


def init_overrides(name: str, init: str) -> list[str]:
    """The --init choice as overrides (none for PyTorch's default, the recipes' own)."""
    if init == "default":
        return []
    players = ["generator"] if name in AUTOENCODER_D else ["generator", "discriminator"]
    return [f"{player}.init={init}" for player in players]


def lr_decay_overrides(name: str, steps: int) -> list[str]:
    """Where the method decays its rates: over the last LR_DECAY_STEPS of `steps`."""
    if name not in LR_DECAY:
        return []
    return [f"schedule.lr_decay_start={max(steps - LR_DECAY_STEPS, steps // 2)}"]


def table(results: dict, steps: int, seeds: int) -> str:
    lines = [
        "| method | data | modes | % high quality | reverse KL | runs | steps |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for data in ("ring", "grid"):
        for name, rows in results.items():
            row = rows.get(data)
            if row is None:
                continue
            s = row["stats"]
            lines.append(
                f"| {name} | {data} | {cell(s, 'modes_captured', digits=1)} | "
                f"{cell(s, 'high_quality', 100, 1)} | {cell(s, 'reverse_kl')} | "
                f"{row['n']} of {seeds} | {steps} |"
            )
            if (name, data) in PUBLISHED:
                modes, hq, kl = PUBLISHED[(name, data)]
                lines.append(
                    f"| {name}, published (PacGAN Table 1) | {data} | {modes} | {hq} | {kl} | "
                    "10 | paper's |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="generator steps per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--methods",
        help="comma-separated (default: the table's rows): " + ", ".join(LABELLED)
        + ", or a registered method's name: " + ", ".join(METHODS.keys() - set(LABELLED)),
    )  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results/modes_2d")
    parser.add_argument(
        "--init",
        choices=["default", "normal"],
        default="default",
        help="MLP weights: PyTorch's default init, or N(0, 0.02) as PacGAN's code",
    )
    parser.add_argument(
        "--data",
        default="ring,grid",
        help="comma-separated subset of: ring, grid (the runs a sweep plans; a separate --out)",
    )
    add_step_options(parser, pack_batch=100)
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: rebuild OUT/summary.md and .json from OUT/*/sweep.json",
    )
    args = parser.parse_args(argv)
    names = pick(parser, args.methods, METHODS, "methods", default=LABELLED)
    datas = pick(parser, args.data, ("ring", "grid"), "data")
    out = Path(args.out)
    started = time.perf_counter()
    command = invocation(SCRIPT, sys.argv[1:] if argv is None else argv)
    results: dict[str, dict] = {}
    for name in [] if args.table_only else names:
        preset, extra = METHODS[name]
        run_sweep(
            preset,
            grid=["data.mode=" + ",".join(datas)],
            seeds=args.seeds,
            jobs=args.jobs,
            out=out / slug(name),
            steps=args.steps,
            overrides=[
                *PROTOCOL,
                *init_overrides(name, args.init),
                *extra,
                *step_overrides(name, args.updates, args.split_generator),
                *lr_decay_overrides(name, args.steps),
            ],
            metrics=["modes"],
            command=command,
        )
    # the table: every method swept into OUT so far at this step budget (also earlier calls)
    for name in METHODS:
        rows = sweep_rows(out / slug(name), args.steps, ["data.mode"])
        if rows is None:
            continue
        results[name] = {row["data.mode"]: row for row in rows}
    minutes = (time.perf_counter() - started) / 60
    commands = sweep_commands([out / slug(name) for name in results])
    last = provenance(command, minutes, args.table_only)
    md = (
        f"# Mode coverage on the 2D ring and grid (PacGAN protocol)\n\n"
        f"{table(results, args.steps, args.seeds)}\n"
        f"Mean ± sample std over seeds 0..{args.seeds - 1}; {args.steps} generator steps per "
        f"run (the papers trained far longer); MLP init: {INIT_NOTE[args.init]}; "
        f"{UPDATES_NOTE[args.updates]}"
        f"{'; PacGANm generator in m calls' if args.split_generator else ''}. "
        f"Machine: {machine(threads=not args.table_only)}. {last}\n\n"
        f"{commands_md(commands)}"
    )
    plain = {
        name: {data: {"n": row["n"], "stats": row["stats"]} for data, row in rows.items()}
        for name, rows in results.items()
    }
    record = {"steps": args.steps, "seeds": args.seeds, "commands": commands, "results": plain}
    write_summary(out, md, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
