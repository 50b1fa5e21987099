"""One description of how two state dicts differ, for every loader's error message."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor


def describe_mismatch(
    expected: Mapping[str, Tensor],
    given: Mapping[str, Tensor],
    optional: Callable[[str], bool] = lambda key: False,
) -> str | None:
    """None when `given` fits `expected` key for key and shape for shape; otherwise e.g.
    '2 missing: a, b; 1 wrong shape: c (3, 4) (expected (4, 4))' (at most 5 names each)."""
    missing = sorted(k for k in set(expected) - set(given) if not optional(k))
    unexpected = sorted(set(given) - set(expected))
    wrong = [
        f"{k} {tuple(given[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in given and tuple(given[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{more}")
    return "; ".join(parts) or None
