"""The SNGAN-style residual networks (sngan_resnet): shapes, widths and block layout written out
by hand from the papers' tables, sum pooling against a loop, spectral norm against linalg, the
residual blocks against functional re-computations, and short training runs (methods, tricks,
the CLI and the presets)."""

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
from torch.nn import functional as F
from torch.nn.utils import parametrize

import gankit
from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator
from gankit.models.resnet_gan import (
    DiscriminatorBlock,
    GeneratorBlock,
    OptimizedDiscriminatorBlock,
    SumPool,
)

SIZES = [32, 64, 128, 256]
# by hand, in units of base_channels (SNGAN CIFAR; Mimicry sngan_64 / sngan_128; BigGAN 256):
G_WIDTHS = {
    32: [4, 4, 4, 4],
    64: [16, 8, 4, 2, 1],
    128: [16, 16, 8, 4, 2, 1],
    256: [16, 16, 8, 8, 4, 2, 1],
}
D_WIDTHS = {
    32: [2, 2, 2, 2],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
}
D_LAST_MAP = {32: 8, 64: 2, 128: 4, 256: 4}  # side of D's last map: size / 2^(downsamplings)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def G_of(shape, **options):
    return build_generator({"name": "sngan_resnet", "latent_dim": 8, **options}, shape)


def D_of(shape, **options):
    return build_discriminator({"name": "sngan_resnet", **options}, shape)


def convs_and_linears(module):
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def write_pngs(folder, n, side, classes=None):
    """n random RGB PNGs (side x side), split over class subfolders if asked."""
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / classes[i % len(classes)] if classes else folder
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"{i}.png")
    return folder


# ----------------------------------------------------------------------------- shapes, widths


