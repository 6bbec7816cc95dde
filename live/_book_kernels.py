"""Compiled passes of :meth:`live.book.Books.apply_snapshot_columns` over one socket read of book snapshots.

The method used to loop over symbols in Python with a dozen small NumPy calls each (~90 us a Bybit read of 50
rows over 4 symbols, on the event loop); these kernels do the per-row work in two passes, and the method's Python
loop only touches each symbol's keeper once.  Groups are unified symbols: several codes (venue spellings) may map
to one group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np

from arbkit.schema import QuoteFlag

_STALE = int(QuoteFlag.STALE)
_CROSSED = int(QuoteFlag.CROSSED)

# columns of the per-group int64 summary that apply_snapshots returns (one row per group present in the read)
LAST, COUNT, STALE_COUNT, CROSSED_COUNT, TS_EVENT, LAGGING, SEQ, SPANS = range(8)


def _present_groups_py(codes: Any, code_group: Any, present: Any) -> int:
    """Fill ``present`` with the groups the rows name, in order of their first row (the order the per-update path
    creates keepers in); the count, or -1 when a code is outside the symbol table."""
    n_codes = code_group.shape[0]
    taken = np.zeros(present.shape[0], dtype=np.bool_)
    k = 0
    for i in range(codes.shape[0]):
        c = codes[i]
        if c < 0 or c >= n_codes:
            return -1
        g = code_group[c]
        if not taken[g]:
            taken[g] = True
            present[k] = g
            k += 1
    return k


def _apply_py(
    codes: Any,
    code_group: Any,
    present: Any,
    k: int,
    floor: Any,
    max_age: Any,
    ts_recv: int,
    ts_event: Any,
    flags: Any,
    bid: Any,
    bid_size: Any,
    ask: Any,
    ask_size: Any,
    seq: Any,
    spans: Any,
) -> tuple[Any, Any, Any, Any]:
    """Per row: event time raised to the running max of its group (from the keeper's ``floor``), STALE where
    ``ts_recv - ts_event > max_age``.  Per present group ``j < k`` (``present[j]``, ``floor[j]``, ``max_age[j]``):
    ``summary[j]`` (see the column names above) and ``levels[j]`` = the last row's bid, bid size, ask, ask size."""
    n = codes.shape[0]
    rank = np.full(present.shape[0], -1, dtype=np.int64)
    for j in range(k):
        rank[present[j]] = j
    running = floor[:k].copy()
    out_ts = np.empty(n, dtype=np.int64)
    out_flags = np.empty(n, dtype=np.uint16)
    summary = np.zeros((k, SPANS + 8), dtype=np.int64)
    for i in range(n):
        j = rank[code_group[codes[i]]]
        own = ts_event[i]
        running[j] = max(running[j], own)
        out_ts[i] = running[j]
        lagging = ts_recv - own > max_age[j]
        f = flags[i]
        if f & _CROSSED:
            summary[j, CROSSED_COUNT] += 1
        if lagging:
            f |= _STALE
            summary[j, STALE_COUNT] += 1
        out_flags[i] = f
        summary[j, LAST] = i
        summary[j, COUNT] += 1
        summary[j, LAGGING] = lagging
    levels = np.empty((k, 4), dtype=np.float64)
    for j in range(k):
        last = summary[j, LAST]
        summary[j, TS_EVENT] = running[j]
        summary[j, SEQ] = seq[last]
        for s in range(8):
            summary[j, SPANS + s] = spans[last, s]
        levels[j, 0] = bid[last]
        levels[j, 1] = bid_size[last]
        levels[j, 2] = ask[last]
        levels[j, 3] = ask_size[last]
    return out_ts, out_flags, summary, levels


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    return cast(Callable[..., Any], numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


present_groups = _jit(_present_groups_py)
apply_snapshots = _jit(_apply_py)


def _load() -> None:
    """Load (or compile) both kernels for the column types the Bybit parser gives, so that cost (0.1-3 s) lands
    at import, not on the first read."""
    code_group = np.zeros(1, dtype=np.int64)
    present = np.zeros(1, dtype=np.int64)
    codes = np.zeros(1, dtype=np.int32)
    k = present_groups(codes, code_group, present)
    one = np.ones(1)
    apply_snapshots(
        codes,
        code_group,
        present,
        k,
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        1,
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.uint16),
        one,
        one,
        one,
        one,
        np.zeros(1, dtype=np.int64),
        np.zeros((1, 8), dtype=np.int64),
    )


_load()
