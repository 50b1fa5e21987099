"""Fast mode: reduced precision, channels_last, fused optimizers, torch.compile.

Every fast path is checked against an independent computation: float64 penalties, PyTorch's
plain (for-loop) Adam, and the same step with fast mode off.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gankit.config import FastConfig, load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.methods import GANMethod
from gankit.methods import fast as fast_module
from gankit.methods.fast import FastMode, align_optimizer_state, resolve_precision
from gankit.regularizers import RegularizerContext
from gankit.regularizers.dragan import dragan_penalty
from gankit.regularizers.gradient_penalty import gradient_penalty
from gankit.regularizers.r1 import r1_penalty

CPU = torch.device("cpu")
SMALL_DCGAN = {  # quickstart: DCGAN with BatchNorm on 8x8 digits, shrunk
    "generator.base_channels": 8,
    "generator.latent_dim": 8,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 16,
}


def method(recipe, overrides):
    cfg = load_recipe(recipe, overrides)
    torch.manual_seed(cfg.seed)
    return GANMethod(cfg, build_dataset(cfg.data, seed=cfg.seed), CPU)


def params(m):
    return {
        f"{who}.{k}": v.detach().clone()
        for who, module in m.modules().items()
        for k, v in module.state_dict().items()
    }


# -- resolving what fast mode does --------------------------------------------------------------
def test_precision_resolution(monkeypatch):
    monkeypatch.setattr(fast_module, "cpu_has_amx", lambda: False)
    assert resolve_precision(FastConfig(), CPU) == "fp32"  # AVX-512 BF16 alone: not faster
    assert resolve_precision(FastConfig(precision="bf16"), CPU) == "bf16"
    assert resolve_precision(FastConfig(enabled=False, precision="bf16"), CPU) == "fp32"
    monkeypatch.setattr(fast_module, "cpu_has_amx", lambda: True)
    assert resolve_precision(FastConfig(), CPU) == "bf16"
    assert resolve_precision(FastConfig(precision="fp32"), CPU) == "fp32"
    # fully connected networks (2D mixtures) stay fp32 on AMX unless bf16 is asked for
    assert resolve_precision(FastConfig(), CPU, dense=True) == "fp32"
    assert resolve_precision(FastConfig(precision="bf16"), CPU, dense=True) == "bf16"


def test_disabled_fast_mode_changes_nothing():
    mode = FastMode(FastConfig(enabled=False, compile=True), CPU)
    assert (mode.dtype, mode.channels_last, mode.fused_optimizer, mode.compile) == (
        None,
        False,
        False,
        False,
    )
    assert mode.scaler is None


# -- double-backward penalties under every precision --------------------------------------------
class SmallCritic(nn.Module):
    """Conv + BatchNorm-free MLP head: smooth, so its input gradient is well defined."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 1, 1)
        self.out = nn.Linear(4 * 6 * 6, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.conv(x)).flatten(1)).squeeze(1)


PENALTIES = {
    "gradient_penalty": lambda D, real, fake, g: gradient_penalty(D, real, fake, generator=g),
    "r1": lambda D, real, fake, g: r1_penalty(D, real),
    "dragan": lambda D, real, fake, g: dragan_penalty(D, real, generator=g),
}


def penalty_and_grads(name, critic, real, fake):
    critic.zero_grad()
    value = PENALTIES[name](critic, real, fake, torch.Generator().manual_seed(5))
    value.backward()
    # the output bias does not change input gradients: no gradient reaches it
    grads = [p.grad for p in critic.parameters() if p.grad is not None]
    return value.detach().double(), [g.detach().double().clone() for g in grads]


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_penalties_on_channels_last_match_contiguous_layout(name):
    torch.manual_seed(0)
    critic = SmallCritic()
    real, fake = torch.randn(8, 1, 6, 6), torch.randn(8, 1, 6, 6)
    # same dtype as the channels_last run: the penalties' random draws depend on it
    want_value, want_grads = penalty_and_grads(name, copy.deepcopy(critic), real, fake)
    value, grads = penalty_and_grads(
        name,
        copy.deepcopy(critic).to(memory_format=torch.channels_last),
        real.contiguous(memory_format=torch.channels_last),
        fake.contiguous(memory_format=torch.channels_last),
    )
    assert torch.isclose(value, want_value, rtol=1e-5)
    for got, want in zip(grads, want_grads):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_double_backward_penalties_run_in_fp32_under_autocast(name, precision):
    """Inside the step's autocast region (G's output in reduced precision), a penalty that
    differentiates D's input gradient is computed in fp32: it equals the value computed
    without autocast from fp32 copies of the same inputs."""
    m = method(
        "quickstart",
        {**SMALL_DCGAN, "fast.precision": precision, "regularizers": [{"name": name}]},
    )
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    real, _ = m.data.batch(16)
    with m.fast.autocast():
        fake = m.generator(m.noise(16)).detach()
    assert fake.dtype == dtype
    ctx = RegularizerContext(m.discriminator, real, fake, step=0)
    torch.manual_seed(7)  # the penalties draw their random points from the global RNG
    with m.fast.autocast():
        got = m.critic.d_terms(torch.zeros(()), {}, ctx)
    torch.manual_seed(7)
    want = m.critic.d_regularizers[0](
        RegularizerContext(m.discriminator, real, fake.float(), step=0)
    )
    assert got.dtype == torch.float32
    assert torch.isclose(got, want, rtol=1e-5), (got, want)


