"""DCGAN at 128 and 256 px and its max_channels cap: shapes, a parameter count written out from
the layer formulas, and a short CLI run at 128 px. (8-64 px: tests/test_models.py.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit.errors import ConfigError
from gankit.models import build_discriminator, build_generator

STAGES = {128: 5, 256: 6}  # stride-2 stages from the 4x4 map up to the image, by hand


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(size, channels):
    base = 2
    shape = (channels, size, size)
    G = build_generator({"name": "dcgan", "latent_dim": 8, "base_channels": base}, shape)
    D = build_discriminator({"name": "dcgan", "base_channels": base}, shape)
    x = G(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size)
    assert x.abs().max() <= 1
    assert D(x).shape == (2,)
    width = base * 2 ** (STAGES[size] - 1)  # at the 4x4 map
    assert D.features(x).shape == (2, width * 16) and D.feature_dim == width * 16
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == STAGES[size]
    assert sum(isinstance(m, nn.Conv2d) for m in D.modules()) == STAGES[size]


def dcgan_counts(latent: int, channels: int, widths: list[int]) -> tuple[int, int]:
    """Parameters of DCGAN G and D with batch norm, from the layer formulas; widths from the
    4x4 map to the finest hidden map (G) / the reverse (D). Convolutions under batch norm have
    no bias; a kernel-4 (transposed) convolution has in * out * 16 weights; BN 2 per channel."""
    g = latent * widths[0] * 16 + 2 * widths[0]  # linear to the 4x4 map (no bias), BN
    for a, b in zip(widths, widths[1:]):
        g += a * b * 16 + 2 * b  # transposed conv, BN
    g += widths[-1] * channels * 16 + channels  # last transposed conv, with bias
    d_widths = widths[::-1]
    d = channels * d_widths[0] * 16 + d_widths[0]  # first conv, with bias, no norm
    for a, b in zip(d_widths, d_widths[1:]):
        d += a * b * 16 + 2 * b  # stride-2 conv, BN
    d += d_widths[-1] * 16 + 1  # linear on the flattened 4x4 map
    return g, d


def test_parameter_count_at_128_px_by_hand():
    G = build_generator({"name": "dcgan", "latent_dim": 100}, (3, 128, 128))
    D = build_discriminator({"name": "dcgan"}, (3, 128, 128))
    g, d = dcgan_counts(100, 3, [1024, 512, 256, 128, 64])
    assert (n_params(G), n_params(D)) == (g, d) == (12_786_563, 11_164_481)
    # capped at 256 channels: 4x4 and 8x8 and 16x16 maps all 256 wide
    G = build_generator({"name": "dcgan", "latent_dim": 100, "max_channels": 256}, (3, 128, 128))
    D = build_discriminator({"name": "dcgan", "max_channels": 256}, (3, 128, 128))
    assert (n_params(G), n_params(D)) == dcgan_counts(100, 3, [256, 256, 256, 128, 64])


def test_max_channels_caps_every_layer():
    G = build_generator(
        {"name": "dcgan", "latent_dim": 8, "base_channels": 4, "max_channels": 16}, (1, 256, 256)
    )
    D = build_discriminator(
        {"name": "dcgan", "base_channels": 4, "max_channels": 16}, (1, 256, 256)
    )
    g_out = [m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_out = [m.out_channels for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert g_out == [16, 16, 16, 8, 4, 1]  # from 16 (capped 128) at 4x4 down to 4, then image
    assert d_out == [4, 8, 16, 16, 16, 16]
    assert D.feature_dim == 16 * 16


@pytest.mark.parametrize("size", [28, 64])
def test_a_cap_at_or_above_the_widest_map_changes_nothing(size):
    """max_channels 512 (64 px's widest map, 128 at 28 px) builds the same layers and draws the
    same initial weights as no cap."""
    shape = (3, size, size)
    for build, opts in (
        (build_generator, {"name": "dcgan", "latent_dim": 8}),
        (build_discriminator, {"name": "dcgan"}),
    ):
        torch.manual_seed(0)
        plain = build(opts, shape)
        torch.manual_seed(0)
        capped = build({**opts, "max_channels": 512}, shape)
        assert repr(plain) == repr(capped)
        a, b = plain.state_dict(), capped.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_max_channels_below_base_is_refused():
    with pytest.raises(ConfigError, match="max_channels: must be at least base_channels"):
        build_discriminator(
            {"name": "dcgan", "base_channels": 64, "max_channels": 32}, (3, 128, 128)
        )


def test_cli_trains_dcgan_at_128_px(tmp_path):
    rng = np.random.default_rng(0)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (130, 140, 3), dtype=np.uint8)).save(pngs / f"{i}.png")
    recipe = tmp_path / "dcgan128.yaml"
    recipe.write_text(
        "name: dcgan128\n"
        f"data: {{name: folder, path: {pngs}, size: 128}}\n"
        "generator: {name: dcgan, latent_dim: 16, base_channels: 4}\n"
        "discriminator: {name: dcgan, base_channels: 4}\n"
        "schedule: {batch_size: 4}\n"
        "logging: {every: 1, progress: false, tensorboard: false}\n"
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gankit", "train", str(recipe), "--out", str(out), "--steps", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert all(math.isfinite(m["d_loss"]) and math.isfinite(m["g_loss"]) for m in lines)
