"""Training methods: each owns its players and one readable `train_step`.

The trainer loop knows nothing about how a method updates its players; it calls
`train_step(step)` and gets back a dict of detached loss tensors (still on the device, so the
loop never waits for them).
"""

from __future__ import annotations

from gankit.methods.base import Method
from gankit.methods.gan import GANMethod

METHODS: dict[str, type[Method]] = {"gan": GANMethod}

__all__ = ["METHODS", "GANMethod", "Method"]
