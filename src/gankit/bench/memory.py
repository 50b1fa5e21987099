"""Peak memory of one mode, measured in a fresh process that runs only that mode.

The timing process holds every mode at once, so its memory says nothing about one of them.
A probe (`python -m gankit.bench.memory CASE MODE --device D --steps N`) builds one mode,
runs N steps and prints one JSON line: on CUDA torch.cuda.max_memory_allocated (tensors only),
and everywhere the process's peak resident set size (VmHWM on Linux, else ru_maxrss), which
includes the Python interpreter and the torch runtime (a few hundred MiB before any model).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from gankit.bench.cases import CASES, build_runner
from gankit.bench.measure import synchronize

MIB = 2**20


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    On Linux VmHWM of /proc/self/status: the high-water mark of this process image's own
    memory. Not ru_maxrss there: on exec Linux folds the memory the process had before it (the
    parent's, for a child of fork or vfork) into ru_maxrss, so a probe started by a big
    benchmark process would report the benchmark's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def probe(case: str, mode: str, device: str, steps: int, overrides: dict[str, Any]) -> dict:
    """Run in the probe process: build one mode, run `steps` steps, measure."""

    dev = torch.device(device)
    runner = build_runner(CASES[case], mode, dev, overrides)
    for _ in range(steps):
        logs = runner.step()
    synchronize(dev)
    out = {
        "case": case,
        "mode": mode,
        "steps": steps,
        "peak_rss_mib": peak_rss_bytes() / MIB,
        "finite": all(bool(torch.isfinite(v).all()) for v in logs.values()),
    }
    if dev.type == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(dev) / MIB
    return out


def run_probe(
    case: str,
    mode: str,
    device: torch.device,
    steps: int,
    overrides: dict[str, Any] | None = None,
    timeout: float = 900,
) -> dict:
    """Start a probe process and return its measurement (or {"error": ...})."""
    command = [
        sys.executable,
        "-m",
        "gankit.bench.memory",
        case,
        mode,
        "--device",
        str(device),
        "--steps",
        str(steps),
        "--overrides",
        json.dumps(overrides or {}, default=str),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"the memory probe took over {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"the memory probe failed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case")
    parser.add_argument("mode")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--overrides", default="{}", help="recipe overrides as a JSON mapping")
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides)
    print(json.dumps(probe(args.case, args.mode, args.device, args.steps, overrides)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
