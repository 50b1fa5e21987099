"""gankit bench: FLOPs by hand, matmul peak, the reference doing gankit's work, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from gankit.bench.cases import CASES, Case, build_runner, case_config, check_cases, modes_for
from gankit.bench.measure import count_flops, matmul_peak, summarize, time_rounds
from gankit.bench.memory import run_probe
from gankit.cli import main
from gankit.data import build_dataset
from gankit.errors import ConfigError

CPU = torch.device("cpu")

# mlp-ring8 shrunk: G 2 -> 4 (BN, ReLU) -> 2; D maxout 2 -> 3 x 5 pieces -> 1; batch 5
TINY_MLP = {
    "generator.hidden": 4,
    "generator.depth": 1,
    "discriminator.hidden": 3,
    "discriminator.depth": 1,
    "schedule.batch_size": 5,
}


def test_flops_of_one_reference_step_match_a_hand_count():
    """A Linear(i, o) on B rows costs 2*B*i*o FLOPs forward, the same again for its weight
    gradient and again for its input gradient, each only when autograd needs it."""
    B, latent, h, out = 5, 2, 4, 2  # generator
    hd, pieces = 3, 5  # discriminator: Maxout(2, 3, 5) is a Linear(2, 15), then Linear(3, 1)
    lin = lambda i, o: 2 * B * i * o  # noqa: E731
    g_fwd = lin(latent, h) + lin(h, out)
    d_fwd = lin(2, hd * pieces) + lin(hd, 1)
    # D step: D on real and on fake.detach(): forward, weight grads of both layers, input
    # grad of the last layer only (the inputs need no gradient)
    d_step = 2 * (d_fwd + d_fwd + lin(hd, 1))
    # G step: D(fake) forward; D frozen, so input grads only, through both D layers; then
    # G's weight grads and the input grad of G's last layer (z needs none)
    g_step = d_fwd + lin(hd, 1) + lin(2, hd * pieces) + g_fwd + lin(h, out)
    expected = g_fwd + d_step + g_step

    ref = build_runner(CASES["mlp-ring8"], "reference", CPU, TINY_MLP)
    assert count_flops(ref.step) == expected
    gankit = build_runner(CASES["mlp-ring8"], "gankit-fp32", CPU, TINY_MLP)
    assert count_flops(gankit.step) == expected  # gankit does the same matmuls


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matmul_peak_is_a_positive_finite_rate(dtype):
    peak = matmul_peak(dtype, CPU, n=128, reps=2)
    assert math.isfinite(peak) and peak > 0


def _tiny(case: str) -> tuple[Case, dict]:
    """Small versions of the cases, for checks of what a step computes."""
    c = CASES[case]
    if case == "mlp-ring8":
        return c, TINY_MLP
    images = {"name": "random_images", "channels": 1, "size": 8, "n": 32}
    if case == "dcgan28":
        return c, {
            "data": images,
            "generator.base_channels": 4,
            "discriminator.base_channels": 4,
            "schedule.batch_size": 6,
        }
    if case == "improved-gan-mlp":
        return c, {
            "data": images,
            "generator.hidden": 8,
            "discriminator.hidden": 8,
            "schedule.batch_size": 6,
            "tricks.0.num_kernels": 3,
            "tricks.3.reference_size": 4,
        }
    assert case == "patchgan-unet"
    pairs = {"name": "random_images", "channels": 2, "size": 16, "n": 32}
    small = dataclasses.replace(c, unet={"base_channels": 4, "depth": 2, "dropout": 0.5})
    return small, {
        "data": pairs,
        "discriminator.base_channels": 4,
        "discriminator.n_layers": 1,
        "schedule.batch_size": 4,
    }


@pytest.mark.parametrize("case", ["mlp-ring8", "dcgan28", "improved-gan-mlp", "patchgan-unet"])
def test_reference_and_gankit_fp32_do_the_same_work(case):
    """From equal initial weights and the same batches, the plain loop and gankit fp32 give
    the same losses and the same parameters after two steps: the reference does gankit's
    work (for improved-gan-mlp: minibatch discrimination, VBN, historical averaging and label
    smoothing written out by hand)."""
    spec, overrides = _tiny(case)
    ref = build_runner(spec, "reference", CPU, overrides)
    ours = build_runner(spec, "gankit-fp32", CPU, overrides)
    for name, module in ref.modules().items():
        theirs = ours.modules()[name].state_dict()
        assert module.state_dict().keys() == theirs.keys()
        for key, value in module.state_dict().items():
            assert torch.equal(value, theirs[key]), f"{name}.{key} differs before training"
    # the reference draws its real batches as gankit's data set does
    cfg = case_config(spec, "reference", CPU, overrides)
    data = build_dataset(cfg.data, seed=cfg.seed)
    n = cfg.schedule.batch_size
    if spec.kind == "pix2pix":
        c = data.shape[0] // 2
        ref.batch = lambda: (lambda x: (x[:, :c], x[:, c:]))(data.batch(n)[0])
    else:
        ref.real_batch = lambda: data.batch(n)[0]
    for step in range(2):
        torch.manual_seed(1)  # dropout draws from the global generator
        a = ref.step()
        torch.manual_seed(1)
        b = ours.step()
        for key in ("d_loss", "g_loss"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
        if step > 0:
            continue
        for name, module in ref.modules().items():
            theirs = dict(ours.modules()[name].named_parameters())
            for key, p in module.named_parameters():
                q = theirs[key]
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
                # A bias just before a batch norm has zero gradient up to rounding, which
                # Adam's g / sqrt(v) turns into random steps of about lr: compare the rest.
                if q.grad.abs().max() > 1e-6:
                    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_cli_quick_writes_every_mode(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--quick", "--cases", "mlp-ring8", "--out", str(out), "--no-memory"])
    assert rc == 0
    modes = modes_for(CPU)
    assert modes[:3] == ["reference", "gankit-fp32", "gankit-fast"]
    md = (out / "bench.md").read_text()
    for mode in modes:
        assert f"| mlp-ring8 | {mode} |" in md
    assert "gankit bench --cases mlp-ring8 --out" in md  # the command line
    assert "Machine: " in md and "torch " in md
    result = json.loads((out / "bench.json").read_text())
    (case,) = result["cases"]
    assert [row["mode"] for row in case["modes"]] == modes
    assert case["flops_per_step"] > 0 and case["flops_per_step_gankit_fp32"] > 0
    for row in case["modes"]:
        assert len(row["round_seconds_per_step"]) == 2 and row["seconds_per_step"] > 0
        assert row["finite"]
        assert row["utilisation"] > 0 and row["peak_basis"] in ("fp32", "bf16")
    rows = {row["mode"]: row for row in case["modes"]}
    assert rows["reference"]["x_reference"] == 1.0
    assert rows["gankit-fp32"]["precision"] == "fp32"
    assert result["peak_flops"]["fp32"] > 0 and result["peak_flops"]["bf16"] > 0
    assert "| mlp-ring8 | reference |" in capsys.readouterr().out


def test_memory_probe_measures_its_own_process_not_the_parent():
    ballast = torch.ones(2**30 // 4)  # 1 GiB resident here, in the parent
    ballast += 1
    probe = run_probe("mlp-ring8", "gankit-fp32", CPU, 1, TINY_MLP)
    assert "error" not in probe, probe
    assert probe["mode"] == "gankit-fp32" and probe["finite"]
    # the torch runtime alone is ~100+ MiB; ru_maxrss would report the parent's 1+ GiB
    assert 10 < probe["peak_rss_mib"] < 1024
    del ballast


def test_unknown_case_names_the_valid_ones(capsys):
    with pytest.raises(ConfigError, match="valid cases: mlp-ring8, dcgan32"):
        check_cases(["dcgan32", "dcgan99"])
    assert main(["bench", "--cases", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown case 'nope'" in err and "patchgan-unet" in err


def test_rounds_alternate_and_ratios_are_per_round():
    order = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def step(self):
            order.append(self.name)

    runners = {m: Fake(m) for m in ("reference", "a", "b")}
    time_rounds(runners, rounds=3, steps=1, device=CPU)
    assert order == ["reference", "a", "b", "a", "b", "reference", "b", "reference", "a"]
    stats = summarize({"reference": [2.0, 4.0, 2.0], "a": [1.0, 1.0, 4.0]})
    assert stats["a"]["x_reference"] == 2.0  # median of 2, 4, 0.5
    assert stats["a"]["seconds_per_step"] == 1.0
