"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").

IS = exp(E_x KL(p(y|x) || p(y))): high when each sample is classified confidently (low entropy
p(y|x)) and the classes are spread out (high entropy marginal p(y)). Following the original
code, samples are cut into `splits` contiguous chunks, p(y) is the mean of p(y|x) within each
chunk, and the score's mean and std (ddof=0) over chunks are reported. Probabilities come from
log_softmax in float64 so confident logits do not produce log(0).
"""

from __future__ import annotations

import numpy as np
import torch


def inception_score(logits, splits: int = 10) -> dict:
    """logits (N, K), torch or numpy -> {"mean", "std", "splits"}."""
    lg = torch.as_tensor(logits).detach().cpu().double()
    if lg.ndim != 2:
        raise ValueError(f"logits must be 2D (N, K), got shape {tuple(lg.shape)}")
    if splits < 1 or len(lg) < splits:
        raise ValueError(f"need 1 <= splits <= N, got splits={splits} for N={len(lg)}")
    if not torch.isfinite(lg).all():
        raise ValueError("logits contain NaN or inf")
    log_p = torch.log_softmax(lg, dim=1)
    scores = []
    for chunk in torch.tensor_split(log_p, splits):
        # log p(y) by logsumexp stays finite even where every p(y|x) of a class underflows to 0,
        # so those terms are 0 * finite = 0 rather than 0 * inf = nan.
        log_py = torch.logsumexp(chunk, dim=0) - np.log(len(chunk))
        kl = (chunk.exp() * (chunk - log_py)).sum(dim=1)
        scores.append(float(torch.exp(kl.mean())))
    scores = np.asarray(scores)
    return {"mean": float(scores.mean()), "std": float(scores.std()), "splits": int(splits)}
