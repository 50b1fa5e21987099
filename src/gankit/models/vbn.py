"""Virtual batch normalization (Salimans et al. 2016, "Improved Techniques for Training GANs", 3.4).

Batch norm makes a generated sample depend on the other samples of its batch. Virtual batch norm
normalizes each example with the statistics of a reference batch, fixed once at the start, plus
the example itself, so a sample depends only on its own z.

Convention: a VirtualBatchNorm layer's input is cat([reference_rows, batch_rows]) along dim 0,
the first `reference_size` rows being the reference batch passed through the same network.
`VirtualBatchGenerator` arranges this for a generator.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VirtualBatchNorm(nn.Module):
    """Normalizes (N, F) or (N, C, H, W) input; the first `reference_size` rows are the reference.

    Reference rows use the reference batch's statistics: mean and mean of squares over the
    reference rows (and H, W). Every other example x uses
    mean = 1/(n+1) x_mean + n/(n+1) ref_mean and the same for the mean of squares, with
    var = mean_sq - mean^2, n = reference_size and x_mean x's own mean over H, W (x itself for
    2D input): the official improved-gan code's formula (new_coeff = 1 / (batch_size + 1)).
    Train and eval modes behave the same: there are no running statistics.
    """

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5):
        super().__init__()
        if reference_size < 1:
            raise ValueError(f"VirtualBatchNorm: reference_size must be >= 1, got {reference_size}")
        self.num_features = num_features
        self.reference_size = reference_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(
                f"VirtualBatchNorm expects (N, {self.num_features}) or "
                f"(N, {self.num_features}, H, W), got {tuple(x.shape)}"
            )
        n = self.reference_size
        if x.shape[0] <= n:
            raise ValueError(
                f"VirtualBatchNorm: input has {x.shape[0]} rows, but the first {n} are the "
                "reference batch; pass cat([reference, batch]) (VirtualBatchGenerator does)"
            )
        spatial = (2, 3) if x.ndim == 4 else ()
        own_mean = x.mean(dim=spatial, keepdim=True) if spatial else x  # (N, F[, 1, 1])
        own_sq = (x * x).mean(dim=spatial, keepdim=True) if spatial else x * x
        ref_mean = own_mean[:n].mean(dim=0, keepdim=True)
        ref_sq = own_sq[:n].mean(dim=0, keepdim=True)
        w = 1.0 / (n + 1)
        mean = torch.cat([ref_mean.expand_as(own_mean[:n]), w * own_mean[n:] + (1 - w) * ref_mean])
        sq = torch.cat([ref_sq.expand_as(own_sq[:n]), w * own_sq[n:] + (1 - w) * ref_sq])
        var = (sq - mean * mean).clamp_min(0.0)  # clamp: rounding can make it slightly < 0
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, reference_size={self.reference_size}, eps={self.eps}"


def convert_batchnorm_to_vbn(module: nn.Module, reference_size: int) -> int:
    """Replaces every BatchNorm1d/2d inside `module` in place; returns how many it replaced.

    Each VirtualBatchNorm keeps the BatchNorm's num_features, eps and affine weight and bias
    (a BatchNorm without affine parameters gets weight 1 and bias 0, trainable).
    """
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            vbn = VirtualBatchNorm(child.num_features, reference_size, eps=child.eps)
            if child.affine:
                vbn.to(device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    vbn.weight.copy_(child.weight)
                    vbn.bias.copy_(child.bias)
            setattr(module, name, vbn)
            replaced += 1
        else:
            replaced += convert_batchnorm_to_vbn(child, reference_size)
    return replaced


class VirtualBatchGenerator(nn.Module):
    """A generator whose BatchNorm layers are virtual: each sample depends only on its own z.

    forward(z) = inner(cat([reference_z, z]))[n:]. reference_z (n, latent_dim) is a buffer, so
    it is saved with the state dict and a resumed run keeps its reference batch. A conditional
    inner G gets labels too, fixed ones for the reference rows.
    """

    def __init__(self, inner: nn.Module, reference_z: Tensor):
        super().__init__()
        if reference_z.ndim != 2 or reference_z.shape[1] != inner.latent_dim:
            raise ValueError(
                f"VirtualBatchGenerator: reference_z must be (n, {inner.latent_dim}), "
                f"got {tuple(reference_z.shape)}"
            )
        n = reference_z.shape[0]
        if convert_batchnorm_to_vbn(inner, n) == 0:
            raise ValueError(
                "virtual batch norm replaces the generator's BatchNorm layers; this generator "
                "has none (set generator.batch_norm: true / generator.norm: batch)"
            )
        self.inner = inner
        self.register_buffer("reference_z", reference_z.detach().clone())
        self.out_shape = inner.out_shape
        self.latent_dim = inner.latent_dim

    def forward(self, z: Tensor, labels=None) -> Tensor:
        """G(z); a class-conditional inner G (one with `labels_for`) also takes labels, and
        its reference batch gets classes 0, 1, ... K-1, 0, ... (fixed, as its z)."""
        ref = self.reference_z.to(dtype=z.dtype)
        n = ref.shape[0]
        if not hasattr(self.inner, "labels_for"):
            if labels is not None:
                raise ValueError("this generator takes no labels")
            return self.inner(torch.cat([ref, z]))[n:]
        ref_labels = self.inner.default_labels(n, z.device)
        labels = self.inner.labels_for(z.shape[0], labels, z.device)
        return self.inner(torch.cat([ref, z]), torch.cat([ref_labels, labels]))[n:]
