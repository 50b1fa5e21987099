"""docs/extending.md's code blocks run as written, in order, in a fresh interpreter (their
registrations are global to a process), and what they build behaves as the page says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import torch

from gankit.training.checkpoint import load_checkpoint

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_runs(tmp_path):
    blocks = code_blocks()
    assert len(blocks) >= 4
    script = "\n\n".join(blocks)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs" / "extending"
    for name in ("objective", "trick-gan", "trick-acgan", "ragan", "metric", "extractor", "part"):
        assert (runs / name / "config.yaml").is_file(), name
    # the recipe names the trick, and the checkpoint holds its random stream
    assert "input_dropout" in (runs / "trick-acgan" / "config.yaml").read_text()
    newest = sorted((runs / "trick-acgan" / "checkpoints").glob("step_*"))[-1]
    state, _ = load_checkpoint(newest)
    assert "generator" in state["method"]["tricks"]["input_dropout"]
    # the part's log went into the checkpoint, and it matches metrics.jsonl's d_loss lines
    state, _ = load_checkpoint(sorted((runs / "part" / "checkpoints").glob("step_*"))[-1])
    logged = [
        (line["step"], line["d_loss"])
        for line in map(json.loads, (runs / "part" / "metrics.jsonl").read_text().splitlines())
        if "d_loss" in line
    ]
    assert [tuple(p) for p in state["trainer"]["d_loss_log"]] == logged
    # the metric kept RUN_DIR/best by its score; the extractor's name is in the protocol
    assert (runs / "metric" / "best").is_dir()


def test_ragan_losses_against_the_paper():
    """The page's RaGAN losses, against the paper's formulas written out with sigmoids:
    L_D = -E log sigma(C(x) - E C(G(z))) - E log(1 - sigma(C(G(z)) - E C(x))), and L_G with
    real and fake swapped."""
    namespace: dict = {}
    exec(code_blocks()[0].split("RUNS =")[0], namespace)  # imports only
    block = next(b for b in code_blocks() if "def ragan_losses" in b)
    exec(block.split("@register_method")[0], namespace)
    g = torch.Generator().manual_seed(0)
    d_real, d_fake = torch.randn(6, generator=g), torch.randn(6, generator=g)
    d_loss, g_loss = namespace["ragan_losses"](d_real, d_fake)
    r = torch.sigmoid(d_real - d_fake.mean())
    f = torch.sigmoid(d_fake - d_real.mean())
    want_d = -(r.log().mean() + (1 - f).log().mean())
    want_g = -(f.log().mean() + (1 - r).log().mean())
    assert torch.isclose(d_loss, want_d, rtol=1e-5)
    assert torch.isclose(g_loss, want_g, rtol=1e-5)
