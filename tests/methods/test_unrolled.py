"""Unrolled GAN: the unrolled generator gradient against a hand-unrolled computation, and the
functional optimizer rules against torch's optimizers."""

import pytest
import torch
from state_equality import final_state
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

import gankit
from gankit.errors import ConfigError
from gankit.methods.unrolled import FunctionalOptimizer, unroll

LR = 0.3


def tiny_players(seed=0):
    torch.manual_seed(seed)
    G, D = nn.Linear(1, 1), nn.Linear(1, 1)
    x = torch.randn(8, 1) * 0.5 + 1.0  # real batch
    z = torch.randn(8, 1)
    return G, D, x, z


def ns_d_loss(d_real, d_fake):  # the non-saturating / minimax discriminator loss, by hand
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def hand_unrolled_grads(G, D, x, z, k, second_order, momentum, buf=None):
    """G's gradient of -log sigmoid(D_k(G(z))), with D_k written out: SGD steps
    p <- p - lr * b, b <- momentum * b + g (b = g on the first step without a buffer)."""
    a, b = G.weight, G.bias
    fake = z @ a.T + b
    w = D.weight.detach().clone().requires_grad_(True)
    c = D.bias.detach().clone().requires_grad_(True)
    bufs = None if buf is None else [t.clone() for t in buf]
    for _ in range(k):
        f = fake if second_order else fake.detach()
        loss = ns_d_loss(x @ w.T + c, f @ w.T + c)
        gw, gc = torch.autograd.grad(loss, (w, c), create_graph=second_order)
        if momentum:
            bufs = [gw, gc] if bufs is None else [momentum * bufs[0] + gw, momentum * bufs[1] + gc]
            gw, gc = bufs
        w, c = w - LR * gw, c - LR * gc
        if not second_order:
            w, c = w.detach().requires_grad_(True), c.detach().requires_grad_(True)
            bufs = None if bufs is None else [t.detach() for t in bufs]
    g_loss = F.softplus(-(fake @ w.T + c)).mean()
    return torch.autograd.grad(g_loss, (a, b))


