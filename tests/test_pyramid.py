"""Laplacian pyramid: hand-computed down/up on a 4x4 image and exact reconstruction."""

import torch

from gankit.pyramid import auto_levels, build_pyramid, downsample, reconstruct, upsample


def test_down_and_up_on_a_4x4_example():
    x = torch.tensor(
        [[1.0, 3.0, 0.0, 2.0], [5.0, 7.0, 4.0, 6.0], [0.0, 0.0, 8.0, 8.0], [4.0, 8.0, 8.0, 0.0]]
    ).view(1, 1, 4, 4)
    # block means by hand: (1+3+5+7)/4 = 4, (0+2+4+6)/4 = 3, (0+0+4+8)/4 = 3, (8+8+8+0)/4 = 6
    down = downsample(x)
    assert torch.equal(down, torch.tensor([[4.0, 3.0], [3.0, 6.0]]).view(1, 1, 2, 2))
    up = upsample(down)
    expected = torch.tensor(
        [[4.0, 4.0, 3.0, 3.0], [4.0, 4.0, 3.0, 3.0], [3.0, 3.0, 6.0, 6.0], [3.0, 3.0, 6.0, 6.0]]
    ).view(1, 1, 4, 4)
    assert torch.equal(up, expected)
    coarse, (h,) = build_pyramid(x, 2)
    assert torch.equal(coarse, down)
    assert torch.equal(h, x - expected)
    # the residual of every 2x2 block sums to zero (the block mean is in the coarse image)
    assert torch.allclose(downsample(h), torch.zeros(1, 1, 2, 2))


def test_bilinear_upsampling_of_a_constant_is_the_constant():
    assert torch.allclose(
        upsample(torch.full((1, 2, 3, 3), 0.7), "bilinear"), torch.full((1, 2, 6, 6), 0.7)
    )


def test_reconstruction_is_exact_with_the_true_residuals():
    x = torch.rand(3, 2, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for mode in ("nearest", "bilinear"):
        coarse, residuals = build_pyramid(x, 4, mode)
        assert coarse.shape == (3, 2, 4, 4)
        assert [h.shape[-1] for h in residuals] == [8, 16, 32]
        assert torch.allclose(reconstruct(coarse, residuals, mode), x, atol=1e-6, rtol=0)
    # independent check: I_k computed by repeated 2x2 block means
    blocks = x.view(3, 2, 4, 8, 4, 8).mean(dim=(3, 5))
    assert torch.allclose(build_pyramid(x, 4)[0], blocks, atol=1e-6)


def test_auto_levels():
    assert [auto_levels(s) for s in (8, 28, 32, 64)] == [2, 3, 3, 3]
