"""PatchGAN: map shapes and receptive field by formula, patch locality by perturbation."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.models import build_discriminator


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def map_side(size: int, n_layers: int) -> int:
    """4x4 convs with padding 1: stride 2 gives floor(s / 2), stride 1 gives s - 1."""
    for _ in range(n_layers):
        size //= 2
    return size - 2


def patchgan(shape, **options):
    return build_discriminator({"name": "patchgan", "base_channels": 4, **options}, shape)


@pytest.mark.parametrize(
    "shape, n_layers",
    [((1, 28, 28), 3), ((3, 32, 32), 3), ((3, 64, 64), 3), ((3, 64, 64), 2), ((3, 64, 48), 4)],
)
def test_output_shape(shape, n_layers):
    d = patchgan(shape, n_layers=n_layers)
    out = d(torch.randn(2, *shape))
    assert out.shape == (2, map_side(shape[1], n_layers), map_side(shape[2], n_layers))
    assert d.features(torch.randn(2, *shape)).shape[0] == 2
    assert not hasattr(d, "feature_dim")


def test_pix2pix_sizes_at_256():
    """pix2pix: the 70x70 PatchGAN gives a 30x30 map on 256x256 images."""
    d = patchgan((3, 256, 256), n_layers=3)
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 30, 30)


@pytest.mark.parametrize("n_layers, field", [(1, 16), (2, 34), (3, 70), (5, 286)])
def test_receptive_field(n_layers, field):
    # r = 1 + sum (k - 1) * prod(strides before): strides 2 x n_layers, then 1, 1; k = 4
    strides = [2] * n_layers + [1, 1]
    by_hand = 1
    jump = 1
    for s in strides:
        by_hand += 3 * jump
        jump *= s
    assert by_hand == field
    assert patchgan((3, 512, 512), n_layers=n_layers).receptive_field == field


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_patch_depends_only_on_its_window(norm):
    """Patch (0, 0) sees rows and columns -23 .. 46 (n_layers 3: padding 1 at each of 5 layers,
    offset -(1 + 2 + 4 + 8 + 8), width 70): a pixel at 47 must not change it, one at 46 must."""
    d = patchgan((1, 64, 64), n_layers=3, norm=norm).double().eval()
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        base = d(x)
        for r, c, inside in [(47, 0, False), (0, 47, False), (63, 63, False), (46, 46, True)]:
            y = x.clone()
            y[0, 0, r, c] += 10.0
            changed = (d(y)[0, 0, 0] - base[0, 0, 0]).abs().item() > 1e-9
            assert changed == inside, (r, c)
        # the patch whose window starts 2 ** 3 pixels lower does see row 47
        y = x.clone()
        y[0, 0, 47, 0] += 10.0
        assert (d(y)[0, 1, 0] - base[0, 1, 0]).abs().item() > 1e-9


def test_too_small_input_is_a_config_error():
    with pytest.raises(ConfigError, match=r"16x16.*n_layers 3.*n_layers <= 2"):
        patchgan((1, 16, 16), n_layers=3)
    with pytest.raises(ConfigError, match="PatchGAN needs images"):
        patchgan((2,))


def test_norm_options_and_registry_validation():
    for norm in ["batch", "instance", "none"]:
        d = patchgan((3, 32, 32), norm=norm).train()
        assert d(torch.randn(2, 3, 32, 32)).shape == (2, 2, 2)
    with pytest.raises(ConfigError):
        patchgan((3, 32, 32), norm="layer")
