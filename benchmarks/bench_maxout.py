"""Maxout's reduction: `amax` against `max(...).values`, forward and backward, in the 2D
protocol's discriminator (3 maxout layers of 200 units x 5 pieces, batch 100 and 100 packs of 4).

Both give the same values and, without ties, the same gradients; their backward passes differ.
amax's spreads the gradient over tied pieces (an equality mask, a count per unit, a division);
max's sends it to the recorded index. The two variants alternate round by round in one process,
so machine noise hits both alike; the table gives median milliseconds per D forward + backward
and the ratio.

    OMP_NUM_THREADS=1 python benchmarks/bench_maxout.py [--rounds 7] \
        [--out benchmarks/results/speed/maxout.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from tables import machine
from torch import nn

from gankit.models.layers import Maxout


class AmaxMaxout(Maxout):
    """gankit's Maxout with the reduction it had before: amax over the pieces."""

    def forward(self, x):
        y = self.linear(x).view(x.shape[0], self.out_features, self.pieces)
        return y.amax(dim=-1)


def discriminator(in_features: int, reduce: str, seed: int = 0) -> nn.Module:
    """The protocol's D from the shipped Maxout layer ("max") or the amax variant."""
    layer = AmaxMaxout if reduce == "amax" else Maxout
    torch.manual_seed(seed)
    layers, width = [], in_features
    for _ in range(3):
        layers.append(layer(width, 200, 5))
        width = 200
    return nn.Sequential(*layers, nn.Linear(200, 1))


def time_steps(D: nn.Module, x: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        D.zero_grad(set_to_none=True)
        D(x).sum().backward()
    return (time.perf_counter() - start) / steps * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50, help="D forward + backward per round")
    parser.add_argument("--out", default="benchmarks/results/speed/maxout.md")
    args = parser.parse_args(argv)
    cases = {"GAN (batch 100 of 2-d points)": 2, "PacGAN4 (100 packs of 4 points)": 8}
    lines = [
        "| discriminator input | amax (ms) | max().values (ms) | amax / max |",
        "|---|---:|---:|---:|",
    ]
    for label, width in cases.items():
        x = torch.randn(100, width)
        nets = {r: discriminator(width, r) for r in ("amax", "max")}
        # the same function: same outputs and input gradients on the same weights
        xa, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, ym = nets["amax"](xa), nets["max"](xm)
        ya.sum().backward(), ym.sum().backward()
        assert torch.equal(ya, ym) and torch.allclose(xa.grad, xm.grad, atol=1e-6)
        times = {r: [] for r in nets}
        for r in nets:  # warm-up
            time_steps(nets[r], x, 5)
        for _ in range(args.rounds):
            for r, D in nets.items():
                times[r].append(time_steps(D, x, args.steps))
        a, m = statistics.median(times["amax"]), statistics.median(times["max"])
        lines.append(f"| {label} | {a:.2f} | {m:.2f} | {a / m:.2f} |")
    command = "OMP_NUM_THREADS=1 python benchmarks/bench_maxout.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    md = (
        "# Maxout reduction: amax vs max().values (D forward + backward)\n\n"
        + "\n".join(lines)
        + f"\n\nMedian of {args.rounds} rounds of {args.steps} steps each, the variants "
        f"alternating. Machine: {machine()}. Command: `{command.strip()}`.\n"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
