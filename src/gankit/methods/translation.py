"""What the image-to-image methods (pix2pix, cyclegan) share: their sampling module, the papers'
loss scaling, the linear learning-rate decay, and recipe checks.

Sampling. The trainer samples `method.generator(z)` with fixed latent noise z (sample grids, the
diversity statistic, EMA, `gankit sample`); a translator takes an image instead. So
`method.generator` is a `TranslationSampler`: the translator (`.net`, A -> B) plus a fixed bank
of BANK source images (the first ones of the source domain's training images, stored as a buffer,
so a checkpoint's generator carries them and `Run.generator()` rebuilds it without the data).
forward(z) returns the translations of bank images 0, 1, ... (row i: image i mod BANK); only z's
row count is used. `sample_grid(z)` is what the sample pictures show: (source, translation)
pairs side by side, r * r / 2 pairs for the largest even r with r * r <= len(z), which the
sample writer lays out r images a row (8 x 8: 32 pairs for the default 64 samples); the trainer
and `Run.save_samples` call it where the module has it. `translate(x)` translates any images.

Loss scale. Both papers train D on (loss on real + loss on fake) / 2 and G on the unhalved
adversarial term, against which their lambdas (pix2pix L1 100, CycleGAN cycle 10) are set.
gankit's least_squares objective already halves D's loss and also halves G's
(1/2 E(D(G) - 1)^2), so G's term is doubled back; the cross-entropy objective's D loss is
halved and its G loss kept (`paper_losses`).

Learning-rate schedule (`LinearDecay`): the update at step s (0-based) uses
base_lr * f(s) with f(s) = 1 - clip(s + 1 - start, 0, length + 1) / (length + 1): `start` updates
at the base rate, then `length` updates decaying linearly toward 0 (the last one at
base / (length + 1)), as CycleGAN's code does per epoch (1 - max(0, e + 1 - 100) / 101 over 200
epochs). Its state (the base rates and the rates it last set) is checkpointed with the method.
When something else scales an optimizer's rate between steps (the divergence guard's rollback
multiplies it by guard.lr_factor), the schedule keeps that scale: base *= new / last set.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gankit.data.domains import DomainData
from gankit.errors import ConfigError
from gankit.methods.critic import Critic
from gankit.methods.lr_decay import linear_decay_factor
from gankit.methods.options import no_compile, one_critic_step
from gankit.models.resnet_generator import TRANSLATORS

BANK = 64  # source images in the sampler's bank
PAPER_OBJECTIVES = ("least_squares", "non_saturating")


class TranslationSampler(nn.Module):
    def __init__(self, net: nn.Module, bank: Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("bank", bank.detach().clone())

    def inputs(self, n: int) -> Tensor:
        idx = torch.arange(n, device=self.bank.device) % len(self.bank)
        return self.bank[idx]

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.inputs(z.shape[0]))

    def translate(self, x: Tensor) -> Tensor:
        return self.net(x)

    def sample_grid(self, z: Tensor) -> Tensor:
        """(source, translation) pairs interleaved, r * r images with r even (r <= sqrt(n))."""
        r = max(2, 2 * (math.isqrt(z.shape[0]) // 2))
        x = self.inputs(r * r // 2)
        y = self.net(x)
        if x.shape[1] != y.shape[1]:  # e.g. 1-channel input, 3-channel output: show in color
            x = x.expand(-1, y.shape[1], -1, -1) if x.shape[1] == 1 else x[:, : y.shape[1]]
        return torch.stack([x.to(y.dtype), y], 1).flatten(0, 1)


def sampler_bank(images: Tensor) -> Tensor:
    return images[:BANK].detach().clone()


def paper_scales(objective) -> tuple[float, float]:
    """(factor of D's loss, factor of G's adversarial loss) that put the objective at the
    papers' scale (module docstring); a Critic's `scale`."""
    if objective.name == "least_squares":
        return 1.0, 2.0
    return 0.5, 1.0


def translation_critic(method, cfg, D: nn.Module, tricks: list, tag: str = ""):
    """The Critic of an image-to-image D: the recipe's objective at the papers' scale, the
    tricks and penalties attached; its own optimizer unless the method shares one."""
    objective = method.objective
    scale = paper_scales(objective)
    return Critic.with_optimizer(cfg, objective, tricks, D, method.fast, scale=scale, tag=tag)


class LinearDecay:
    """Linear learning-rate decay of several optimizers (module docstring)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], start: int, length: int):
        self.optimizers = optimizers
        self.start, self.length = int(start), int(length)
        self.base = {k: [g["lr"] for g in o.param_groups] for k, o in optimizers.items()}
        self.last = {k: list(v) for k, v in self.base.items()}

    def factor(self, step: int) -> float:
        return linear_decay_factor(step, self.start, self.length)

    def apply(self, step: int) -> None:
        """Set every rate for the update at `step`."""
        f = self.factor(step)
        for name, opt in self.optimizers.items():
            base, last = self.base[name], self.last[name]
            for i, group in enumerate(opt.param_groups):
                if last[i] > 0 and group["lr"] != last[i]:  # scaled from outside: keep it
                    base[i] *= group["lr"] / last[i]
                group["lr"] = last[i] = base[i] * f

    def state_dict(self) -> dict:
        return {"base": {k: list(v) for k, v in self.base.items()}, "last": dict(self.last)}

    def load_state_dict(self, state: dict) -> None:
        self.base = {k: [float(x) for x in v] for k, v in state["base"].items()}
        self.last = {k: [float(x) for x in v] for k, v in state["last"].items()}