def test_registered_names():
    assert "sngan_resnet" in GENERATORS and "sngan_resnet" in DISCRIMINATORS
    # not plain "resnet": next to resnet_translator it would be ambiguous
    assert "resnet" not in GENERATORS and "resnet" not in DISCRIMINATORS


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_widths(size, channels):
    base = 2
    shape = (channels, size, size)
    G, D = G_of(shape, base_channels=base), D_of(shape, base_channels=base)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, channels, size, size)
    assert x.abs().max() <= 1  # tanh
    D.eval()  # no power iteration between the two passes below
    scores, h = D(x), D.features(x)
    assert scores.shape == (3,)
    assert D.feature_dim == base * D_WIDTHS[size][-1]
    assert h.shape == (3, D.feature_dim)
    torch.testing.assert_close(D.head(h), scores)
    # G: the linear layer makes a 4x4 map; one up block per doubling; widths by hand
    up = [m for m in G.modules() if isinstance(m, GeneratorBlock)]
    assert len(up) == int(math.log2(size // 4))
    assert G.project.out_features == base * G_WIDTHS[size][0] * 16
    outs = [b.residual[3].out_channels for b in up]
    assert outs == [base * m for m in G_WIDTHS[size][1:]]
    # D: an optimized first block, then down blocks; widths and the last map by hand
    blocks = [m for m in D.body if isinstance(m, (OptimizedDiscriminatorBlock, DiscriminatorBlock))]
    assert isinstance(blocks[0], OptimizedDiscriminatorBlock)
    assert [
        b.residual[-2 if isinstance(b.residual[-1], nn.AvgPool2d) else -1].out_channels
        for b in blocks
    ] == [base * m for m in D_WIDTHS[size]]
    seen = {}
    D.body[-1].register_forward_hook(lambda m, i, o: seen.update(map=i[0]))
    D(x)
    assert seen["map"].shape == (3, D.feature_dim, D_LAST_MAP[size], D_LAST_MAP[size])


def test_default_widths_are_the_papers():
    """base_channels 64 by default: SNGAN's CIFAR networks at 32 px (G 256 wide, D 128); the
    wider sizes scale the same multipliers (checked above with a small base)."""
    assert GENERATORS.options("sngan_resnet", ("out_shape", "latent_dim"))["base_channels"] == 64
    assert DISCRIMINATORS.options("sngan_resnet", ("in_shape",))["base_channels"] == 64
    G, D = G_of((3, 32, 32)), D_of((3, 32, 32))
    assert G.project.out_features == 256 * 16 and D.out.in_features == 128
    assert G.body[-2].in_channels == 256 and G.body[-2].out_channels == 3
    assert D.body[0].residual[0].out_channels == 128


def test_channel_multipliers_option():
    G = G_of((3, 64, 64), base_channels=3, channel_multipliers=[4, 4, 2, 2, 1])
    assert [b.residual[3].out_channels for b in G.modules() if isinstance(b, GeneratorBlock)] == [
        12,
        6,
        6,
        3,
    ]
    D = D_of((3, 32, 32), base_channels=3, channel_multipliers=[1, 2, 3, 4])
    assert D.feature_dim == 12
    with pytest.raises(ConfigError) as err:
        G_of((3, 64, 64), channel_multipliers=[4, 2, 1])
    assert "64 px needs 5" in str(err.value) and "[16, 8, 4, 2, 1]" in str(err.value)
    with pytest.raises(ConfigError, match="channel_multipliers"):
        D_of((3, 32, 32), channel_multipliers=[1, 0, 1, 1])
    with pytest.raises(ConfigError, match="base_channels"):
        D_of((3, 32, 32), base_channels=0)


@pytest.mark.parametrize("shape", [(3, 48, 48), (3, 16, 16), (1, 512, 512), (3, 32, 64), (2,)])
def test_unsupported_sizes_name_the_sizes_and_the_data(shape):
    for build in (lambda: G_of(shape), lambda: D_of(shape)):
        with pytest.raises(ConfigError) as err:
            build()
        msg = str(err.value)
        assert "32, 64, 128, 256 px" in msg and str(shape) in msg


# ----------------------------------------------------------------------------- sum pooling


def test_global_sum_pooling_equals_a_loop():
    D = D_of((3, 32, 32), base_channels=2)
    seen = {}
    D.body[-1].register_forward_hook(lambda m, i, o: seen.update(map=i[0], out=o))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = D.features(x)
    fmap = seen["map"]
    n, c, hh, ww = fmap.shape
    expected = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for k in range(c):
            for a in range(hh):
                for b in range(ww):
                    expected[i, k] += float(fmap[i, k, a, b])
    torch.testing.assert_close(h.double(), expected)
    assert (fmap >= 0).all()  # the ReLU before the pooling
    torch.testing.assert_close(SumPool()(torch.ones(1, 2, 3, 5)), torch.full((1, 2), 15.0))


# ----------------------------------------------------------------------------- spectral norm


def sigma(weight: torch.Tensor) -> float:
    with torch.no_grad():
        w = weight.reshape(weight.shape[0], -1).double()
        return torch.linalg.matrix_norm(w, ord=2).item()


@pytest.mark.parametrize("size", [32, 64])
def test_spectral_norm_on_every_conv_and_linear(size):
    D = D_of((3, size, size), base_channels=2)
    layers = convs_and_linears(D)
    # by hand: first block 3 convs; 32 px: block 2 (downsamples) 3, blocks 3-4 (identity
    # shortcut) 2 each; 64 px: 4 down blocks of 3; plus the linear output layer
    assert len(layers) == {32: 3 + 3 + 2 + 2 + 1, 64: 3 + 4 * 3 + 1}[size]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    raw = [sigma(m.parametrizations.weight.original) for m in layers]
    assert max(abs(s - 1) for s in raw) > 0.1  # the raw weights are not normalized
    D.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(30):  # one power iteration per training forward pass
            D(torch.randn(4, 3, size, size, generator=g))
    D.eval()
    used = [sigma(m.weight) for m in layers]  # the weight each forward pass uses
    assert all(abs(s - 1) < 1e-2 for s in used), used


def test_spectral_norm_off_and_the_trick_on_top():
    D = D_of((3, 32, 32), base_channels=2, spectral_norm=False)
    assert not any(parametrize.is_parametrized(m) for m in convs_and_linears(D))
    # the spectral_norm trick on a D that has it built in normalizes each layer once
    from gankit.tricks.spectral_norm import apply_spectral_norm

    D = D_of((3, 32, 32), base_channels=2)
    apply_spectral_norm(D)
    for m in convs_and_linears(D):
        assert len(m.parametrizations.weight) == 1


# ----------------------------------------------------------------------------- residual blocks


def test_generator_block_shortcut_and_whole_block_by_hand():
    block = GeneratorBlock(3, 5).eval()
    bn1, _, _, c1, bn2, _, c2 = block.residual
    with torch.no_grad():
        for bn in (bn1, bn2):  # non-trivial running statistics and affine parameters
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 4, 4)
    sc = block.shortcut[1]
    up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest 2x by hand
    shortcut = F.conv2d(up, sc.weight, sc.bias)

    def bn(t, m):
        return (t - m.running_mean[:, None, None]) / torch.sqrt(
            m.running_var[:, None, None] + m.eps
        ) * m.weight[:, None, None] + m.bias[:, None, None]

    h = bn(x, bn1).relu().repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    h = bn(F.conv2d(h, c1.weight, c1.bias, padding=1), bn2).relu()
    residual = F.conv2d(h, c2.weight, c2.bias, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(block(x), residual + shortcut)
        c2.weight.zero_()
        c2.bias.zero_()
        torch.testing.assert_close(block(x), shortcut)
    assert block(x).shape == (2, 5, 8, 8)


@pytest.mark.parametrize("in_ch, out_ch, down", [(3, 5, True), (4, 4, True), (4, 6, False)])
def test_discriminator_block_shortcut_and_whole_block_by_hand(in_ch, out_ch, down):
    block = DiscriminatorBlock(in_ch, out_ch, down)
    x = torch.randn(2, in_ch, 8, 8)
    _, c1, _, c2, *_ = block.residual
    sc = block.shortcut[0]  # conv1x1: the width changes or the block downsamples
    shortcut = F.conv2d(x, sc.weight, sc.bias)
    residual = F.conv2d(
        F.conv2d(x.relu(), c1.weight, c1.bias, padding=1).relu(), c2.weight, c2.bias, padding=1
    )
    if down:  # 2x2 average pooling by hand
        shortcut = shortcut.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))
        residual = residual.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))
    assert c1.out_channels == in_ch  # hidden width = input width (SNGAN)
    with torch.no_grad():
        torch.testing.assert_close(block(x), residual + shortcut)
        c2.weight.zero_()
        c2.bias.zero_()
        torch.testing.assert_close(block(x), shortcut)


