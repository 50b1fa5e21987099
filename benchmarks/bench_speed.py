"""Training-step speed of the shipped recipes: gankit fp32 and fast mode against a plain PyTorch
loop of the same networks, alternating in one process (the README's speed table).

    python benchmarks/bench_speed.py [gankit bench options, e.g. --cases dcgan32 --rounds 7]

is `gankit bench --out benchmarks/results/speed` plus the options given; it writes bench.md and
bench.json there. Run it on a quiet machine: other load shifts every mode's times.
"""

from __future__ import annotations

import sys

from gankit.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", "benchmarks/results/speed"]
    sys.exit(main(["bench", *args]))
