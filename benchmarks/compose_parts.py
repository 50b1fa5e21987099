"""Stabilization parts under methods other than the plain GAN (the README's "parts under every
method" tables): does a trick that helps the GAN help ACGAN and CycleGAN too?

    python benchmarks/compose_parts.py --seeds 3 --jobs 2

- ACGAN on Fashion-MNIST (acgan-fashion-mnist): the preset (non-saturating loss) against
  spectral norm on D with the hinge loss (StudioGAN's ACGAN default), and that with TAC-GAN's
  twin classifier (method_options.d_class_loss=twin). Scored as
  benchmarks/conditional_translation.py does: class accuracy of samples by the shipped
  Fashion-MNIST classifier (92.07% on the real test images), class diversity (within-class
  feature spread over the real images') and FID on its features, for the EMA generator and
  the raw one. Skipped, with a message, without
  Fashion-MNIST.
- CycleGAN on digits vs inverted digits (cyclegan-digits-invert): the preset against spectral
  norm on both discriminators; label preservation and cycle errors on the test digits.

Each variant is one `gankit sweep` (seeds 0..S-1) in OUT/<experiment>/<variant>/; rerunning
resumes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from conditional_translation import acgan_table, cyclegan_table, raw_generator_scores
from semi_supervised import fashion_available
from tables import seeds_footer, sweep_rows, write_summary

from gankit.sweep import run_sweep

SN = "tricks=[{name: spectral_norm}]"
# experiment -> (preset, metrics, needs Fashion-MNIST, {variant: overrides})
EXPERIMENTS = {
    "acgan": ("acgan-fashion-mnist", ["class_accuracy", "fid"], True, {
        "plain": [],
        "sn-hinge": [SN, "objective.name=hinge"],
        # TAC-GAN: D's classifier learns from real images, a twin classifier from the fakes
        "sn-hinge-twin": [SN, "objective.name=hinge", "method_options.d_class_loss=twin"],
    }),
    "cyclegan": ("cyclegan-digits-invert", None, False, {
        "plain": [],
        "sn": [SN],
    }),
}  # fmt: skip
LABELS = {
    "plain": "preset",
    "sn-hinge": "+ spectral norm (D), hinge",
    "sn-hinge-twin": "+ SN, hinge, twin classifier (TAC-GAN)",
    "sn": "+ spectral norm (D)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acgan-steps", type=int, default=5000)
    parser.add_argument("--cyclegan-steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=list(EXPERIMENTS), help="run one experiment")
    parser.add_argument(
        "--variants", help="comma-separated variants to train (default: all); tables show all"
    )
    parser.add_argument("--out", default="benchmarks/results/compose_parts")
    args = parser.parse_args(argv)
    out = Path(args.out)
    command = shlex.join(["python", "benchmarks/compose_parts.py", *(argv or sys.argv[1:])])
    steps = {"acgan": args.acgan_steps, "cyclegan": args.cyclegan_steps}
    started = time.perf_counter()
    for name, (preset, metrics, needs_fashion, variants) in EXPERIMENTS.items():
        if args.only and name != args.only:
            continue
        if needs_fashion and not fashion_available():
            print(f"{name}: Fashion-MNIST is not installed; skipped", file=sys.stderr)
            continue
        for variant, overrides in variants.items():
            if args.variants and variant not in args.variants.split(","):
                continue
            run_sweep(preset, seeds=args.seeds, jobs=args.jobs, out=out / name / variant,
                      steps=steps[name], overrides=["logging.checkpoint_every=1000", *overrides],
                      metrics=metrics, command=command)  # fmt: skip
    parts, record = [], {"command": command}
    acgan = {}
    for variant in EXPERIMENTS["acgan"][3]:
        folder = out / "acgan" / variant
        rows = sweep_rows(folder, steps["acgan"], [])
        if rows:
            acgan[f"{LABELS[variant]}, EMA"] = rows[0]
            acgan[f"{LABELS[variant]}, raw"] = raw_generator_scores(folder)
    if acgan:
        table = acgan_table(acgan, args.seeds, steps["acgan"]).replace(
            "| method | generator |", "| ACGAN | generator |"
        )
        parts.append(f"## ACGAN on Fashion-MNIST\n\n{table}")
        record["acgan"] = {"steps": steps["acgan"], **{
            k: {"n": r["n"], "stats": r["stats"]} for k, r in acgan.items() if r}}  # fmt: skip
    for variant in EXPERIMENTS["cyclegan"][3]:
        rows = sweep_rows(out / "cyclegan" / variant, steps["cyclegan"], [])
        if rows:
            table = cyclegan_table(rows[0], args.seeds, steps["cyclegan"])
            parts.append(f"## CycleGAN, digits vs inverted: {LABELS[variant]}\n\n{table}")
            record[f"cyclegan/{variant}"] = {"n": rows[0]["n"], "stats": rows[0]["stats"]}
    md = (
        "# Stabilization parts under ACGAN and CycleGAN\n\n"
        + "\n".join(parts)
        + seeds_footer(args.seeds, command, started)
    )
    write_summary(out, md, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
