"""Start-up compilation of every bucketed pricing kernel, so the first live micro-batch is not slow."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from arbkit.pricing._black_scholes import black76, black_scholes
from arbkit.pricing._buckets import BUCKET_SIZES
from arbkit.pricing._greeks import greeks
from arbkit.pricing._implied_vol import implied_vol_black76_with_flags, implied_vol_with_flags

__all__ = ["warmup"]


def warmup(sizes: Iterable[int] = BUCKET_SIZES) -> float:
    """Compile every public pricing kernel for each bucket size and return the seconds it took.

    Call once at engine start-up (it takes a few seconds): afterwards batches of any length up to the
    largest size run without compiling, which :func:`arbkit.pricing.trace_counts` lets you verify.

    Parameters
    ----------
    sizes
        Batch lengths to compile for; each is compiled at its bucket (see
        :func:`arbkit.pricing.bucket_size`). Defaults to every fixed bucket.

    Returns
    -------
    float
        Wall-clock seconds spent.

    Examples
    --------
    >>> seconds = warmup(sizes=[64])
    >>> seconds >= 0.0
    True
    """
    start = time.perf_counter()
    for size in sizes:
        ones = np.ones(size, dtype=np.float64)
        calls = np.ones(size, dtype=np.bool_)
        black_scholes(ones, ones, ones, ones, ones, ones, calls)
        black76(ones, ones, ones, ones, ones, calls)
        greeks(ones, ones, ones, ones, ones, ones, calls, method="autodiff")
        greeks(ones, ones, ones, ones, ones, ones, calls, method="analytic")
        implied_vol_with_flags(ones, ones, ones, ones, ones, ones, calls)
        implied_vol_black76_with_flags(ones, ones, ones, ones, ones, calls)
    return time.perf_counter() - start
