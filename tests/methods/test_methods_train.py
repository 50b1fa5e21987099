"""Every method of issue 5 trains end to end through gankit.train, and a resumed run ends
bit-identical to an uninterrupted one (CPU), method state (BEGAN's k_t) included."""

import math

import pytest
import torch
from state_equality import assert_same, final_state

import gankit

SMALL_G = {"generator.hidden": 16, "generator.depth": 2, "schedule.batch_size": 16}
SMALL_MLP_D = {"discriminator.hidden": 16, "discriminator.depth": 2}
SMALL_AE_D = {"discriminator.hidden": 16, "discriminator.code_dim": 4}
CASES = {
    "ring8-pacgan4": SMALL_MLP_D,
    "ring8-unrolled": {**SMALL_MLP_D, "method_options.unroll_steps": 2},
    "ring8-began": SMALL_AE_D,
    "ring8-ebgan": SMALL_AE_D,
    "ring8-gmmn": {},
    "ring8-mmd-gan": {**SMALL_AE_D, "schedule.n_critic": 2},
}
EXTRA_LOGS = {
    "ring8-began": {"k", "m_global", "l_real", "l_fake"},
    "ring8-ebgan": {"e_real", "e_fake", "pull_away"},
    "ring8-gmmn": {"mmd2"},
    "ring8-mmd-gan": {"mmd2", "ae"},
}


@pytest.mark.parametrize("preset", list(CASES))
def test_trains_and_resumes_exactly(tmp_path, fast_overrides, preset):
    n = 3
    base = {**fast_overrides, "logging.every": 1, **SMALL_G, **CASES[preset]}
    full = gankit.train(preset, {**base, "schedule.steps": 2 * n}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["step"] for m in lines] == list(range(1, 2 * n + 1))
    for line in lines:
        for key in ("d_loss", "g_loss", *EXTRA_LOGS.get(preset, ())):
            assert math.isfinite(line[key]), (key, line)

    gankit.train(preset, {**base, "schedule.steps": n}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 2 * n})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert [(m["d_loss"], m["g_loss"]) for m in lines] == [
        (m["d_loss"], m["g_loss"]) for m in resumed.metrics()
    ]
    if preset == "ring8-began":
        assert "k" in a["method"]
        assert a["method"]["k"].item() == pytest.approx(lines[-1]["k"])


def test_began_k_resumes_from_the_checkpoint(tmp_path, fast_overrides):
    """A resumed BEGAN run continues from the checkpointed k_t, not from k_init."""
    base = {**fast_overrides, "logging.every": 1, **SMALL_G, **SMALL_AE_D}
    base["method_options.k_init"] = 0.5
    base["method_options.lambda_k"] = 0.1  # k moves visibly in a few steps
    run = gankit.train("ring8-began", {**base, "schedule.steps": 2}, out=tmp_path / "r")
    k_saved = final_state(run)["method"]["k"].item()
    assert 0 < k_saved < 1 and k_saved != 0.5
    resumed = gankit.resume(tmp_path / "r", {"schedule.steps": 3})
    line = resumed.metrics()[-1]
    # k_3 = clip(k_2 + 0.1 (0.5 L(x) - L(G(z))), 0, 1) with the logged losses of step 3
    expected = min(1.0, max(0.0, k_saved + 0.1 * (0.5 * line["l_real"] - line["l_fake"])))
    assert line["k"] == pytest.approx(expected, abs=1e-6)
