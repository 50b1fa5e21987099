"""Trainer overhead: gankit's training loop vs a plain PyTorch loop doing the same math.

Both loops train the same networks (built by the same builders, same seed) with the same
optimizers, batch size and objective (non-saturating), in the same process, alternating runs so
machine noise hits both alike. The plain loop is what a careful user writes by hand: one
generator forward per step (the fake batch reused for the generator step), the discriminator's
requires_grad switched off during the generator step, no logging. gankit's loop adds logging
(every 100 steps, TensorBoard on), the progress bar, EMA off, and a checkpoint and sample grid at
the end of each timed run, all counted.

    python benchmarks/bench_trainer.py [--repeats 3] [--out benchmarks/results/trainer.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gankit.config import load_recipe
from gankit.data import DATASETS, build_dataset
from gankit.data.base import InMemoryData
from gankit.methods.base import build_optimizer
from gankit.models import build_discriminator, build_generator
from gankit.training.trainer import Trainer

if "bench_images" not in DATASETS:

    @DATASETS.register("bench_images")
    def bench_images(seed: int, size: int = 32, channels: int = 3, n: int = 4096):
        """Random images in [-1, 1]: step time does not depend on what the pixels show."""
        g = torch.Generator().manual_seed(seed)
        return InMemoryData(torch.rand(n, channels, size, size, generator=g) * 2 - 1, seed=seed)


CASES = {
    "ring8 MLP (batch 100)": ("ring8", {}, 1500),
    "DCGAN-32 (batch 64)": (
        "quickstart",
        {
            "data": {"name": "bench_images", "size": 32},
            "generator.latent_dim": 100,
            "ema.enabled": False,
        },
        60,
    ),
}


def config(preset: str, overrides: dict, steps: int):
    return load_recipe(
        preset,
        {
            **overrides,
            "schedule.steps": steps,
            "logging.every": 100,
            "logging.sample_every": 10**9,
            "logging.checkpoint_every": 10**9,
            "device": "cpu",
        },
    )


def time_gankit(cfg) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run")
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start


def time_plain(cfg) -> float:
    torch.manual_seed(cfg.seed)
    data = build_dataset(cfg.data, seed=cfg.seed)
    G = build_generator(cfg.generator, data.shape)
    D = build_discriminator(cfg.discriminator, data.shape)
    opt_g = build_optimizer(G.parameters(), cfg.optim.generator)
    opt_d = build_optimizer(D.parameters(), cfg.optim.discriminator)
    n, dim = cfg.schedule.batch_size, cfg.generator["latent_dim"]
    if isinstance(data, InMemoryData):
        x = data.x
        perm = torch.randperm(len(x))

        def real_batch(i):
            start = (i * n) % (len(x) - n)
            return x[perm[start : start + n]]
    else:
        means, std = data.means, data.std

        def real_batch(i):
            idx = torch.randint(len(means), (n,))
            return means[idx] + std * torch.randn(n, 2)

    start = time.perf_counter()
    for i in range(cfg.schedule.steps):
        real = real_batch(i)
        fake = G(torch.randn(n, dim))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
    float(g_loss)
    return time.perf_counter() - start


def machine() -> str:
    """CPU model and core count (from /proc/cpuinfo where there is one)."""
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trainer.md"))
    args = parser.parse_args()
    rows = []
    for label, (preset, overrides, steps) in CASES.items():
        cfg = config(preset, overrides, steps)
        time_plain(config(preset, overrides, 5))  # warm up both paths
        time_gankit(config(preset, overrides, 5))
        plain, ours = [], []
        for _ in range(args.repeats):  # alternate so drift in machine load hits both
            plain.append(time_plain(cfg))
            ours.append(time_gankit(cfg))
        p, g = statistics.median(plain), statistics.median(ours)
        rows.append((label, steps, steps / p, steps / g, g / p - 1))
        print(
            f"{label}: plain {steps / p:.1f} steps/s, gankit {steps / g:.1f} steps/s, "
            f"overhead {100 * (g / p - 1):+.1f}%"
        )
    lines = [
        "| model | steps timed | plain loop steps/s | gankit steps/s | gankit overhead |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {100 * r[4]:+.1f}% |" for r in rows]
    footer = (
        f"\nMachine: {machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}. "
        f"Median of {args.repeats} alternating runs.\n"
        f"Command: `python benchmarks/bench_trainer.py --repeats {args.repeats}`\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n" + footer)
    print("\n".join(lines) + footer)


if __name__ == "__main__":
    main()
