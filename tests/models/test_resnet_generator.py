"""CycleGAN's ResNet-block generator: shapes, layer structure, and the recipe checks."""

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.models import build_generator
from gankit.models.resnet_generator import ResidualBlock, build_translator, resnet_generator


@pytest.mark.parametrize("shape,n_down", [((1, 8, 8), 1), ((3, 16, 16), 2), ((3, 32, 24), 2)])
def test_maps_an_image_to_an_image_of_the_same_shape(shape, n_down):
    net = resnet_generator(shape, base_channels=8, n_blocks=2, n_down=n_down)
    x = torch.randn(2, *shape)
    y = net(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1  # tanh


def test_paper_layers_c7s1_down_residual_up():
    net = resnet_generator((3, 32, 32), base_channels=8, n_blocks=3, n_down=2)
    convs = [m for m in net.net if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    first, d1, d2, u1, u2, last = convs
    assert first.kernel_size == (7, 7) and first.out_channels == 8
    assert (d1.stride, d1.out_channels, d2.out_channels) == ((2, 2), 16, 32)
    assert isinstance(u1, nn.ConvTranspose2d) and (u1.out_channels, u2.out_channels) == (16, 8)
    assert last.kernel_size == (7, 7) and last.out_channels == 3
    blocks = [m for m in net.net if isinstance(m, ResidualBlock)]
    assert len(blocks) == 3
    assert any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())
    # the maps inside: 32 -> 16 -> 8 at the residual blocks
    h = torch.randn(1, 3, 32, 32)
    for layer in net.net:
        h = layer(h)
        if isinstance(layer, ResidualBlock):
            assert h.shape == (1, 32, 8, 8)


def test_residual_block_adds_its_input():
    block = ResidualBlock(4, "none", True)
    for p in block.parameters():
        nn.init.zeros_(p)
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(block(x), x)


def test_checks():
    with pytest.raises(ConfigError, match="n_down"):
        resnet_generator((1, 8, 8), n_down=3)
    with pytest.raises(ConfigError, match="maps images to images"):
        build_generator({"name": "unet", "latent_dim": 4}, (1, 8, 8))
    with pytest.raises(ConfigError, match="image-to-image"):
        build_translator({"name": "dcgan"}, (1, 8, 8), 1)
    net = build_translator({"name": "unet", "latent_dim": 4, "depth": 2}, (1, 8, 8), 3)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3, 8, 8)
