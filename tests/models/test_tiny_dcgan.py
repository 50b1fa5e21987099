"""The stacked-MNIST protocol's small DCGAN (models/tiny_dcgan.py) and its presets.

Every expected shape and parameter count is written out by hand from the protocol (Metz et al.
2016; PacGAN's reference code) and the layer formulas, not computed with the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gankit
from gankit.config import load_recipe
from gankit.errors import ConfigError
from gankit.methods.madgan import with_outputs
from gankit.models import build_discriminator, build_generator


def hooked_shapes(model: nn.Module, kind: type[nn.Module], x: torch.Tensor) -> list[tuple]:
    """The (C, H, W) after every `kind` module (the activations) in one forward pass."""
    shapes: list[tuple] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for m in model.modules()
        if isinstance(m, kind)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def generator(side: int, channels: int = 3, **options) -> nn.Module:
    cfg = {"name": "tiny_dcgan", "latent_dim": 256, **options}
    return build_generator(cfg, (channels, side, side)).eval()


def discriminator(shape: tuple[int, int, int], **options) -> nn.Module:
    return build_discriminator({"name": "tiny_dcgan", **options}, shape).eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- generator -----------------------------------------------------------------------------------
def test_generator_28px_follows_the_protocol_layer_by_layer():
    # z (256) -> 4x4x64 -> 7x7x32 -> 14x14x16 -> 28x28x8 -> 28x28x3 (each hidden map BN + ReLU)
    G = generator(28)
    z = torch.randn(5, 256)
    assert hooked_shapes(G, nn.ReLU, z) == [(64, 4, 4), (32, 7, 7), (16, 14, 14), (8, 28, 28)]
    out = G(z)
    assert out.shape == (5, 3, 28, 28)
    assert out.abs().max() <= 1  # tanh
    assert isinstance(G.body[-1], nn.Tanh)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 4


def test_generator_8px_is_the_first_upsampling_only():
    G = generator(8)
    z = torch.randn(5, 256)
    assert hooked_shapes(G, nn.ReLU, z) == [(64, 4, 4), (32, 8, 8)]
    assert G(z).shape == (5, 3, 8, 8)


@pytest.mark.parametrize(
    "side, maps",
    [(16, [(64, 4, 4), (32, 8, 8), (16, 16, 16)]),
     (32, [(64, 4, 4), (32, 8, 8), (16, 16, 16), (8, 32, 32)])],
)  # fmt: skip
def test_generator_other_sides_halve_the_width_per_doubling(side, maps):
    G = generator(side, channels=1)
    z = torch.randn(2, 256)
    assert hooked_shapes(G, nn.ReLU, z) == maps
    assert G(z).shape == (2, 1, side, side)


def test_generator_parameter_count_by_hand():
    linear = 256 * 64 * 16 + 64 * 16  # z -> 4x4x64, with bias
    bns = 2 * (64 + 32 + 16 + 8)  # scale and shift of the four batch norms
    deconvs = (3 * 3 * 64 * 32 + 32) + (3 * 3 * 32 * 16 + 16) + (3 * 3 * 16 * 8 + 8)
    out = 3 * 3 * 8 * 3 + 3  # the stride-1 3x3 conv to 3 channels
    assert n_params(generator(28)) == linear + bns + deconvs + out == 287_875


def test_generator_refuses_sizes_and_widths_it_cannot_build():
    with pytest.raises(ConfigError, match="sizes"):
        generator(12)
    with pytest.raises(ConfigError, match="base_channels"):
        generator(28, base_channels=4)  # 4 -> 2 -> 1 -> 0 channels
    with pytest.raises(ConfigError, match="unknown option"):
        build_generator({"name": "tiny_dcgan", "latent_dim": 8, "widths": [1]}, (3, 8, 8))


# -- discriminator -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "side, widths, maps",
    [(28, None, [(2, 14, 14), (4, 7, 7), (8, 4, 4)]),
     (28, [4, 8, 16], [(4, 14, 14), (8, 7, 7), (16, 4, 4)]),
     (8, None, [(2, 4, 4), (4, 2, 2), (8, 1, 1)])],
)  # fmt: skip
def test_discriminator_shapes(side, widths, maps):
    options = {} if widths is None else {"widths": widths}
    D = discriminator((3, side, side), **options)
    x = torch.randn(6, 3, side, side)
    assert hooked_shapes(D, nn.LeakyReLU, x) == maps
    assert D(x).shape == (6,)
    c, h, w = maps[-1]
    assert D.feature_dim == c * h * w == D.out.in_features
    assert all(m.negative_slope == 0.3 for m in D.modules() if isinstance(m, nn.LeakyReLU))


def conv_bn(c_in: int, c_out: int) -> int:
    """A 3x3 conv with bias, then batch norm (scale and shift)."""
    return 3 * 3 * c_in * c_out + c_out + 2 * c_out


def test_discriminator_parameter_counts_quarter_and_half_by_hand():
    # D = 1/4 G: widths 2-4-8 on 28x28x3; the last map is 4x4x8
    quarter = conv_bn(3, 2) + conv_bn(2, 4) + conv_bn(4, 8) + (8 * 4 * 4 + 1)
    assert quarter == 60 + 84 + 312 + 129 == 585
    assert n_params(discriminator((3, 28, 28))) == quarter
    # D = 1/2 G: widths 4-8-16; the last map is 4x4x16
    half = conv_bn(3, 4) + conv_bn(4, 8) + conv_bn(8, 16) + (16 * 4 * 4 + 1)
    assert half == 120 + 312 + 1200 + 257 == 1889
    assert n_params(discriminator((3, 28, 28), widths=[4, 8, 16])) == half
    # PacGAN4 packs 4 images: 12 input channels widen only the first layer
    assert n_params(discriminator((12, 28, 28))) == quarter - conv_bn(3, 2) + conv_bn(12, 2)
    # 8x8 input: the last map is 1x1x8
    assert n_params(discriminator((3, 8, 8))) == quarter - 129 + (8 + 1)
    # without normalization there are no scale/shift parameters
    assert n_params(discriminator((3, 28, 28), norm="none")) == quarter - 2 * (2 + 4 + 8)


def test_discriminator_interface_matches_dcgan():
    D = discriminator((3, 28, 28))
    x = torch.randn(4, 3, 28, 28)
    h = D.features(x)
    assert h.shape == (4, D.feature_dim)
    assert torch.equal(D.head(h), D(x))
    # MAD-GAN replaces the output layer with k + 1 logits
    D5 = with_outputs(discriminator((3, 28, 28)), 5)
    assert D5(x).shape == (4, 5)


def test_discriminator_refuses_bad_widths():
    with pytest.raises(ConfigError, match="widths"):
        discriminator((3, 8, 8), widths=[])
    with pytest.raises(ConfigError, match="widths"):
        discriminator((3, 8, 8), widths=[2, 0, 8])
    with pytest.raises(ConfigError, match="slope"):
        discriminator((3, 8, 8), slope=-0.1)


# -- presets -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "preset, source",
    [("stacked-digits", "digits"), ("stacked-fashion-mnist", "idx")],
)
def test_stacked_presets_say_what_the_protocol_says(preset, source):
    cfg = load_recipe(preset)
    assert cfg.data["name"] == "stacked" and cfg.data["source"] == source
    assert cfg.generator["name"] == "tiny_dcgan" and cfg.generator["latent_dim"] == 256
    assert cfg.generator["base_channels"] == 64
    assert cfg.discriminator["name"] == "tiny_dcgan"
    assert list(cfg.discriminator["widths"]) == [2, 4, 8]
    assert cfg.objective["name"] == "non_saturating" and cfg.method == "gan"
    assert (cfg.schedule.batch_size, cfg.schedule.n_critic, cfg.schedule.steps) == (128, 1, 5000)
    g, d = cfg.optim.generator, cfg.optim.discriminator
    assert (g.name, d.name) == ("adam", "adam")
    assert (g.lr, d.lr) == (pytest.approx(1e-4), pytest.approx(2e-4))
    assert tuple(g.betas) == tuple(d.betas) == pytest.approx((0.5, 0.99))
    for cited in ("Metz et al. 2016", "PacGAN", "Table 3", "30.6", "327.2", "667.4"):
        assert cited in cfg.source


def test_stacked_digits_trains_two_steps(tmp_path, fast_overrides):
    overrides = {**fast_overrides, "logging.every": 1, "schedule.steps": 2}
    run = gankit.train("stacked-digits", overrides, out=tmp_path / "run")
    lines = run.metrics()
    assert [m["step"] for m in lines] == [1, 2]
    for line in lines:
        assert math.isfinite(line["d_loss"]) and math.isfinite(line["g_loss"])
    assert run.config.schedule.batch_size == 128
    samples = run.sample(4)
    assert samples.shape == (4, 3, 8, 8)
    assert samples.abs().max() <= 1


def test_stacked_digits_trains_with_packing(tmp_path, fast_overrides):
    """PacGAN4's discriminator takes 12 channels (4 images of 3)."""
    overrides = {
        **fast_overrides,
        "logging.every": 1,
        "schedule.steps": 2,
        "schedule.batch_size": 16,
        "method": "pacgan",
        "method_options": {"pack": 4},
    }
    run = gankit.train("stacked-digits", overrides, out=tmp_path / "run")
    assert [m["step"] for m in run.metrics()] == [1, 2]
