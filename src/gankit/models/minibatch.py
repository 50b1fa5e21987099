"""Layers that let a discriminator see the whole minibatch, so it can detect mode collapse.

A discriminator that scores samples one at a time cannot tell that a generator emits the same
sample a hundred times; these layers append batch statistics to each sample's features.
Both take flat features (N, A), such as a discriminator's `features(x)`, and return (N, A + k).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, "Improved Techniques for Training GANs", sec 3.2.

    M = (f @ T).view(N, B, C); c_b(i, j) = exp(-sum_c |M[i,b,c] - M[j,b,c]|);
    o(x_i)_b = sum over j != i of c_b(i, j); the output is cat([f, o], 1), shape (N, A + B).

    The paper writes the sum over all j, which adds exp(0) = 1 for j = i; the official code
    (openai/improved-gan: `+ 1e6 * T.eye` in the Theano MinibatchLayer, `mask = 1 - eye` in the
    ImageNet TensorFlow model) leaves j = i out, and so does this layer by default. The two differ
    by the constant 1 per kernel, which the next Linear layer's bias absorbs; `include_self=True`
    gives the paper's formula.

    T is drawn from N(0, 1 / (C^2 A)): with features of unit scale each M[i,b,c] then has std
    about 1 / C, so the L1 distance over C is O(1) whatever A and C are. A fixed std (0.1)
    makes the distances grow with sqrt(A): for the 4096 features of a DCGAN discriminator
    exp(-distance) underflows to 0 and the layer outputs zeros with no gradient. The official
    code reaches the same O(1) scale with a data-dependent initialization.

    Memory: the pairwise differences take N * N * B * C floats (256 * 256 * 100 * 5 = 33M,
    130 MB in float32), fine for batches up to 256.
    """

    def __init__(
        self, in_features: int, num_kernels: int, kernel_dim: int, include_self: bool = False
    ):
        super().__init__()
        self.in_features = in_features
        self.num_kernels = num_kernels
        self.kernel_dim = kernel_dim
        self.include_self = include_self
        std = 1.0 / (kernel_dim * math.sqrt(in_features))
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * std)

    def forward(self, f: Tensor) -> Tensor:
        if f.ndim != 2 or f.shape[1] != self.in_features:
            raise ValueError(
                f"MinibatchDiscrimination expects features (N, {self.in_features}), "
                f"got {tuple(f.shape)}"
            )
        n = f.shape[0]
        m = (f @ self.T).view(n, self.num_kernels, self.kernel_dim)
        # (N, 1, B, C) - (1, N, B, C) -> L1 over C -> (N, N, B). torch.cdist(p=1) per kernel is
        # ~2.5x faster but has no double backward, which gradient penalties through D need
        dist = (m.unsqueeze(1) - m.unsqueeze(0)).abs().sum(dim=3)
        c = torch.exp(-dist)
        if not self.include_self:
            c = c * (1 - torch.eye(n, device=f.device, dtype=c.dtype)).unsqueeze(2)
        return torch.cat([f, c.sum(dim=1)], dim=1)


class MinibatchStdDev(nn.Module):
    """Karras et al. 2018 (ProGAN), sec 3: append the batch's average standard deviation.

    For each group of `group_size` consecutive samples: the standard deviation of every
    feature over the group (population variance, sqrt(var + 1e-8) as in ProGAN), averaged over
    the features, is appended to each sample of the group: (N, A) -> (N, A + 1).
    group_size None uses the whole batch as one group; ProGAN uses 4, which gives each sample
    a noisier but more local statistic. N must be a multiple of group_size (ProGAN lowers the
    group to N when N is smaller; so does this layer).
    """

    def __init__(self, group_size: int | None = None, eps: float = 1e-8):
        super().__init__()
        if group_size is not None and group_size < 1:
            raise ValueError(f"MinibatchStdDev: group_size must be at least 1, got {group_size}")
        self.group_size = group_size
        self.eps = eps

    def forward(self, f: Tensor) -> Tensor:
        if f.ndim != 2:
            raise ValueError(f"MinibatchStdDev expects flat features (N, A), got {tuple(f.shape)}")
        n = f.shape[0]
        g = n if self.group_size is None else min(self.group_size, n)
        if n % g:
            raise ValueError(f"MinibatchStdDev: batch size {n} is not a multiple of group {g}")
        groups = f.view(n // g, g, f.shape[1])
        var = groups.var(dim=1, unbiased=False)  # (N / G, A)
        stat = torch.sqrt(var + self.eps).mean(dim=1)  # (N / G,)
        return torch.cat([f, stat.repeat_interleave(g).unsqueeze(1)], dim=1)
