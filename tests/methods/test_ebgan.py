"""EBGAN: energies and losses against the formulas, the pull-away term written as a loop."""

import math

import pytest
import torch

from gankit.methods.ebgan import ebgan_d_loss, ebgan_g_loss, energy


def test_energy_is_the_per_sample_mean_squared_error():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    recon = torch.tensor([[1.0, 0.0], [3.0, -1.0]])
    assert energy(x, recon).tolist() == pytest.approx([(0 + 4) / 2, (9 + 0) / 2])


def test_d_loss_margin_by_hand():
    e_real = torch.tensor([0.1, 0.3])
    e_fake = torch.tensor([0.2, 1.5, 0.9])  # below, above and just below margin 1
    # mean D(x) + mean max(0, m - D(G(z))) = 0.2 + (0.8 + 0 + 0.1) / 3
    assert ebgan_d_loss(e_real, e_fake, 1.0).item() == pytest.approx(0.2 + 0.9 / 3)
    # margin 0: only the real energy counts
    assert ebgan_d_loss(e_real, e_fake, 0.0).item() == pytest.approx(0.2)


def test_g_loss_with_pull_away_by_hand():
    e_fake = torch.tensor([0.5, 1.5, 1.0])
    codes = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    n = len(codes)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                a, b = codes[i].tolist(), codes[j].tolist()
                cos = (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))
                total += cos**2
    pt = total / (n * (n - 1))  # cos^2: (1,2): 1/2, (1,3): 0, (2,3): 1/2 -> 2 / 6
    assert pt == pytest.approx(1 / 3)
    assert ebgan_g_loss(e_fake, codes, 0.1).item() == pytest.approx(1.0 + 0.1 * pt)
    assert ebgan_g_loss(e_fake, codes, 0.0).item() == pytest.approx(1.0)