def decay_window(cfg, decay_start: int | None, decay_steps: int | None) -> tuple[int, int]:
    """(start, length) of the decay: default the second half of schedule.steps."""
    steps = cfg.schedule.steps
    start = steps // 2 if decay_start is None else decay_start
    length = max(steps - start, 0) if decay_steps is None else decay_steps
    return start, length


# -- recipe checks --------------------------------------------------------------------------------
def check_recipe(cfg, method: str) -> None:

    if cfg.generator["name"] not in TRANSLATORS:
        raise ConfigError(
            f"generator.name: method {method!r} needs an image-to-image generator "
            f"({', '.join(TRANSLATORS)}), got {cfg.generator['name']!r}; replace the whole "
            "section, e.g. --set 'generator={name: unet}'"
        )
    if cfg.discriminator["name"] != "patchgan":
        raise ConfigError(
            f"discriminator.name: method {method!r} uses a PatchGAN discriminator (patchgan), "
            f"got {cfg.discriminator['name']!r}"
        )
    if cfg.objective["name"] not in PAPER_OBJECTIVES:
        raise ConfigError(
            f"objective.name: method {method!r} supports {', '.join(PAPER_OBJECTIVES)} (its "
            f"paper's objectives), got {cfg.objective['name']!r}"
        )
    if cfg.data["name"] not in ("transformed", "class_domains", "unpaired"):
        raise ConfigError(
            f"data.name: method {method!r} needs two image domains (data sets transformed, "
            f"class_domains or unpaired), got {cfg.data['name']!r}"
        )
    if any(t["name"] == "virtual_batch_norm" for t in cfg.tricks):
        raise ConfigError(
            f"tricks: virtual_batch_norm does not apply to method {method!r}: its generator "
            "translates images and has no latent noise to draw a reference batch from"
        )
    one_critic_step(cfg, method)
    no_compile(cfg, method)


def check_decay(decay_start: int | None, decay_steps: int | None) -> None:
    if decay_start is not None and decay_start < 0:
        raise ConfigError(f"method_options.decay_start: must be >= 0, got {decay_start}")
    if decay_steps is not None and decay_steps < 0:
        raise ConfigError(f"method_options.decay_steps: must be >= 0, got {decay_steps}")


def two_domains(data, method: str):

    if not isinstance(data, DomainData):
        raise ConfigError(
            f"data: method {method!r} needs two-domain data (transformed, class_domains, "
            "unpaired); data-parallel (torchrun) training is not supported for it yet"
        )
    return data


class ImageStore:
    """Fixed-capacity storage of generated images with its own CPU generator (draws never sync a
    GPU): what CycleGAN's image pool and SimGAN's history buffer share. The stored images, their
    count and the generator's state are the checkpoint state."""

    def __init__(self, size: int, seed: int):
        if size < 0:
            raise ValueError(f"image store size must be >= 0, got {size}")
        self.size = size
        self.images: Tensor | None = None  # (size, C, H, W) once the first image arrives
        self.count = 0
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        images = None if self.images is None else self.images[: self.count].clone()
        return {"images": images, "count": self.count, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        self.count = int(state["count"])
        self.generator.set_state(state["generator"])
        saved = state["images"]
        if saved is None:
            self.images = None
            return
        self.images = saved.new_zeros((self.size, *saved.shape[1:])).to(device)
        self.images[: self.count] = saved.to(device)
