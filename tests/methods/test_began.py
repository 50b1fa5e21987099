"""BEGAN: the k_t update and the convergence measure against a hand-computed sequence."""

import pytest
import torch

from gankit.methods.began import convergence, k_update, reconstruction_l1

GAMMA, LAMBDA_K = 0.5, 0.1  # a large lambda_k so that both clips are reached


def test_k_sequence_and_m_global_by_hand():
    l_real = [1.0, 2.0, 0.2, 4.0, 3.0, 0.1]
    l_fake = [0.2, 0.1, 9.0, 0.0, 1.0, 0.05]
    # k_{t+1} = clip(k_t + 0.1 (0.5 L(x) - L(G(z))), 0, 1), from k_0 = 0
    #   t=0: 0 + 0.1 (0.5 - 0.2)    = 0.03
    #   t=1: 0.03 + 0.1 (1.0 - 0.1) = 0.12
    #   t=2: 0.12 + 0.1 (0.1 - 9.0) = -0.77 -> 0
    #   t=3: 0 + 0.1 (2.0 - 0)      = 0.2
    #   t=4: 0.2 + 0.1 (1.5 - 1.0)  = 0.25
    #   t=5: 0.25 + 0.1 (0.05 - 0.05) = 0.25
    expected_k = [0.03, 0.12, 0.0, 0.2, 0.25, 0.25]
    # M = L(x) + |0.5 L(x) - L(G(z))|
    expected_m = [1.3, 2.9, 9.1, 6.0, 3.5, 0.1]
    k = torch.tensor(0.0)
    for t, (lr, lf) in enumerate(zip(l_real, l_fake)):
        lr_t, lf_t = torch.tensor(lr), torch.tensor(lf)
        m = convergence(lr_t, lf_t, GAMMA)
        k = k_update(k, lr_t, lf_t, GAMMA, LAMBDA_K)
        assert k.item() == pytest.approx(expected_k[t], abs=1e-6), t
        assert m.item() == pytest.approx(expected_m[t], abs=1e-6), t


def test_k_clips_at_one():
    k = k_update(torch.tensor(0.95), torch.tensor(2.0), torch.tensor(0.0), 1.0, 0.1)
    assert k.item() == 1.0


def test_reconstruction_l1_is_the_mean_absolute_error():
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    recon = torch.tensor([[0.0, 0.0], [0.5, 3.0]])
    assert reconstruction_l1(x, recon).item() == pytest.approx((1 + 2 + 0 + 3) / 4)
