"""Generators and discriminators by name.

Generator builders take `out_shape` and `latent_dim` from the framework; discriminator builders
take `in_shape`. Every discriminator exposes `features(x)` (its last hidden layer, for tricks
such as feature matching) and `head(h)`; `forward(x) = head(features(x))` returns raw scores
(logits, or critic values): one per sample, shape (N,), or for PatchGAN one per patch, shape
(N, H', W'). Losses average over every score, so a patch map is averaged over its patches.
Discriminators whose output layer `out` scores a flat feature vector say so with `feature_dim`
(minibatch discrimination widens that layer). Encoder builders (models/encoder.py) take
`in_shape` and `latent_dim` and map data to latent codes (N, latent_dim).
"""

from __future__ import annotations

from torch import nn

from gankit.errors import ConfigError
from gankit.registry import Registry, accepted

GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
ENCODERS = Registry("encoder")


def build_generator(
    options: dict, out_shape: tuple[int, ...], where: str = "generator"
) -> nn.Module:
    options = dict(options)
    name = options.pop("name", None)
    latent_dim = options.pop("latent_dim")
    options.pop("latent_dist", None)
    builder = GENERATORS.get(name, where=f"{where}.name")
    if name in ("unet", "resnet_translator"):  # models/resnet_generator.py: image -> image
        raise ConfigError(
            f"{where}.name: {name!r} maps images to images, not noise to images; it is for "
            "methods pix2pix and cyclegan"
        )
    resolved = GENERATORS.check_options(
        name, options, where, framework_args=("out_shape", "latent_dim")
    )
    framework = {"out_shape": tuple(out_shape), "latent_dim": latent_dim}
    return checked_module(builder(**accepted(builder, framework), **resolved), name, where)


def build_discriminator(
    options: dict, in_shape: tuple[int, ...], where: str = "discriminator"
) -> nn.Module:
    options = dict(options)
    name = options.pop("name", None)
    builder = DISCRIMINATORS.get(name, where=f"{where}.name")
    resolved = DISCRIMINATORS.check_options(name, options, where, framework_args=("in_shape",))
    return checked_module(
        builder(**accepted(builder, {"in_shape": tuple(in_shape)}), **resolved), name, where
    )


def build_encoder(
    options: dict, in_shape: tuple[int, ...], latent_dim: int, where: str = "encoder"
) -> nn.Module:
    options = dict(options)
    name = options.pop("name", None)
    builder = ENCODERS.get(name, where=f"{where}.name")
    resolved = ENCODERS.check_options(
        name, options, where, framework_args=("in_shape", "latent_dim")
    )
    framework = {"in_shape": tuple(in_shape), "latent_dim": latent_dim}
    return checked_module(builder(**accepted(builder, framework), **resolved), name, where)


def checked_module(module: object, name: str, where: str) -> nn.Module:
    """A builder's result, refused in one line when it is not a torch module (a user's
    `package.module:callable` that returns something else)."""
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"{where}.name: {name!r} returned a {type(module).__name__}, not a torch.nn.Module"
        )
    return module


import gankit.models.ssl  # noqa: E402,F401  (Salimans et al. 2016's networks)
from gankit.models import (  # noqa: E402,F401
    autoencoder,
    dcgan,
    encoder,
    mlp,
    patchgan,
    refiner,
    resnet_gan,
    resnet_generator,
    tiny_dcgan,
)

__all__ = [
    "DISCRIMINATORS",
    "ENCODERS",
    "GENERATORS",
    "build_discriminator",
    "build_encoder",
    "build_generator",
]
