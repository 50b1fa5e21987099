"""Autoencoder discriminators: shapes of codes and reconstructions."""

import pytest
import torch

from gankit.models import build_discriminator


@pytest.mark.parametrize(
    "options, shape",
    [
        ({"name": "autoencoder", "code_dim": 5}, (2,)),
        ({"name": "autoencoder", "code_dim": 5, "batch_norm": True}, (1, 8, 8)),
        ({"name": "conv_autoencoder", "base_channels": 4, "code_dim": 5}, (1, 28, 28)),
        ({"name": "conv_autoencoder", "base_channels": 4, "code_dim": 5}, (3, 32, 32)),
        ({"name": "conv_autoencoder", "base_channels": 4, "code_dim": 5}, (3, 8, 8)),
    ],
)
def test_code_and_reconstruction_shapes(options, shape):
    D = build_discriminator(options, shape)
    x = torch.randn(4, *shape)
    code = D.encode(x)
    assert code.shape == (4, 5)
    assert torch.equal(D.features(x), code)
    recon = D(x)
    assert recon.shape == x.shape
    assert torch.equal(recon, D.decode(code))
    recon.abs().mean().backward()
    assert all(p.grad is not None for p in D.parameters())
