"""Tricks that change a player's layers: minibatch discrimination, minibatch standard deviation
(discriminator) and virtual batch normalization (generator).

Minibatch features let D look at a whole batch at once, so a generator that collapses to a few
points is caught by how alike its samples are; the batch statistics are appended to D's last
hidden features and D's output layer is widened to take them. Real and fake batches are scored
in separate passes, so each is compared only with itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models.latent import sample_latent
from gankit.models.layers import output_layer_like
from gankit.models.minibatch import MinibatchDiscrimination, MinibatchStdDev
from gankit.models.vbn import VirtualBatchGenerator
from gankit.tricks import TRICKS, Trick


class MinibatchFeatureDiscriminator(nn.Module):
    """D with a batch-statistics layer between its features and its (widened) output layer.

    The widened output layer starts with zero weight on the appended statistics, so training
    starts from the same D; summed similarities are as large as the batch, and random weights
    on them would start D with huge logits.
    """

    def __init__(self, inner: nn.Module, layer: nn.Module, out_features: int):
        super().__init__()
        self.inner = inner
        self.layer = layer
        self.feature_dim = out_features
        old, new = inner.out, nn.Linear(out_features, inner.out.out_features)
        with torch.no_grad():  # start as the same D: zero weight on the batch statistics
            new.weight.zero_()
            new.weight[:, : old.in_features] = old.weight
            new.bias.copy_(old.bias)
        inner.out = output_layer_like(old, new)  # its head now scores the widened features

    def features(self, x: Tensor) -> Tensor:
        return self.layer(self.inner.features(x))

    def head(self, h: Tensor) -> Tensor:
        return self.inner.head(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _feature_dim(discriminator: nn.Module, trick: str) -> int:
    if isinstance(discriminator, MinibatchFeatureDiscriminator):
        raise ConfigError(
            f"tricks: {trick} and another minibatch trick (minibatch_discrimination, "
            "minibatch_stddev) both append batch statistics to the discriminator's features; "
            "keep one"
        )
    dim = getattr(discriminator, "feature_dim", None)
    if not isinstance(dim, int) or not isinstance(getattr(discriminator, "out", None), nn.Linear):
        raise ConfigError(
            f"tricks: {trick} needs a discriminator whose output layer scores a feature vector "
            f"(mlp, dcgan); {type(discriminator).__name__} scores something else (e.g. a map of "
            "patches), so there is no feature vector to append batch statistics to"
        )
    return dim


class MinibatchDiscriminationTrick(Trick):
    def __init__(self, num_kernels: int, kernel_dim: int):
        self.num_kernels = num_kernels
        self.kernel_dim = kernel_dim

    def wrap_discriminator(self, discriminator, cfg):
        dim = _feature_dim(discriminator, self.name)
        layer = MinibatchDiscrimination(dim, self.num_kernels, self.kernel_dim)
        return MinibatchFeatureDiscriminator(discriminator, layer, dim + self.num_kernels)


class MinibatchStdDevTrick(Trick):
    def wrap_discriminator(self, discriminator, cfg):
        dim = _feature_dim(discriminator, self.name)
        return MinibatchFeatureDiscriminator(discriminator, MinibatchStdDev(), dim + 1)


class VirtualBatchNormTrick(Trick):
    def __init__(self, reference_size: int):
        self.reference_size = reference_size

    def wrap_generator(self, generator, cfg):
        g = cfg.generator
        noise = torch.Generator().manual_seed(cfg.seed + 13)
        reference = sample_latent(
            self.reference_size, g["latent_dim"], g["latent_dist"], torch.device("cpu"), noise
        )
        try:
            return VirtualBatchGenerator(generator, reference)
        except ValueError as exc:
            raise ConfigError(f"tricks: virtual_batch_norm: {exc}") from None


@TRICKS.register("minibatch_discrimination")
def minibatch_discrimination(
    num_kernels: int = 100, kernel_dim: int = 5
) -> MinibatchDiscriminationTrick:
    """num_kernels B and kernel_dim C of the learned tensor T (A x B x C); the paper's code
    uses 100 kernels of dimension 5."""
    if num_kernels < 1 or kernel_dim < 1:
        raise ConfigError(
            "tricks.minibatch_discrimination: num_kernels and kernel_dim must be >= 1, "
            f"got {num_kernels}, {kernel_dim}"
        )
    return MinibatchDiscriminationTrick(num_kernels, kernel_dim)


@TRICKS.register("minibatch_stddev")
def minibatch_stddev() -> MinibatchStdDevTrick:
    """Karras et al. 2018: one extra feature, the batch's average standard deviation."""
    return MinibatchStdDevTrick()


@TRICKS.register("virtual_batch_norm")
def virtual_batch_norm(reference_size: int = 64) -> VirtualBatchNormTrick:
    """reference_size: examples in the fixed reference batch (drawn from the run's seed and
    saved with the generator); every generator forward pass also runs them."""
    if reference_size < 1:
        raise ConfigError(
            f"tricks.virtual_batch_norm.reference_size: must be >= 1, got {reference_size}"
        )
    return VirtualBatchNormTrick(reference_size)
