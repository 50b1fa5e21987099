"""Training methods: each owns its players and one readable `train_step`.

The trainer loop knows nothing about how a method updates its players; it calls
`train_step(step)` and gets back a dict of detached loss tensors (still on the device, so the
loop never waits for them). A recipe picks one with `method:` and sets its options with
`method_options:` (checked against the method's options function, methods/options.py).
"""

from __future__ import annotations

from torch import nn

from gankit.methods.adagan import AdaGANMethod
from gankit.methods.base import Method
from gankit.methods.began import BEGANMethod
from gankit.methods.composite import CompositeMethod
from gankit.methods.conditional import ACGANMethod, CGANMethod
from gankit.methods.cyclegan import CycleGANMethod
from gankit.methods.ebgan import EBGANMethod
from gankit.methods.gan import GANMethod
from gankit.methods.gmmn import GMMNMethod
from gankit.methods.lapgan import LapGANMethod
from gankit.methods.madgan import MADGANMethod
from gankit.methods.mmd_gan import MMDGANMethod
from gankit.methods.mrgan import MDGANMethod, MRGANMethod
from gankit.methods.options import METHOD_OPTIONS
from gankit.methods.pacgan import PacGANMethod
from gankit.methods.pix2pix import Pix2PixMethod
from gankit.methods.simgan import SimGANMethod
from gankit.methods.ssl import SSLMethod
from gankit.methods.unrolled import UnrolledGANMethod
from gankit.tricks import build_tricks, wrap_generator

METHODS: dict[str, type[Method]] = {
    "gan": GANMethod,
    "pacgan": PacGANMethod,
    "unrolled": UnrolledGANMethod,
    "began": BEGANMethod,
    "ebgan": EBGANMethod,
    "gmmn": GMMNMethod,
    "mmd_gan": MMDGANMethod,
    "madgan": MADGANMethod,
    "mrgan": MRGANMethod,
    "mdgan": MDGANMethod,
    "cgan": CGANMethod,
    "acgan": ACGANMethod,
    "ssl": SSLMethod,
    "pix2pix": Pix2PixMethod,
    "cyclegan": CycleGANMethod,
    "lapgan": LapGANMethod,
    "adagan": AdaGANMethod,
    "composite": CompositeMethod,
    "simgan": SimGANMethod,
}
assert set(METHODS) == set(METHOD_OPTIONS.names()), "every method registers its options"


def register_method(name: str, options=None):
    """Class decorator: a training method under `name` (a recipe's `method:`), with its options
    function (`options(cfg, key=default, ...)`: the method_options with their defaults, its
    body checks them and the recipe; default: a method without options).

        @register_method("ragan")
        class RaGAN(Players): ...
    """

    def decorate(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")

        def no_options(cfg) -> None:
            """(no options)"""

        METHOD_OPTIONS.register(name)(options or no_options)
        METHODS[name] = cls
        return cls

    return decorate


def build_sampling_generator(cfg, data_shape) -> nn.Module | None:
    """The module a method trains as `generator`, built from a recipe (to load a checkpoint's
    generator outside training), for methods whose generator is not the recipe's generator
    itself (MAD-GAN's mixture of k generators), with the recipe's tricks' changes to it
    (spectral norm); None for the others."""
    builder = getattr(METHODS[cfg.method], "build_sampler", None)
    if builder is None:
        return None
    return wrap_generator(build_tricks(cfg), builder(cfg, tuple(data_shape)), cfg)


__all__ = [
    "METHODS",
    "METHOD_OPTIONS",
    "ACGANMethod",
    "AdaGANMethod",
    "LapGANMethod",
    "CGANMethod",
    "SSLMethod",
    "CycleGANMethod",
    "CompositeMethod",
    "SimGANMethod",
    "Pix2PixMethod",
    "BEGANMethod",
    "EBGANMethod",
    "GANMethod",
    "GMMNMethod",
    "MADGANMethod",
    "MDGANMethod",
    "MMDGANMethod",
    "MRGANMethod",
    "Method",
    "PacGANMethod",
    "UnrolledGANMethod",
    "build_sampling_generator",
    "register_method",
]
