"""A player: the networks one optimizer trains, with the one update every method uses.

`update(loss, logs, collect_stats)` is the whole optimizer step of a player: zero its
gradients, backward of `loss` into its own parameters only (the other players' gradients are
left alone), unscale (fp16 loss scaling), log its gradient norm on the trainer's log steps,
step. `frozen()` turns off gradients for its parameters while another player's loss is
differentiated through it (a generator's step through the discriminator), so no method
writes `requires_grad_(False)` / `(True)` pairs by hand.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from gankit.methods.fast import FastMode


def grad_norm(module: nn.Module) -> Tensor:
    """sqrt(sum of squared gradient entries) over all parameters, as a 0-d tensor on the device
    (no host sync: the trainer reads it with the losses)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(module.parameters()).device)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class Player:
    """`modules` (one network, or several that share one optimizer, as CycleGAN's two
    generators) and the optimizer over their parameters; `name` keys its gradient norm in the
    logs (grad_norm/NAME)."""

    def __init__(
        self,
        name: str,
        modules: nn.Module | list[nn.Module],
        optimizer: torch.optim.Optimizer,
        fast: FastMode,
    ):
        self.name = name
        self.modules = [modules] if isinstance(modules, nn.Module) else list(modules)
        self.optimizer = optimizer
        self.fast = fast

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]

    def grad_norm(self) -> Tensor:
        if len(self.modules) == 1:
            return grad_norm(self.modules[0])
        return torch.linalg.vector_norm(torch.stack([grad_norm(m) for m in self.modules]))

    def update(self, loss: Tensor, logs: dict[str, Tensor], collect_stats: bool) -> None:
        """One optimizer step of this player on `loss` (module docstring)."""
        fast, opt = self.fast, self.optimizer
        opt.zero_grad(set_to_none=True)
        scaled = loss if fast.scaler is None else fast.scaler.scale(loss)
        scaled.backward(inputs=self.parameters())
        if collect_stats:
            fast.unscale(opt)
            logs[f"grad_norm/{self.name}"] = self.grad_norm()
        fast.step(opt)

    def frozen(self):
        """No gradients for this player's parameters inside the block (restored on exit)."""
        return freeze(*self.modules)


@contextlib.contextmanager
def freeze(*modules: nn.Module):
    """requires_grad off for every parameter of `modules` inside the block, on again after."""
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m in modules:
            m.requires_grad_(True)
