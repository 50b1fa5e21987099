"""Stacked MNIST mode counting (Metz et al. 2017, "Unrolled GANs"; Lin et al. 2018, PacGAN).

Three MNIST digits stacked as RGB channels give 1000 modes; a pretrained classifier reads each
channel, and mode = 100 a + 10 b + c. The number of modes hit and the KL of the empirical mode
histogram from uniform measure how much of the 1000-way mixture a generator covers.
"""

from __future__ import annotations

import numpy as np
import torch

from gankit.metrics.modes import reverse_kl_to_uniform

N_MODES = 1000
# A stacked sample is high quality when the classifier gives each of its three channels at least
# this probability (gankit's choice, the stacked analogue of the 2D protocol's "within 3 std of
# a mode"): the mode count alone credits blurred or noisy channels with whatever digit they
# resemble most.
CONFIDENCE = 0.9


def stacked_mode_histogram(digit_predictions) -> dict:
    """digit_predictions (N, 3) ints in 0..9 -> modes_hit, n_modes (1000), reverse_kl."""
    if isinstance(digit_predictions, torch.Tensor):
        digit_predictions = digit_predictions.detach().cpu().numpy()
    d = np.asarray(digit_predictions)
    if d.ndim != 2 or d.shape[1] != 3 or len(d) == 0:
        raise ValueError(f"digit_predictions must have shape (N>0, 3), got {d.shape}")
    if not np.issubdtype(d.dtype, np.integer):
        raise ValueError(f"digit_predictions must be integers, got dtype {d.dtype}")
    if d.min() < 0 or d.max() > 9:
        raise ValueError("digit_predictions must lie in 0..9")
    modes = 100 * d[:, 0].astype(np.int64) + 10 * d[:, 1] + d[:, 2]
    counts = np.bincount(modes, minlength=N_MODES)
    return {
        "modes_hit": int((counts > 0).sum()),
        "n_modes": N_MODES,
        "reverse_kl": reverse_kl_to_uniform(counts),
    }


def stacked_quality(probabilities, threshold: float = CONFIDENCE) -> dict:
    """probabilities (N, 3, 10) of each channel's digit -> high_quality (the fraction of
    samples whose three channels all have a top probability >= threshold) and confident_modes
    (modes hit by those samples only)."""
    p = torch.as_tensor(probabilities)
    if p.ndim != 3 or p.shape[1] != 3 or len(p) == 0:
        raise ValueError(f"probabilities must have shape (N>0, 3, classes), got {tuple(p.shape)}")
    top, digit = p.max(dim=2)
    sure = (top >= threshold).all(dim=1)
    confident = stacked_mode_histogram(digit[sure])["modes_hit"] if bool(sure.any()) else 0
    return {"high_quality": float(sure.double().mean()), "confident_modes": confident}
