"""What the benchmark ran on: CPU model, cores, ISA flags, torch build, GPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# instruction-set flags (Linux /proc/cpuinfo names) that decide how fast fp32 and bf16 run
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def machine_info(device: torch.device) -> dict:
    info: dict = {
        "cpu": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    cores, flags = set(), set()
    physical = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            info["cpu"] = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    if cores:
        info["physical_cores"] = len(cores)
    if flags:
        info["isa_flags"] = [f for f in ISA_FLAGS if f in flags]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info


def describe_machine(info: dict) -> str:
    cores = info.get("physical_cores")
    cpus = (
        f"{cores} cores / {info['logical_cpus']} threads"
        if cores
        else f"{info['logical_cpus']} CPUs"
    )
    if info.get("usable_cpus") not in (None, info["logical_cpus"]):
        cpus += f" ({info['usable_cpus']} usable)"
    text = f"{info['cpu']}, {cpus}, {info['torch_threads']} torch threads"
    if "isa_flags" in info:
        text += f"; ISA: {', '.join(info['isa_flags']) or 'none of ' + ', '.join(ISA_FLAGS)}"
    if "gpu" in info:
        text += (
            f"; GPU: {info['gpu']} ({info['gpu_memory_gib']} GiB, sm {info['gpu_capability']}, "
            f"CUDA {info['cuda']}, TF32 matmul {'on' if info['tf32_matmul'] else 'off'})"
        )
    return text + f"; torch {info['torch']}, Python {info['python']}"
