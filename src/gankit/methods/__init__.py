"""Training methods: each owns its players and one readable `train_step`.

The trainer loop knows nothing about how a method updates its players; it calls
`train_step(step)` and gets back a dict of detached loss tensors (still on the device, so the
loop never waits for them). A recipe picks one with `method:` and sets its options with
`method_options:` (checked against the method's options function, methods/options.py).
"""

from __future__ import annotations

from gankit.methods.base import Method
from gankit.methods.began import BEGANMethod
from gankit.methods.ebgan import EBGANMethod
from gankit.methods.gan import GANMethod
from gankit.methods.gmmn import GMMNMethod
from gankit.methods.mmd_gan import MMDGANMethod
from gankit.methods.options import METHOD_OPTIONS
from gankit.methods.pacgan import PacGANMethod
from gankit.methods.unrolled import UnrolledGANMethod

METHODS: dict[str, type[Method]] = {
    "gan": GANMethod,
    "pacgan": PacGANMethod,
    "unrolled": UnrolledGANMethod,
    "began": BEGANMethod,
    "ebgan": EBGANMethod,
    "gmmn": GMMNMethod,
    "mmd_gan": MMDGANMethod,
}
assert set(METHODS) == set(METHOD_OPTIONS.names()), "every method registers its options"

__all__ = [
    "METHODS",
    "METHOD_OPTIONS",
    "BEGANMethod",
    "EBGANMethod",
    "GANMethod",
    "GMMNMethod",
    "MMDGANMethod",
    "Method",
    "PacGANMethod",
    "UnrolledGANMethod",
]
