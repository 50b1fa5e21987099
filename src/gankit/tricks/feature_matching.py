"""Feature matching (Salimans et al. 2016, sec 3.1).

The generator matches the mean of an intermediate discriminator layer f on real and generated
data, || E f(x) - E f(G(z)) ||_2^2, instead of (adversarial: false, the paper's semi-supervised
recipe) or on top of (adversarial: true) the objective's generator loss. f defaults to the
discriminator's last hidden layer (its `features`); `layer` names any submodule of D instead
(e.g. "body.2"), whose output is taken by a forward hook that stops D's pass right there.
Real features are computed without gradients on the real batch of the last discriminator step.

`reduction` says how the squared differences of the feature means are combined: `sum`, the
paper's squared L2 norm, or `mean` over features, as the paper's code (and the `ssl` method,
which uses the same `feature_matching_loss`) does; mean is sum / feature count, so the two
differ only in the term's scale.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.regularizers import RegularizerContext
from gankit.tricks import TRICKS, Trick


def feature_matching_loss(f_real: Tensor, f_fake: Tensor, reduction: str = "sum") -> Tensor:
    """||E f_real - E f_fake||^2 over the feature axis (batch means, in fp32): summed
    (reduction "sum") or averaged ("mean") over features."""
    squares = (f_real.float().mean(0) - f_fake.float().mean(0)).pow(2)
    return squares.sum() if reduction == "sum" else squares.mean()


class _Captured(Exception):
    """Carries a layer's output out of a forward pass that need not go further."""

    def __init__(self, output: Tensor):
        self.output = output


def _raise_output(module, inputs, output):
    raise _Captured(output)


class FeatureMatching(Trick):
    def __init__(self, weight: float, adversarial: bool, layer: str | None, reduction: str):
        self.weight = weight
        self.reduction = reduction
        self.replaces_generator_loss = not adversarial
        self.layer = layer
        self.module: nn.Module | None = None

    def attach(self, method) -> None:
        if self.layer is None:
            return
        names = dict(method.discriminator.named_modules())
        names.pop("", None)
        if self.layer not in names:
            raise ConfigError(
                f"tricks.feature_matching.layer: the discriminator has no layer {self.layer!r}; "
                f"valid: {', '.join(names)}"
            )
        self.module = names[self.layer]

    def features(self, discriminator: nn.Module, x: Tensor) -> Tensor:
        if self.module is None:
            return discriminator.features(x).flatten(1)
        handle = self.module.register_forward_hook(_raise_output)
        try:
            discriminator(x)
        except _Captured as captured:
            return captured.output.flatten(1)
        finally:
            handle.remove()
        raise RuntimeError(f"layer {self.layer!r} was not used in the discriminator's forward")

    def g_penalty(self, ctx: RegularizerContext) -> Tensor:
        # means in fp32: under fast mode's autocast the features may be bf16/fp16
        with torch.no_grad():
            real = self.features(ctx.discriminator, ctx.real)
        fake = self.features(ctx.discriminator, ctx.fake)
        return self.weight * feature_matching_loss(real, fake, self.reduction)


@TRICKS.register("feature_matching")
def feature_matching(
    weight: float = 1.0,
    adversarial: bool = False,
    layer: str | None = None,
    reduction: Literal["sum", "mean"] = "sum",
) -> FeatureMatching:
    """weight: the term's coefficient; adversarial: keep the objective's G loss too;
    layer: a discriminator submodule name (default: its last hidden layer); reduction: sum
    (the paper's squared norm) or mean over features (its code's)."""
    if not weight > 0:
        raise ConfigError(f"tricks.feature_matching.weight: must be > 0, got {weight}")
    return FeatureMatching(float(weight), adversarial, layer, reduction)
