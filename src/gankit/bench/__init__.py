"""`gankit bench`: training-step speed of the shipped recipes, gankit (fp32 and fast mode)
against a plain PyTorch loop of the same networks in the same process.

  cases.py      the cases (recipe + in-memory data) and modes, and how each is built
  reference.py  the plain PyTorch loops
  pix2pix.py    gankit's side of the pix2pix case (no pix2pix method yet)
  measure.py    matmul peak, FLOPs per step, alternating timed rounds
  memory.py     peak memory of one mode in a fresh process
  machine.py    what it ran on
  report.py     bench.md and bench.json
  run.py        all of it, in order
"""

from gankit.bench.cases import CASES, MODES, build_runner
from gankit.bench.run import run_bench

__all__ = ["CASES", "MODES", "build_runner", "run_bench"]
