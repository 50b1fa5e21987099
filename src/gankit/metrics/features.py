"""Feature extractors: networks that map images to features (for FID, KID, precision/recall)
and class logits (for the Inception/classifier score and mode counting).

Every extractor takes NCHW images in [-1, 1] of any size and channel count it supports and
adapts them itself (resizing, channel repeat), so a score's protocol is fixed by the extractor's
name and weights hash alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gankit.models.feature_extractor import FeatureExtractor  # noqa: F401 - re-exported


@torch.no_grad()
def extract(
    extractor: FeatureExtractor,
    source: Tensor | Callable[[int], Tensor],
    n: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "features",
) -> tuple[Tensor, Tensor | None]:
    """Features (float64, CPU) and logits of n images, taken from a tensor or drawn batch by
    batch from `source(batch_size)` (a generator's sampler), so large n never sits in memory as
    images."""
    extractor = extractor.to(device).eval()
    if isinstance(source, Tensor):
        n = len(source) if n is None else min(n, len(source))
    elif n is None:
        raise ValueError("n is required when sampling from a function")
    feats, logits = [], []
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
    done = 0
    while done < n:
        size = min(batch_size, n - done)
        batch = source[done : done + size] if isinstance(source, Tensor) else source(size)
        f, lg = extractor(batch.to(device).float())
        feats.append(f.double().cpu())
        if lg is not None:
            logits.append(lg.double().cpu())
        done += size
        bar.update(size)
    bar.close()
    return torch.cat(feats), (torch.cat(logits) if logits else None)