def library_unrolled_grads(G, D, opt, x, z, k, second_order):
    fake = G(z)
    target = fake if second_order else fake.detach()

    def loss_fn(params, buffers):
        return ns_d_loss(
            functional_call(D, (params, buffers), (x,)).squeeze(1),
            functional_call(D, (params, buffers), (target,)).squeeze(1),
        )

    params, buffers = unroll(D, opt, loss_fn, k, second_order)
    d_fake = functional_call(D, (params, buffers), (fake,)).squeeze(1)
    g_loss = F.softplus(-d_fake).mean()
    return torch.autograd.grad(g_loss, (G.weight, G.bias))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("second_order", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_unrolled_generator_gradient_equals_hand_unrolled(k, second_order, momentum):
    G, D, x, z = tiny_players()
    opt = torch.optim.SGD(D.parameters(), lr=LR, momentum=momentum)
    buf = None
    if momentum:  # give the optimizer a momentum history the unrolling must start from
        ns_d_loss(D(x).squeeze(1), D(G(z).detach()).squeeze(1)).backward()
        opt.step()
        opt.zero_grad()
        buf = [opt.state[D.weight]["momentum_buffer"], opt.state[D.bias]["momentum_buffer"]]
    before = [p.detach().clone() for p in D.parameters()]
    expected = hand_unrolled_grads(G, D, x, z, k, second_order, momentum, buf)
    got = library_unrolled_grads(G, D, opt, x, z, k, second_order)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    # unrolling leaves the real discriminator and its optimizer alone
    assert all(torch.equal(p, q) for p, q in zip(D.parameters(), before))
    if momentum:
        assert torch.equal(opt.state[D.weight]["momentum_buffer"], buf[0])


@pytest.mark.parametrize("k", [1, 2])
def test_second_order_differs_from_first_order(k):
    G, D, x, z = tiny_players(1)
    opt = torch.optim.SGD(D.parameters(), lr=LR)
    first = library_unrolled_grads(G, D, opt, x, z, k, False)
    second = library_unrolled_grads(G, D, opt, x, z, k, True)
    assert not torch.allclose(first[0], second[0], rtol=1e-4)


def test_zero_steps_is_the_plain_generator_gradient():
    G, D, x, z = tiny_players(2)
    opt = torch.optim.SGD(D.parameters(), lr=LR)
    got = library_unrolled_grads(G, D, opt, x, z, 0, True)
    expected = torch.autograd.grad(F.softplus(-D(G(z))).mean(), (G.weight, G.bias))
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.05),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    ],
    ids=["adam", "sgd-momentum", "sgd", "rmsprop-momentum", "rmsprop"],
)
def test_functional_rules_match_torch_optimizers(make):
    """Starting from an optimizer with two steps of history, three functional steps give the
    parameters three real steps give."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = make(net.parameters())
    data = [torch.randn(5, 3) for _ in range(5)]

    def loss_at(params, x):
        return functional_call(net, params, (x,)).pow(2).mean()

    for x in data[:2]:
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    named = dict(net.named_parameters())
    rule = FunctionalOptimizer(opt, named)  # state copied from the optimizer here
    params = {k: p.detach().clone().requires_grad_(True) for k, p in named.items()}
    for x in data[2:]:
        grads = torch.autograd.grad(loss_at(params, x), list(params.values()))
        params = rule.step(params, dict(zip(params, grads)))
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(params[name], p.detach(), rtol=1e-5, atol=1e-7)


def test_adam_second_order_is_finite_where_gradients_vanish():
    """A parameter whose gradient is exactly 0 (v = 0 in Adam) must not turn the
    differentiated update into NaN (sqrt'(0) is infinite)."""
    G, D, x, z = tiny_players(3)
    D2 = nn.Linear(1, 2)  # its second output is unused: zero gradients
    opt = torch.optim.Adam(D2.parameters(), lr=0.01)
    fake = G(z)

    def loss_fn(params, buffers):
        out = functional_call(D2, (params, buffers), (x,))[:, 0]
        out_fake = functional_call(D2, (params, buffers), (fake,))[:, 0]
        return ns_d_loss(out, out_fake)

    params, _ = unroll(D2, opt, loss_fn, 2, True)
    g_loss = F.softplus(-functional_call(D2, params, (fake,))[:, 0]).mean()
    grads = torch.autograd.grad(g_loss, (G.weight, G.bias))
    assert all(torch.isfinite(g).all() for g in grads)


def test_unsupported_optimizer_is_refused():
    net = nn.Linear(1, 1)
    with pytest.raises(ConfigError, match="amsgrad"):
        FunctionalOptimizer.check(torch.optim.Adam(net.parameters(), amsgrad=True))
    with pytest.raises(ConfigError, match="Adam, SGD and RMSprop"):
        FunctionalOptimizer.check(torch.optim.Adagrad(net.parameters()))


@pytest.mark.parametrize(
    "part",
    [
        {"regularizers": [{"name": "r1", "weight": 5.0}]},
        {"tricks": [{"name": "label_smoothing", "real": 0.5}]},
    ],
    ids=["r1", "label_smoothing"],
)
def test_parts_act_inside_the_unrolled_steps(tmp_path, fast_overrides, part):
    """G's first update depends on D only through the unrolled copies (D's own step comes
    after it), so a part that changes G's first update acted inside the unrolled steps."""
    base = {
        **fast_overrides,
        "generator.hidden": 16,
        "generator.depth": 2,
        "discriminator.hidden": 16,
        "discriminator.depth": 2,
        "schedule.batch_size": 16,
        "schedule.steps": 1,
        "method_options.unroll_steps": 3,
    }
    plain = gankit.train("ring8-unrolled", base, out=tmp_path / "plain")
    with_part = gankit.train("ring8-unrolled", {**base, **part}, out=tmp_path / "part")
    g_plain = final_state(plain)["modules"]["generator"]
    g_part = final_state(with_part)["modules"]["generator"]
    assert any(not torch.equal(v, g_part[k]) for k, v in g_plain.items())
    # and with no unrolled steps, G's first update does not see the part at all
    flat = {**base, "method_options.unroll_steps": 0}
    a = gankit.train("ring8-unrolled", flat, out=tmp_path / "flat")
    b = gankit.train("ring8-unrolled", {**flat, **part}, out=tmp_path / "flat-part")
    ga, gb = final_state(a)["modules"]["generator"], final_state(b)["modules"]["generator"]
    assert all(torch.equal(v, gb[k]) for k, v in ga.items())
