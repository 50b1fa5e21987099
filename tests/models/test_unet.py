"""U-Net: skip shapes by formula, output shape and range, depth checks, skips really used."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.models.unet import max_depth, unet


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize(
    "shape, depth, base, cap",
    [
        ((3, 32, 32), 3, 4, 512),
        ((1, 28, 28), 2, 8, 512),
        ((3, 64, 48), 4, 4, 8),
        ((6, 8, 8), 3, 2, 4),
        ((3, 16, 16), 1, 4, 512),
    ],
)
def test_skip_and_decoder_shapes(shape, depth, base, cap):
    net = unet(shape, base_channels=base, depth=depth, max_channels=cap)
    x = torch.randn(2, *shape)
    skips = net.encode(x)
    channels = [min(base * 2**i, cap) for i in range(depth)]
    assert [tuple(s.shape) for s in skips] == [
        (2, c, shape[1] // 2 ** (i + 1), shape[2] // 2 ** (i + 1)) for i, c in enumerate(channels)
    ]
    # each decoder block reaches the resolution and width of the skip it is concatenated with
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for b in net.up]
    y = net(x)
    for h in hooks:
        h.remove()
    assert seen == [tuple(s.shape) for s in reversed(skips[:-1])]
    assert net.out[0].in_channels == (2 * channels[0] if depth > 1 else channels[0])
    assert y.shape == x.shape
    assert y.abs().max() <= 1


def test_out_channels_and_default_depth():
    net = unet((6, 32, 32), out_channels=3, base_channels=4)
    assert net.depth == 5  # down to 1x1, as pix2pix
    assert net(torch.randn(2, 6, 32, 32)).shape == (2, 3, 32, 32)
    assert unet((1, 28, 28), base_channels=4).depth == 2
    assert [max_depth(s) for s in (1, 2, 28, 32, 48, 7)] == [0, 1, 2, 5, 4, 0]


def test_skips_carry_fine_detail():
    """A change in the encoder's finest skip reaches the output without passing the bottleneck."""
    net = unet((1, 16, 16), base_channels=4, depth=3, norm="none").eval()
    x = torch.randn(1, 1, 16, 16)
    skips = net.encode(x)
    changed = [skips[0] + 1.0, *skips[1:]]
    assert not torch.allclose(net.decode(skips), net.decode(changed))


def test_norms_and_dropout_build():
    for norm in ("batch", "instance", "none"):
        net = unet((3, 16, 16), base_channels=4, norm=norm, dropout=0.5)
        assert net(torch.randn(2, 3, 16, 16)).shape == (2, 3, 16, 16)
    net = unet((3, 16, 16), base_channels=4, depth=4, dropout=0.5, dropout_blocks=2)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 2


@pytest.mark.parametrize(
    "shape, options, match",
    [
        ((3, 28, 28), {"depth": 3}, "divisible by 8"),
        ((3, 7, 7), {}, "an odd side"),
        ((2, 8), {}, "needs images"),
        ((3, 16, 16), {"base_channels": 0}, "base_channels"),
        ((3, 16, 16), {"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_options(shape, options, match):
    with pytest.raises(ConfigError, match=match):
        unet(shape, **options)


def test_wrong_input_size_is_a_clear_error():
    net = unet((3, 16, 16), base_channels=4, depth=2)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 18, 18))