def test_discriminator_block_identity_shortcut():
    block = DiscriminatorBlock(4, 4, downsample=False)
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.randn(2, 4, 6, 6)  # negative entries too: the shortcut sees x before any ReLU
    with torch.no_grad():
        block.residual[3].weight.zero_()
        block.residual[3].bias.zero_()
        assert torch.equal(block(x), x)


def test_optimized_block_shortcut_by_hand():
    block = OptimizedDiscriminatorBlock(3, 5)
    x = torch.randn(2, 3, 8, 8)
    sc = block.shortcut[1]
    pooled = x.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))  # avgpool first, then conv1x1
    with torch.no_grad():
        block.residual[2].weight.zero_()
        block.residual[2].bias.zero_()
        torch.testing.assert_close(block(x), F.conv2d(pooled, sc.weight, sc.bias))


# ----------------------------------------------------------------------------- init


def test_xavier_init_bounds_and_default():
    G = G_of((3, 32, 32), base_channels=8)
    block = next(m for m in G.modules() if isinstance(m, GeneratorBlock))
    c1, sc = block.residual[3], block.shortcut[1]  # 32 -> 32 channels, 3x3 / 1x1
    # Xavier-uniform bound gain * sqrt(6 / (fan_in + fan_out)): gain sqrt(2) on the residual
    # convs (fans 32 * 9 each), 1 on the shortcut (32 each)
    for conv, bound in (
        (c1, math.sqrt(2) * math.sqrt(6 / (2 * 32 * 9))),
        (sc, math.sqrt(6 / (2 * 32))),
    ):
        w = conv.weight.abs().max().item()
        assert 0.9 * bound < w <= bound
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    torch.manual_seed(0)
    G = G_of((3, 32, 32), base_channels=8, init="default")
    c1 = next(m for m in G.modules() if isinstance(m, GeneratorBlock)).residual[3]
    assert c1.bias.abs().max() > 0  # PyTorch's uniform biases


# ----------------------------------------------------------------------------- training


BASE = {
    "generator": {"name": "sngan_resnet", "latent_dim": 8, "base_channels": 2},
    "discriminator": {"name": "sngan_resnet", "base_channels": 2},
    "objective.name": "hinge",
    "schedule.steps": 2,
    "schedule.batch_size": 6,
    "logging.every": 1,
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.sample_every": 1000,
    "logging.checkpoint_every": 1000,
}


@pytest.fixture(scope="module")
def labeled_folder(tmp_path_factory):
    return write_pngs(tmp_path_factory.mktemp("pngs"), 12, 36, classes=["a", "b", "c"])


