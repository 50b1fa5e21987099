"""method / method_options in recipes: names, options, defaults and clear errors."""

import pytest
import yaml

from gankit.config import RunConfig, from_dict, load_recipe, resolve
from gankit.errors import ConfigError
from gankit.methods import METHOD_OPTIONS, METHODS

NEW_PRESETS = {
    "ring8-pacgan4": ("pacgan", "Lin et al. 2018"),
    "ring8-unrolled": ("unrolled", "Metz et al. 2017"),
    "ring8-began": ("began", "Berthelot et al. 2017"),
    "ring8-ebgan": ("ebgan", "Zhao et al. 2017"),
    "ring8-gmmn": ("gmmn", "Li et al. 2015"),
    "ring8-mmd-gan": ("mmd_gan", "Li et al. 2017"),
}


def error(recipe, overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe, overrides)
    return str(info.value)


def test_every_method_has_an_options_function():
    assert set(METHODS) == set(METHOD_OPTIONS.names())


@pytest.mark.parametrize("preset", list(NEW_PRESETS))
def test_presets_name_their_method_and_paper(preset):
    method, paper = NEW_PRESETS[preset]
    cfg = load_recipe(preset)
    assert cfg.method == method
    assert paper in cfg.source
    # the saved config lists every option and loads back to the same one
    again = resolve(from_dict(RunConfig, yaml.safe_load(cfg.to_yaml())))
    assert again.to_dict() == cfg.to_dict()
    assert set(again.method_options) == set(METHOD_OPTIONS.options(method, ("cfg",)))


def test_defaults_are_filled_in():
    cfg = load_recipe("ring8", {"method": "unrolled"})
    assert cfg.method_options == {
        "unroll_steps": 5,
        "second_order": True,
        "generator_loss": "objective",
    }
    assert load_recipe("ring8").method_options == {"updates": "alternating"}


def test_unknown_method_lists_the_valid_ones():
    msg = error("ring8", {"method": "vae"})
    assert msg.startswith("method: unknown method 'vae'")
    for name in METHODS:
        assert name in msg


def test_unknown_option_lists_the_valid_ones():
    msg = error("ring8-unrolled", {"method_options.unrolling": 3})
    assert msg.startswith("method_options.unrolling: unknown option for method 'unrolled'")
    assert "unroll_steps" in msg and "second_order" in msg
    assert error("ring8", {"method_options.pack": 2}).startswith("method_options.pack:")


@pytest.mark.parametrize(
    "preset, key, value, start",
    [
        ("ring8-unrolled", "method_options.unroll_steps", "five", "method_options.unroll_steps:"),
        ("ring8-unrolled", "method_options.unroll_steps", -1, "method_options.unroll_steps:"),
        ("ring8-unrolled", "method_options.generator_loss", "x", "method_options.generator_loss:"),
        ("ring8-unrolled", "schedule.n_critic", 2, "schedule.n_critic:"),
        ("ring8-madgan", "objective", {"name": "wgan_gp"}, "objective.name:"),
        ("ring8-madgan", "tricks", [{"name": "label_smoothing"}], "tricks:"),
        ("ring8-pacgan4", "method_options.pack", 0, "method_options.pack:"),
        ("ring8-pacgan4", "schedule.batch_size", 30, "method_options.pack:"),
        ("ring8-began", "method_options.gamma", 1.5, "method_options.gamma:"),
        ("ring8-began", "discriminator", {"name": "mlp"}, "discriminator.name:"),
        ("ring8-ebgan", "method_options.margin", -1, "method_options.margin:"),
        ("ring8-gmmn", "method_options.sigmas", [1.0, 0.0], "method_options.sigmas:"),
        ("ring8-gmmn", "method_options.estimator", "fast", "method_options.estimator:"),
        ("ring8-mmd-gan", "method_options.clip", 0, "method_options.clip:"),
        ("ring8", "discriminator", {"name": "autoencoder"}, "discriminator.name:"),
        ("ring8", "method_options", 3, "method_options:"),
    ],
)
def test_bad_values_name_the_key(preset, key, value, start):
    assert error(preset, {key: value}).startswith(start)
