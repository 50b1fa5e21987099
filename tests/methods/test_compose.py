"""Every stabilization part under every method that has the player it attaches to.

For each (method, trick) and (method, regularizer) pair: a run of 2N steps and a run of N steps
resumed for N more end bit-identical, and the part changed training (the final state differs
from the same method without it). A pair that means nothing is refused before anything runs,
with one line that says why.
"""

from __future__ import annotations

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.api import prepare
from gankit.errors import ConfigError
from gankit.training.distributed import shard_method_streams

N = 2  # steps before and after the resume

SMALL_DCGAN = {
    "generator.base_channels": 8,
    "generator.latent_dim": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 16,
}
SMALL_MLP = {
    "generator.hidden": 16,
    "generator.depth": 2,
    "discriminator.hidden": 16,
    "discriminator.depth": 2,
    "schedule.batch_size": 16,
}
# label smoothing needs real/fake targets, which the preset's hinge loss has not
CONDITIONAL = {**SMALL_DCGAN, "objective.name": "non_saturating"}
TRANSLATION = {
    "generator.base_channels": 4,
    "discriminator.base_channels": 4,
    "schedule.batch_size": 4,
}
# method -> (preset, overrides): tiny networks, a few steps
METHODS = {
    "gan": ("ring8", SMALL_MLP),
    "pacgan": ("ring8-pacgan4", SMALL_MLP),
    "cgan": ("cgan-digits", {**CONDITIONAL, "method_options.embed_dim": 4}),
    "unrolled": ("ring8-unrolled", {**SMALL_MLP, "method_options.unroll_steps": 2}),
    "lapgan": (
        "lapgan-digits",
        {**SMALL_MLP, "method_options.level_width": 4, "generator.latent_dim": 96},
    ),
    "mrgan": ("ring8-mrgan", SMALL_MLP),
    "mdgan": ("ring8-mdgan", SMALL_MLP),
    "ssl": (
        "ssl-digits",
        {
            "schedule.batch_size": 16,
            "method_options.labeled_batch": 16,
            "method_options.fake_batch": 16,
            "method_options.init_batch": 32,
        },
    ),
    "began": ("ring8-began", SMALL_MLP),
    "ebgan": ("ring8-ebgan", SMALL_MLP),
    "mmd_gan": ("ring8-mmd-gan", SMALL_MLP),
    "gmmn": (
        "ring8-gmmn",
        {"generator.hidden": 16, "generator.depth": 2, "schedule.batch_size": 16},
    ),
    "adagan": (
        "adagan-ring8",
        {
            **SMALL_MLP,
            "method_options": {"rounds": 2, "steps_per_round": 2, "classifier_steps": 1},
        },
    ),
    "madgan": ("ring8-madgan", {**SMALL_MLP, "method_options.k": 2}),
    "madgan-sim": (
        "ring8-madgan",
        {**SMALL_MLP, "method_options": {"k": 2, "variant": "sim"}},
    ),
    "pix2pix": ("pix2pix-digits-edges", {**TRANSLATION, "generator.depth": 2}),
    "composite": ("composite-digits-unwarp", {**TRANSLATION, "generator.depth": 2}),
    "cyclegan": (
        "cyclegan-digits-invert",
        {
            **TRANSLATION,
            "generator.n_blocks": 1,
            "method_options.pool_size": 2,
            # a learning-rate decay that does not depend on schedule.steps, which differ
            # between the interrupted and the uninterrupted run
            "method_options.decay_start": 100,
            "method_options.decay_steps": 100,
        },
    ),
    "simgan": (
        "simgan-digits",
        {
            **TRANSLATION,
            "generator.n_blocks": 1,
            "method_options.pretrain_refiner": 0,
            "method_options.pretrain_discriminator": 0,
            "method_options.buffer_size": 8,
        },
    ),
    "acgan": (
        "cgan-digits",
        {**CONDITIONAL, "method": "acgan", "method_options": {"embed_dim": 4}},
    ),
}