@pytest.mark.parametrize(
    "case, extra",
    [
        ("feature_matching", {"tricks": [{"name": "feature_matching", "adversarial": True}]}),
        (
            "minibatch",
            {"tricks": [{"name": "minibatch_discrimination", "num_kernels": 4, "kernel_dim": 2}]},
        ),
        ("cgan", {"method": "cgan", "method_options": {"embed_dim": 4}}),
        (
            "acgan",
            {
                "method": "acgan",
                "method_options": {"embed_dim": 4},
                "objective.name": "non_saturating",
            },
        ),
    ],
)
def test_trains_under_tricks_and_methods(tmp_path, labeled_folder, case, extra):
    data = {"data": {"name": "folder", "path": str(labeled_folder), "size": 32}}
    run = gankit.train("quickstart", {**BASE, **data, **extra}, out=tmp_path / case)
    lines = run.metrics()
    assert [m["step"] for m in lines] == [1, 2]
    assert all(math.isfinite(m[k]) for m in lines for k in ("d_loss", "g_loss"))


def method_of(cfg_overrides, folder):
    from gankit.data import build_dataset
    from gankit.methods import METHODS

    cfg = gankit.load_recipe(
        "quickstart",
        {**BASE, "data": {"name": "folder", "path": str(folder), "size": 32}, **cfg_overrides},
    )
    data = build_dataset(cfg.data, seed=cfg.seed)
    return METHODS[cfg.method](cfg, data, torch.device("cpu"))


def test_cgan_projection_over_the_sum_pooled_features(labeled_folder):
    """cgan's projection D on sngan_resnet: out(phi) + <embed(y), phi>, phi the sum-pooled
    features (Miyato & Koyama 2018), computed here from D's own layers."""
    method = method_of({"method": "cgan", "method_options": {"embed_dim": 4}}, labeled_folder)
    P = method.discriminator.eval()
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 2, 1])
    with torch.no_grad():
        phi = P.D.body[:-1](x).sum(dim=(2, 3))
        expected = phi @ P.D.out.weight[0] + P.D.out.bias[0] + (P.embed.weight[y] * phi).sum(1)
        torch.testing.assert_close(P(x, y), expected)


@pytest.mark.parametrize(
    "extra",
    [
        {
            "method": "acgan",
            "method_options": {"embed_dim": 4, "d_class_loss": "twin"},
            "objective.name": "non_saturating",
        },
        {"tricks": [{"name": "minibatch_stddev"}]},
    ],
    ids=["acgan", "minibatch_stddev"],
)
def test_a_replaced_output_layer_keeps_spectral_norm(labeled_folder, extra):
    """ACGAN's 1 + 2K logits and the minibatch tricks' widened layer replace `out`: spectrally
    normalized like the layer they replace, sigma 1 after power iterations."""
    method = method_of(extra, labeled_folder)
    D = method.discriminator
    outs = [m for name, m in D.named_modules() if name.endswith("out")]
    (out,) = [m for m in outs if isinstance(m, nn.Linear)]
    assert out.out_features == (1 + 2 * 3 if "method" in extra else 1)
    assert parametrize.is_parametrized(out, "weight")
    D.train()
    with torch.no_grad():
        for _ in range(30):
            D(torch.randn(6, 3, 32, 32))
    assert abs(sigma(out.weight) - 1) < 1e-2


def test_cli_trains_the_64_px_preset_at_32_px(tmp_path):
    """`gankit train resnet-folder-64` (n_critic 5, lr decay, EMA) on random PNGs at 32 px."""
    pngs = write_pngs(tmp_path / "pngs", 8, 40)
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "resnet-folder-64",
        "--out",
        str(out),
        "--steps",
        "3",
        "--set",
        f"data.path={pngs}",
        "data.size=32",
        "generator.base_channels=2",
        "discriminator.base_channels=2",
        "schedule.batch_size=4",
        "logging.every=1",
        "logging.progress=false",
        "logging.tensorboard=false",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert all(math.isfinite(m["d_loss"]) and math.isfinite(m["g_loss"]) for m in lines)
    assert (out / "checkpoints" / "step_00000003").is_dir()


@pytest.mark.parametrize("size", [64, 128])
def test_presets_resolve(tmp_path, size):
    cfg = gankit.load_recipe(f"resnet-folder-{size}", {"data.path": str(tmp_path)})
    assert cfg.data["name"] == "folder" and cfg.data["size"] == size
    assert cfg.data["path"] == str(tmp_path)
    assert cfg.generator["name"] == cfg.discriminator["name"] == "sngan_resnet"
    assert cfg.discriminator["spectral_norm"] is True
    assert cfg.objective["name"] == "hinge"
    assert (cfg.schedule.n_critic, cfg.schedule.batch_size) == (5, 64)
    for player in (cfg.optim.generator, cfg.optim.discriminator):
        assert player.name == "adam" and player.lr == pytest.approx(2e-4)
        assert tuple(player.betas) == (0.0, 0.9)
    assert cfg.ema.enabled
    assert gankit.load_recipe(f"resnet-folder-{size}").data["path"] is None
