"""Method options: the recipe's `method_options` mapping, checked against the method's options
function.

Every method registers one function here under its name. Its keyword arguments (after the
framework argument `cfg`, the rest of the resolved recipe) are the method's options with their
defaults and types; its body checks value ranges and whether the method fits the rest of the
recipe (batch size, tricks, models), raising a ConfigError that names the key. `resolve` fills
every default in, so the config saved with a run lists every option the method used.

    method: unrolled
    method_options: {unroll_steps: 10, second_order: false}
"""

from __future__ import annotations

from typing import Any, Literal

from gankit.errors import ConfigError
from gankit.registry import Registry

METHOD_OPTIONS = Registry("method")
FRAMEWORK = ("cfg",)

# discriminators that return a reconstruction rather than a score (models/autoencoder.py)
AUTOENCODERS = ("autoencoder", "conv_autoencoder")


def resolve_method_options(cfg) -> dict[str, Any]:
    """cfg.method_options checked against cfg.method and merged over its defaults."""
    name = cfg.method
    if name not in METHOD_OPTIONS:
        raise ConfigError(
            f"method: unknown method {name!r}; valid choices: {', '.join(METHOD_OPTIONS.names())}"
        )
    given = cfg.method_options or {}
    if not isinstance(given, dict):
        raise ConfigError(f"method_options: expected a mapping of options, got {given!r}")
    valid = METHOD_OPTIONS.options(name, FRAMEWORK)
    for key in given:
        if key not in valid:
            raise ConfigError(
                f"method_options.{key}: unknown option for method {name!r}; valid options: "
                f"{', '.join(sorted(valid)) or '(none)'}. (Changing `method` keeps "
                "method_options: set both, e.g. --set method=gan --set 'method_options={}')"
            )
    options = METHOD_OPTIONS.check_options(name, given, "method_options", FRAMEWORK)
    METHOD_OPTIONS.get(name)(cfg, **options)  # ranges and fit with the recipe
    return options


def method_options(cfg) -> dict[str, Any]:
    """The resolved options a method builds itself with (resolving again is idempotent)."""
    return resolve_method_options(cfg)


# -- checks the options functions share --------------------------------------------------------
def at_least(value, low, key: str) -> None:
    if value < low:
        raise ConfigError(f"method_options.{key}: must be at least {low}, got {value}")


def in_range(value, low, high, key: str) -> None:
    if not low <= value <= high:
        raise ConfigError(f"method_options.{key}: must be in [{low}, {high}], got {value}")


def own_discriminator_loss(cfg, method: str, loss: str) -> None:
    """For a method that trains D with its own loss instead of the recipe objective's: the
    parts that change or add to the objective's loss have nothing to act on."""
    for trick in cfg.tricks:
        if trick["name"] == "label_smoothing":
            raise ConfigError(
                f"tricks: label_smoothing changes the objective's real target, but method "
                f"{method!r} trains D with its own loss ({loss}); remove it"
            )
    if cfg.objective["name"] in ("wasserstein", "wgan_gp"):
        raise ConfigError(
            f"objective.name: method {method!r} trains D with its own loss ({loss}), so "
            f"{cfg.objective['name']}'s clipping or penalty would act on a D it does not "
            "describe; use non_saturating, and add a penalty under regularizers if wanted"
        )


def one_critic_step(cfg, method: str) -> None:
    if cfg.schedule.n_critic != 1:
        raise ConfigError(
            f"schedule.n_critic: method {method!r} takes one discriminator step per generator "
            f"step, as its paper does; set schedule.n_critic=1 (got {cfg.schedule.n_critic})"
        )


def no_compile(cfg, method: str) -> None:
    if cfg.fast.enabled and cfg.fast.compile:
        raise ConfigError(f"fast.compile: method {method!r} does not support torch.compile yet")


def scoring_discriminator(cfg, method: str) -> None:
    if cfg.discriminator["name"] in AUTOENCODERS:
        raise ConfigError(
            f"discriminator.name: {cfg.discriminator['name']!r} is an autoencoder (it returns a "
            f"reconstruction, not a score); method {method!r} needs a scoring discriminator. "
            "Autoencoder discriminators are for methods began, ebgan and mmd_gan."
        )


def autoencoder_discriminator(cfg, method: str) -> None:
    if cfg.discriminator["name"] not in AUTOENCODERS:
        raise ConfigError(
            f"discriminator.name: method {method!r} needs an autoencoder discriminator "
            f"({', '.join(AUTOENCODERS)}), got {cfg.discriminator['name']!r}; replace the "
            "whole section, e.g. --set 'discriminator={name: autoencoder}'"
        )


Updates = Literal["alternating", "simultaneous"]


@METHOD_OPTIONS.register("gan")
def gan_options(cfg, updates: Updates = "alternating") -> None:
    """updates: alternating (G's gradient against the D just updated) or simultaneous (both
    players' gradients at the same point, as ALI's and PacGAN's reference code); methods/gan.py."""
    scoring_discriminator(cfg, "gan")