TRICKS = {
    "spectral_norm": {"name": "spectral_norm"},
    "spectral_norm_g": {"name": "spectral_norm", "players": "both"},
    "label_smoothing": {"name": "label_smoothing", "real_range": [0.7, 1.0]},
    "instance_noise": {"name": "instance_noise", "std": 0.5, "anneal_steps": 100},
    "historical_averaging": {"name": "historical_averaging", "weight": 0.5},
    "feature_matching": {"name": "feature_matching", "adversarial": True},
    "minibatch_discrimination": {
        "name": "minibatch_discrimination",
        "num_kernels": 4,
        "kernel_dim": 3,
    },
    "minibatch_stddev": {"name": "minibatch_stddev"},
    "virtual_batch_norm": {"name": "virtual_batch_norm", "reference_size": 8},
}
REGULARIZERS = {
    "r1": {"name": "r1", "weight": 1.0},
    "r2": {"name": "r2", "weight": 1.0},
    "gradient_penalty": {"name": "gradient_penalty", "weight": 1.0},
    "dragan": {"name": "dragan", "weight": 1.0},
    "pull_away": {"name": "pull_away", "weight": 1.0, "features": "samples"},
}

# (method, part) -> a phrase of the one-line reason it is refused
PATCH = "scores something else (e.g. a map of patches)"
OWN_LOSS = "trains D with its own loss"
NO_NOISE = "has no latent noise"
AE_OUT = "output layer scores a feature vector"
NO_D = "gmmn has no discriminator"
REFUSED = {
    ("adagan", "virtual_batch_norm"): "not supported under method 'adagan'",
    **{(m, "label_smoothing"): OWN_LOSS for m in ("began", "ebgan", "mmd_gan")},
    **{
        (m, t): AE_OUT
        for m in ("began", "ebgan", "mmd_gan")
        for t in ("minibatch_discrimination", "minibatch_stddev")
    },
    ("mmd_gan", "spectral_norm"): "fight its weight clipping",
    ("mmd_gan", "spectral_norm_g"): "fight its weight clipping",
    **{("mmd_gan", r): "outputs codes" for r in ("r1", "r2", "gradient_penalty", "dragan")},
    **{("gmmn", p): NO_D for p in [*TRICKS, *REGULARIZERS] if p != "virtual_batch_norm"},
    ("ssl", "feature_matching"): "already minimizes feature matching",
    ("ssl", "virtual_batch_norm"): "does not apply to method 'ssl'",
    # the preset's weight-normalized classifier has no plain Linear layer or output layer
    ("ssl", "spectral_norm"): "has no Linear or conv layer",
    ("ssl", "spectral_norm_g"): "has no Linear or conv layer",
    ("ssl", "minibatch_discrimination"): "output layer scores a feature vector",
    ("ssl", "minibatch_stddev"): "output layer scores a feature vector",
    **{
        ("lapgan", t): "not supported under method 'lapgan'"
        for t in ("minibatch_discrimination", "minibatch_stddev", "virtual_batch_norm")
    },
    ("madgan", "label_smoothing"): OWN_LOSS,
    ("madgan-sim", "label_smoothing"): OWN_LOSS,
    ("madgan", "virtual_batch_norm"): "not supported under method 'madgan'",
    ("madgan-sim", "virtual_batch_norm"): "not supported under method 'madgan'",
    **{
        (m, t): reason
        for m in ("pix2pix", "composite", "cyclegan", "simgan")
        for t, reason in (
            ("minibatch_discrimination", PATCH),
            ("minibatch_stddev", PATCH),
            ("virtual_batch_norm", NO_NOISE),
        )
    },
}


def overrides(method: str, part: str | None, fast_overrides) -> tuple[str, dict]:
    preset, extra = METHODS[method]
    over = {**fast_overrides, **extra, "logging.every": 1}
    if part in TRICKS:
        over["tricks"] = [TRICKS[part]]
    elif part in REGULARIZERS:
        over["regularizers"] = [REGULARIZERS[part]]
    return preset, over


def train(tmp_path, name, preset, over, steps):
    return gankit.train(preset, {**over, "schedule.steps": steps}, out=tmp_path / name)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """Each method's final state after 2N steps without any part (computed once)."""
    cache: dict[str, dict] = {}

    def get(method: str, fast_overrides) -> dict:
        if method not in cache:
            preset, over = overrides(method, None, fast_overrides)
            run = train(tmp_path_factory.mktemp(method), "plain", preset, over, 2 * N)
            cache[method] = final_state(run)
        return cache[method]

    return get


PAIRS = [(m, p) for m in METHODS for p in [*TRICKS, *REGULARIZERS]]


