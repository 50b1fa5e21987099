"""bench.md (a Markdown table with the machine and the command) and bench.json (every number)."""

from __future__ import annotations

import json
from pathlib import Path


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def memory_header(device_type: str) -> str:
    if device_type == "cuda":
        return "peak GPU memory, MiB ¹"
    return "peak RSS, MiB ¹"


def memory_note(device_type: str) -> str:
    if device_type == "cuda":
        return (
            "¹ torch.cuda.max_memory_allocated (tensors only) of a separate process that built "
            "and ran only that mode (a few steps)."
        )
    return (
        "¹ Peak resident set size (VmHWM) of a separate process that built and ran only that "
        "mode for a few steps, including the Python interpreter and the torch runtime."
    )


def _memory(row: dict, device_type: str) -> str:
    mem = row.get("memory")
    if not mem:
        return "—"
    if "error" in mem:
        return "failed"
    key = "cuda_max_allocated_mib" if device_type == "cuda" else "peak_rss_mib"
    return _num(mem.get(key), 0)


def markdown(result: dict) -> str:
    device_type = result["device"].split(":")[0]
    peaks = result["peak_flops"]
    s = result["settings"]
    lines = [
        "# gankit bench: training-step speed",
        "",
        f"Machine: {result['machine_text']}.",
        f"Device: {result['device']}. Matmul peak (fastest of {s['peak_reps']} "
        f"{s['peak_n']}x{s['peak_n']} matmuls): fp32 {_num(peaks['fp32'] / 1e9)} GFLOP/s, "
        f"bf16 {_num(peaks['bf16'] / 1e9)} GFLOP/s.",
        f"Command: `{result['command']}` ({result['date']}).",
        f"Timing: warm-up steps per mode: {s['warmup']}; then {s['rounds']} rounds: in each "
        "round every mode runs the same number of steps back to back, modes in rotated order. "
        "ms/step: median over rounds (min–max); x reference: median over rounds of reference "
        "time / mode time.",
        f"Fast mode: {result['fast_mode']}",
        "",
        f"| case | mode | runs as | ms/step | samples/s | x reference | GFLOP/s | % of peak | "
        f"{memory_header(device_type)} |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in result["cases"]:
        for row in case["modes"]:
            ms = 1e3 * row["seconds_per_step"]
            low, high = 1e3 * row["min_seconds_per_step"], 1e3 * row["max_seconds_per_step"]
            span = f"{low:.1f}–{high:.1f}"
            util = row["utilisation"]
            util = "—" if util is None else f"{100 * util:.1f}% of {row['peak_basis']}"
            runs_as = row["runs_as"] + ("" if row["finite"] else "; NON-FINITE LOSSES")
            lines.append(
                f"| {case['name']} | {row['mode']} | {runs_as} | {ms:.1f} ({span}) | "
                f"{_num(row['samples_per_second'])} | "
                f"{_num(row['x_reference'], 2)} | {_num(row['flops_per_second'] / 1e9)} | "
                f"{util} | "
                f"{_memory(row, device_type)} |"
            )
    lines += ["", memory_note(device_type), "", "Cases:", ""]
    for case in result["cases"]:
        flops = case["flops_per_step"]
        check = case.get("flops_per_step_gankit_fp32")
        same = ""
        if check is not None:
            same = "; gankit fp32: the same" if check == flops else f"; gankit fp32: {check:,}"
        lines.append(
            f"- `{case['name']}`: {case['title']}. One sample = one {case['sample']}. "
            f"{flops / 1e9:.3f} GFLOP per step (FlopCounterMode on one reference step: matmuls "
            f"and convolutions, forward and backward{same}). {case['steps_per_round']} steps "
            f"per round. {case.get('note', '')}".rstrip()
        )
    lines += [
        "",
        "Modes: `reference` is a plain PyTorch fp32 loop of the same networks (equal initial "
        "weights), Adam (torch defaults), BCE-with-logits losses and the same work per step; "
        "`gankit-fp32` is gankit with `fast.enabled=false`; `gankit-fast` is gankit's fast "
        "mode with its defaults (`precision: auto`); `gankit-fast-bf16` forces "
        "`fast.precision=bf16`. GFLOP/s = FLOPs per step / median time per step; % of peak "
        "against the fp32 or bf16 matmul peak, whichever the mode computes in.",
        "",
    ]
    return "\n".join(lines)


def write_results(result: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "bench.md", out / "bench.json"
    md.write_text(markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return md, js