# -- whole steps ---------------------------------------------------------------------------------
def test_channels_last_and_fused_step_matches_plain_fp32_step():
    """fast mode in fp32 (channels_last + fused Adam) does the same math as fast mode off."""
    plain = method("quickstart", {**SMALL_DCGAN, "fast.enabled": False})
    fast = method("quickstart", {**SMALL_DCGAN, "fast.precision": "fp32"})
    conv = fast.discriminator.body[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert fast.opt_d.defaults["fused"] and not plain.opt_d.defaults.get("fused")
    before = params(plain)
    assert all(torch.equal(before[k], v) for k, v in params(fast).items())
    for step in range(3):
        a, b = plain.train_step(step), fast.train_step(step)
        for key in ("d_loss", "g_loss"):
            assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    after_plain, after_fast = params(plain), params(fast)
    for k in after_plain:
        assert torch.allclose(after_plain[k], after_fast[k], rtol=1e-4, atol=1e-5), k
        if after_plain[k].is_floating_point() and "running" not in k and "weight" in k:
            assert not torch.equal(after_plain[k], before[k]), f"{k} did not train"


@pytest.mark.parametrize(
    "recipe, extra",
    [("quickstart", SMALL_DCGAN), ("ring8-wgan-gp", {"schedule.batch_size": 32})],
    ids=["dcgan", "mlp-wgan-gp"],
)
def test_bf16_step_tracks_fp32_step(recipe, extra):
    fp32 = method(recipe, {**extra, "fast.enabled": False})
    bf16 = method(recipe, {**extra, "fast.precision": "bf16"})
    assert bf16.fast.dtype is torch.bfloat16
    a, b = fp32.train_step(0), bf16.train_step(0)
    for key in ("d_loss", "g_loss"):
        assert a[key].dtype == b[key].dtype == torch.float32  # losses are kept in fp32
        assert torch.isclose(a[key], b[key], rtol=5e-2, atol=5e-2), (key, a[key], b[key])


def test_fp16_with_loss_scaling_trains_and_checkpoints_its_scaler():
    m = method("ring8-wgan-gp", {"schedule.batch_size": 32, "fast.precision": "fp16"})
    assert m.fast.scaler is not None
    for step in range(4):
        logs = m.train_step(step)
        assert all(torch.isfinite(v) for v in logs.values())
    state = m.extra_state()["fast"]["grad_scaler"]
    assert state["scale"] > 0
    other = method("ring8-wgan-gp", {"schedule.batch_size": 32, "fast.precision": "fp16"})
    other.load_extra_state(m.extra_state())
    assert other.fast.scaler.get_scale() == m.fast.scaler.get_scale()


def test_compile_refuses_double_backward_penalties():
    with pytest.raises(ConfigError, match="fast.compile"):
        method("ring8-wgan-gp", {"fast.compile": True})


@pytest.mark.slow
def test_compiled_step_matches_eager_step():
    overrides = {"schedule.batch_size": 32, "fast.precision": "fp32"}
    eager = method("ring8", overrides)
    compiled = method("ring8", {**overrides, "fast.compile": True})
    for step in range(2):
        a, b = eager.train_step(step), compiled.train_step(step)
        for key in ("d_loss", "g_loss"):
            assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    # Adam's first steps move each weight by about lr * sign(gradient): a near-zero gradient
    # that rounds differently in the compiled kernels can move by up to 2 lr per step
    lr = eager.cfg.optim.generator.lr
    for k, v in params(eager).items():
        assert torch.allclose(v, params(compiled)[k], atol=4 * lr), k


# -- the fused-Adam layout trap ------------------------------------------------------------------
def test_aligned_optimizer_state_gives_plain_adam_updates_after_a_reload():
    """A checkpoint stores Adam's moments contiguous; the weight is channels_last. Without
    align_optimizer_state, fused CPU Adam pairs them by memory position (wrong updates)."""
    torch.manual_seed(0)
    w = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    g1 = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    g2 = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)

    def run(fused, align):
        p = nn.Parameter(w.clone(memory_format=torch.preserve_format))
        opt = torch.optim.Adam([p], lr=0.1, fused=fused)
        p.grad = g1.clone(memory_format=torch.preserve_format)
        opt.step()
        saved = opt.state_dict()
        for s in saved["state"].values():  # as read back from a checkpoint file
            for k, v in s.items():
                s[k] = v.contiguous()
        opt = torch.optim.Adam([p], lr=0.1, fused=fused)
        opt.load_state_dict(saved)
        if align:
            align_optimizer_state(opt)
        p.grad = g2.clone(memory_format=torch.preserve_format)
        opt.step()
        return p.detach()

    reference = run(fused=False, align=False)  # PyTorch's for-loop Adam indexes correctly
    assert torch.allclose(run(fused=True, align=True), reference, atol=1e-6)


def test_dense_only_reads_the_recipes_model_names():
    from gankit.config import load_recipe
    from gankit.methods.fast import dense_only

    assert dense_only(load_recipe("ring8"))
    assert dense_only(load_recipe("ring8-ebgan"))  # MLP autoencoder D
    assert not dense_only(load_recipe("dcgan-fashion-mnist"))
    assert not dense_only(load_recipe("stacked-digits"))