@pytest.mark.parametrize("method, part", PAIRS, ids=[f"{m}-{p}" for m, p in PAIRS])
def test_part_under_method(tmp_path, fast_overrides, baselines, method, part):
    preset, over = overrides(method, part, fast_overrides)
    if (method, part) in REFUSED:
        with pytest.raises(ConfigError) as info:
            prepare(gankit.load_recipe(preset, over), out=tmp_path / "refused")
        message = str(info.value)
        assert REFUSED[(method, part)] in message
        assert "\n" not in message.strip(), message
        assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
        return
    full = train(tmp_path, "full", preset, over, 2 * N)
    train(tmp_path, "half", preset, over, N)
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * N})
    a, b = final_state(full), final_state(resumed)
    for key in ("modules", "optimizers", "method"):
        assert_same(a[key], b[key], key, skip=("rng",))
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # the part took part: training went elsewhere than without it
    plain = baselines(method, fast_overrides)["modules"]
    changed = any(
        k not in plain.get(name, {}) or not torch.equal(v, plain[name][k])
        for name, module in a["modules"].items()
        for k, v in module.items()
    )
    assert changed, f"{part} left {method}'s training unchanged"
    if part in REGULARIZERS:  # its term was logged
        keys = {k for line in full.metrics() for k in line}
        assert any(k.startswith("reg/") for k in keys), keys


@pytest.mark.parametrize("method", ["cgan", "pix2pix"])
def test_generator_with_spectral_norm_is_rebuilt_for_sampling(tmp_path, fast_overrides, method):
    """A run whose generator was spectrally normalized under a method with its own sampler
    module (conditional G, translator): the G rebuilt from its recipe has the normalized
    layers, so the checkpoint loads into it (a strict key check) and samples."""
    preset, over = overrides(method, "spectral_norm_g", fast_overrides)
    run = train(tmp_path, "run", preset, over, 2)
    G = run.generator(ema=False)
    assert any("parametrizations" in k for k in G.state_dict())
    trained = run.sample(4, seed=3, ema=False)
    assert trained.shape[0] == 4 and torch.isfinite(trained).all()


def test_adagan_resumes_mid_round_with_the_round_s_trick_state(tmp_path, fast_overrides):
    """Historical averaging follows AdaGAN's round: a run resumed in the middle of round 1
    (its generator G_1, a fresh D) ends as the uninterrupted run does."""
    over = {
        **fast_overrides,
        **SMALL_MLP,
        "method_options": {"rounds": 2, "steps_per_round": 4, "classifier_steps": 1},
        "tricks": [{"name": "historical_averaging", "weight": 0.5}],
        "logging.every": 1,
    }
    full = train(tmp_path, "full", "adagan-ring8", over, 8)
    train(tmp_path, "half", "adagan-ring8", over, 6)  # round 1 started at step 5
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 8})
    a, b = final_state(full), final_state(resumed)
    for key in ("modules", "optimizers", "method"):
        assert_same(a[key], b[key], key, skip=("rng",))
    assert a["method"]["round"] == 1


@pytest.mark.parametrize(
    "method, streams",
    [("cyclegan", 2), ("lapgan", 1 + 2), ("mdgan", 1 + 2)],
    ids=["cyclegan-two-critics", "lapgan-a-critic-per-level", "mdgan-two-critics"],
)
def test_data_parallel_sharding_reaches_every_critic_s_tricks(
    tmp_path, fast_overrides, method, streams
):
    """Under torchrun each per-sample random stream draws the global batch and keeps this
    rank's rows: the latent noise and the tricks of every discriminator's critic (one
    instance-noise trick each here: CycleGAN's two, LAPGAN's two levels, MDGAN's two Ds)."""
    preset, over = overrides(method, "instance_noise", fast_overrides)
    trainer = prepare(gankit.load_recipe(preset, {**over, "schedule.steps": 1}), out=tmp_path / "r")
    assert shard_method_streams(trainer.method, 1, 2) == streams
    critics = [v for v in vars(trainer.method).values() if type(v).__name__ == "Critic"]
    critics += getattr(trainer.method, "critics", [])
    assert len(critics) == 2
    assert all(c.tricks[0].rank == 1 and c.tricks[0].world == 2 for c in critics)
