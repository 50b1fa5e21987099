"""schedule.lr_decay_start / lr_decay_steps: the rates each update uses, resume, and errors."""

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.api import prepare
from gankit.errors import ConfigError, GankitError
from gankit.methods.lr_decay import StepDecay

SMALL_MLP = {
    "generator.hidden": 16,
    "generator.depth": 2,
    "discriminator.hidden": 8,
    "discriminator.depth": 2,
    "schedule.batch_size": 16,
}


def rates_per_update(tmp_path, overrides: dict) -> dict[str, list[float]]:
    """Train ring8 and record the rate of every optimizer.step() call, by optimizer."""
    trainer = prepare("ring8", overrides, out=tmp_path / "r")
    seen: dict[str, list[float]] = {}
    for name, opt in trainer.method.optimizers().items():
        step = opt.step

        def recording(*args, _step=step, _name=name, _opt=opt, **kwargs):
            seen.setdefault(_name, []).append(_opt.param_groups[0]["lr"])
            return _step(*args, **kwargs)

        opt.step = recording
    trainer.fit()
    return seen


def test_each_update_uses_the_hand_computed_rate(tmp_path, fast_overrides):
    over = {
        **fast_overrides,
        **SMALL_MLP,
        "schedule.steps": 6,
        "schedule.n_critic": 2,
        "schedule.lr_decay_start": 2,
        "schedule.lr_decay_steps": 3,
        "optim.generator.lr": 1e-3,
        "optim.discriminator.lr": 4e-3,
    }
    seen = rates_per_update(tmp_path, over)
    # 2 steps at the rate, then 1 - 1/4, 1 - 2/4, 1 - 3/4, and 0 once the 3 decaying steps end
    factors = [1, 1, 0.75, 0.5, 0.25, 0]
    assert seen["generator"] == pytest.approx([1e-3 * f for f in factors])
    # both critic updates of a step share the step's rate
    assert seen["discriminator"] == pytest.approx([4e-3 * f for f in factors for _ in (0, 1)])


def test_the_decay_runs_to_the_end_by_default_and_is_logged(tmp_path, fast_overrides):
    over = {
        **fast_overrides,
        **SMALL_MLP,
        "logging.every": 1,
        "schedule.steps": 4,
        "schedule.lr_decay_start": 0,
        "optim.generator.lr": 1e-3,
    }
    seen = rates_per_update(tmp_path, over)
    assert seen["generator"] == pytest.approx([1e-3 * f for f in (0.8, 0.6, 0.4, 0.2)])
    logged = [m["lr_factor"] for m in gankit.open_run(tmp_path / "r").metrics()]
    assert logged == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_no_decay_leaves_the_rates_alone(tmp_path, fast_overrides):
    over = {**fast_overrides, **SMALL_MLP, "schedule.steps": 3, "optim.generator.lr": 1e-3}
    assert rates_per_update(tmp_path, over)["generator"] == pytest.approx([1e-3] * 3)


def test_the_guard_scale_multiplies_the_decayed_rate():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    decay = StepDecay({"g": opt}, start=1, length=1)
    opt.param_groups[0]["lr"] = 0.05  # a rollback scaled it: the recipe's rate still counts
    decay.apply(1, lr_scale=0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 * 0.5)


def test_a_decay_added_on_resume_equals_the_same_recipe_from_scratch(tmp_path, fast_overrides):
    n = 8
    base = {**fast_overrides, **SMALL_MLP}
    decayed = {"schedule.steps": 2 * n, "schedule.lr_decay_start": n}
    full = gankit.train("ring8", {**base, **decayed}, out=tmp_path / "full")
    gankit.train("ring8", {**base, "schedule.steps": n}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", decayed)
    a, b = final_state(full), final_state(resumed)
    assert_same(a["modules"], b["modules"], "modules", skip=("rng",))
    assert_same(a["optimizers"], b["optimizers"], "optimizers", skip=("rng",))
    # the saved recipe is the decayed one, and the decay did change the run
    assert resumed.config.schedule.lr_decay_start == n
    constant = gankit.train("ring8", {**base, "schedule.steps": 2 * n}, out=tmp_path / "const")
    g_const = final_state(constant)["modules"]["generator"]
    assert any(not torch.equal(g_const[k], a["modules"]["generator"][k]) for k in g_const)


@pytest.mark.parametrize(
    "overrides, step",
    [
        ({"schedule.steps": 20}, 5),  # the default length grows: step 5 decays less
        ({"schedule.lr_decay_start": 3}, 3),  # moved before the checkpoint
        ({"schedule.lr_decay_start": 20, "schedule.steps": 30}, 5),  # removed where it ran
    ],
)
def test_resume_refuses_to_change_a_trained_steps_rate(tmp_path, fast_overrides, overrides, step):
    over = {**fast_overrides, **SMALL_MLP, "schedule.steps": 10, "schedule.lr_decay_start": 5}
    gankit.train("ring8", over, out=tmp_path / "r")
    saved = (tmp_path / "r" / "config.yaml").read_text()
    with pytest.raises(GankitError, match=f"learning rate of step {step},"):
        gankit.resume(tmp_path / "r", overrides)
    assert (tmp_path / "r" / "config.yaml").read_text() == saved  # nothing rewritten


def test_resume_may_grow_the_run_when_the_decay_length_is_kept(tmp_path, fast_overrides):
    over = {**fast_overrides, **SMALL_MLP, "schedule.steps": 10, "schedule.lr_decay_start": 5}
    gankit.train("ring8", over, out=tmp_path / "r")
    run = gankit.resume(tmp_path / "r", {"schedule.steps": 12, "schedule.lr_decay_steps": 5})
    assert run.result["step"] == 12


def test_recipe_errors(tmp_path, fast_overrides):
    with pytest.raises(ConfigError, match="set schedule.lr_decay_start too"):
        gankit.load_recipe("ring8", {"schedule.lr_decay_steps": 5})
    with pytest.raises(ConfigError, match="schedule.lr_decay_start: must be >= 0"):
        gankit.load_recipe("ring8", {"schedule.lr_decay_start": -1})
    with pytest.raises(ConfigError, match="schedule.lr_decay_steps: must be at least 1"):
        gankit.load_recipe("ring8", {"schedule.lr_decay_start": 0, "schedule.lr_decay_steps": 0})
    tiny = {
        **fast_overrides,
        "generator.base_channels": 4,
        "generator.n_blocks": 1,
        "discriminator.base_channels": 4,
        "schedule.batch_size": 4,
        "schedule.lr_decay_start": 2,
    }
    with pytest.raises(ConfigError, match="decays its learning rates itself"):
        prepare("cyclegan-digits-invert", tiny, out=tmp_path / "c")
