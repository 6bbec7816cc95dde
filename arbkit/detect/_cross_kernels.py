"""Compiled kernels of the cross-exchange detector: one pass over the rows, one pass over the hits.

The detector is a sequential scan: every row replaces its ``(symbol, venue)`` cell's latest quote and then every
ordered venue pair of that symbol is evaluated on the cells.  Vectorized NumPy needs an as-of gather of
``rows x venues`` values and a screen over all of them; a compiled loop touches each row once and evaluates its
pairs directly (cheaper than a best-bid/best-ask screen: a pair is dropped at its first failing test, mostly
``profit per unit > 0``).  JAX on CPU has no cheap per-row scan
(a jitted call costs 30-95 us, ``lax.scan`` steps are slow), so these loops are numba-compiled; they use only
``+ - * /``, ``floor`` and comparisons, evaluated in the same order as the formulas in
:mod:`arbkit.detect._cross_exchange`, so results do not depend on how a history is split into batches.

:func:`scan` updates the carried cells and timeline counters in place (the caller passes copies) and returns the
hits; :func:`fold` prices them (profit, fills after an optional book walk, confidence) and merges them into the
open episodes (also in place), returning the episodes that closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["HIT_F", "HIT_I", "OPEN_F", "OPEN_I", "fold", "scan"]

# Columns of the hit arrays returned by ``scan``.
HIT_I = ("row", "seq", "time", "buy", "sell", "buy_time", "sell_time")
HIT_F = ("buy_price", "sell_price", "buy_displayed", "sell_displayed", "per_unit", "size", "buy_fee", "sell_fee")
# Columns of the open-episode arrays (one row per candidate ``(symbol, buy venue, sell venue)``): rows == 0 means
# no open episode.
OPEN_I = ("seq_start", "seq_last", "ts_start", "ts_end", "rows")
OPEN_F = ("buy_price", "sell_price", "buy_fill", "sell_fill", "size", "profit", "peak_profit", "profit_percentage",
          "confidence")  # fmt: skip

# Row check codes, in the order of :class:`arbkit.align.Reason`.
_MISSING_PRICE, _NON_POSITIVE, _CROSSED, _BAD_SIZE, _UNKNOWN, _FLAGGED = 1, 2, 3, 4, 5, 6
_NO_QUOTE = 255


def _grow_i(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = np.empty((a.shape[0] * 2, a.shape[1]), dtype=np.int64)
    out[: a.shape[0]] = a
    return out


def _grow_f(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.empty((a.shape[0] * 2, a.shape[1]), dtype=np.float64)
    out[: a.shape[0]] = a
    return out


def _scan_py(
    order: npt.NDArray[np.int64],
    sym: npt.NDArray[np.int32],
    ven: npt.NDArray[np.int32],
    owner: npt.NDArray[np.int8],
    me: int,
    clock: npt.NDArray[np.int64],
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    bid_size: npt.NDArray[np.float64],
    ask_size: npt.NDArray[np.float64],
    flags: npt.NDArray[np.uint16],
    row_offset: int,
    blocking: int,
    known: npt.NDArray[np.bool_],
    fee: npt.NDArray[np.float64],
    lot: npt.NDArray[np.float64],
    min_notional: npt.NDArray[np.float64],
    limit: npt.NDArray[np.int64],
    max_notional: float,
    min_profit: float,
    c_bid: npt.NDArray[np.float64],
    c_ask: npt.NDArray[np.float64],
    c_bid_size: npt.NDArray[np.float64],
    c_ask_size: npt.NDArray[np.float64],
    c_time: npt.NDArray[np.int64],
    c_flags: npt.NDArray[np.int64],
    c_reason: npt.NDArray[np.uint8],
    next_seq: npt.NDArray[np.int64],
    reasons: npt.NDArray[np.int64],
    suppressed: npt.NDArray[np.int64],
    last_clock: npt.NDArray[np.int64],
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Scan rows in ``order``, or in input order when ``order`` is empty; see the module and the detector.

    Only the rows of symbols ``s`` with ``owner[s] == me`` are scanned: symbols share nothing, so two threads
    can scan one batch at once, each owning some symbols (each on its own copy of the carried arrays and
    counters: neighbouring symbols share cache lines).  In input order, each symbol's clock must not decrease
    (``last_clock`` carries it across chunks): the scan returns -1 at the first row that breaks it, leaving the
    carried arrays half updated (the caller then starts again from fresh copies, in canonical order).
    """
    n_ven = limit.shape[0]
    check = order.shape[0] == 0
    n = order.shape[0] if order.shape[0] > 0 else sym.shape[0]
    hits_i = np.empty((max(64, n // 16), 7), dtype=np.int64)
    hits_f = np.empty((max(64, n // 16), 8), dtype=np.float64)
    n_hits = 0
    for k in range(n):
        i = order[k] if order.shape[0] > 0 else k
        s = np.uintp(sym[i])  # unsigned: indexing skips numba's negative-index wraparound (~25% of the scan)
        if owner[s] != me:
            continue
        v = np.uintp(ven[i])
        t = clock[i]
        if check:
            if t < last_clock[s]:
                return -1, hits_i, hits_f
            last_clock[s] = t
        b0, a0, bs0, as0 = bid[i], ask[i], bid_size[i], ask_size[i]
        # Row checks, first failing one wins (arbkit.align.Reason order).
        reason = 0
        if not (np.isfinite(b0) and np.isfinite(a0)):
            reason = _MISSING_PRICE
        elif b0 <= 0.0 or a0 <= 0.0:
            reason = _NON_POSITIVE
        elif b0 > a0:
            reason = _CROSSED
        elif not (np.isfinite(bs0) and np.isfinite(as0)) or bs0 < 0.0 or as0 < 0.0:
            reason = _BAD_SIZE
        elif not known[s, v]:
            reason = _UNKNOWN
        elif (flags[i] & blocking) != 0:
            reason = _FLAGGED
        reasons[reason] += 1
        # Latest wins, even when bad.
        c_bid[s, v], c_ask[s, v], c_bid_size[s, v], c_ask_size[s, v] = b0, a0, bs0, as0
        c_time[s, v] = t
        c_flags[s, v] = flags[i]
        c_reason[s, v] = reason
        seq = next_seq[s]
        next_seq[s] = seq + 1
        for a in range(n_ven):
            ask_a = c_ask[s, a]
            if np.isnan(ask_a):
                continue
            for b in range(n_ven):
                if a == b:
                    continue
                bid_b = c_bid[s, b]
                fee_a, fee_b = fee[s, a], fee[s, b]
                per_unit = (bid_b - ask_a) - fee_a * ask_a - fee_b * bid_b
                if not (per_unit > 0.0):
                    continue
                size_a, size_b = c_ask_size[s, a], c_bid_size[s, b]
                if np.isnan(size_a) or np.isnan(size_b):  # NaN size: no candidate (NumPy's minimum propagates NaN)
                    continue
                raw = size_a if size_a < size_b else size_b
                cap = max_notional / ask_a
                raw = min(raw, cap)
                lot_a, lot_b = lot[s, a], lot[s, b]
                lot_ab = lot_b if np.isnan(lot_a) or lot_b > lot_a else lot_a  # np.fmax
                size = np.floor(raw / lot_ab * (1.0 + 1e-12)) * lot_ab
                profit = per_unit * size
                mn_a, mn_b = min_notional[s, a], min_notional[s, b]
                mn = mn_b if np.isnan(mn_a) or mn_b > mn_a else mn_a
                if not (size > 0.0 and size * ask_a >= mn and profit >= min_profit):
                    continue
                ok_a = c_reason[s, a] == 0
                ok_b = c_reason[s, b] == 0
                fresh_a = t - c_time[s, a] <= limit[a]
                fresh_b = t - c_time[s, b] <= limit[b]
                if ok_a and fresh_a and ok_b and fresh_b:
                    if n_hits == hits_i.shape[0]:
                        hits_i = _grow_i(hits_i)
                        hits_f = _grow_f(hits_f)
                    hits_i[n_hits, 0] = i + row_offset
                    hits_i[n_hits, 1] = seq
                    hits_i[n_hits, 2] = t
                    hits_i[n_hits, 3] = a
                    hits_i[n_hits, 4] = b
                    hits_i[n_hits, 5] = c_time[s, a]
                    hits_i[n_hits, 6] = c_time[s, b]
                    hits_f[n_hits, 0] = ask_a
                    hits_f[n_hits, 1] = bid_b
                    hits_f[n_hits, 2] = c_ask_size[s, a]
                    hits_f[n_hits, 3] = c_bid_size[s, b]
                    hits_f[n_hits, 4] = per_unit
                    hits_f[n_hits, 5] = size
                    hits_f[n_hits, 6] = fee_a
                    hits_f[n_hits, 7] = fee_b
                    n_hits += 1
                elif not (np.isnan(c_bid[s, b]) or np.isnan(c_ask[s, b]) or np.isnan(c_bid[s, a])):
                    # Profitable on present quotes that are not usable: suppressed, stale if a leg only aged out.
                    if (ok_a and not fresh_a) or (ok_b and not fresh_b):
                        suppressed[0] += 1
                    else:
                        suppressed[1] += 1
    return n_hits, hits_i, hits_f


def _merge_py(
    candidate: npt.NDArray[np.int64],
    hit_i: npt.NDArray[np.int64],
    hit_f: npt.NDArray[np.float64],
    open_i: npt.NDArray[np.int64],
    open_f: npt.NDArray[np.float64],
    next_seq: npt.NDArray[np.int64],
    pairs: int,
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Fold hits (``hit_i``: seq, time; ``hit_f``: OPEN_F columns, peak ignored) into the open episodes.

    A hit continues its candidate's episode when it is the next row of the timeline (``seq == seq_last + 1``),
    else the old episode closes and a new one starts; at the end, open episodes whose timeline moved past them
    close.  Returns the closed episodes: count, candidate ids, OPEN_I rows, OPEN_F rows.
    """
    cap = candidate.shape[0] + 16
    out_c = np.empty(cap, dtype=np.int64)
    out_i = np.empty((cap, 5), dtype=np.int64)
    out_f = np.empty((cap, 9), dtype=np.float64)
    n_out = 0
    for h in range(candidate.shape[0]):
        c = candidate[h]
        seq = hit_i[h, 0]
        profit = hit_f[h, 5]
        if open_i[c, 4] > 0 and open_i[c, 1] + 1 == seq:
            open_i[c, 1] = seq
            open_i[c, 3] = hit_i[h, 1]
            open_i[c, 4] += 1
            peak = open_f[c, 6]
            for j in range(9):
                open_f[c, j] = hit_f[h, j]
            open_f[c, 6] = profit if profit > peak else peak
            continue
        if open_i[c, 4] > 0:
            if n_out == cap:
                cap *= 2
                out_c = np.concatenate((out_c, np.empty(cap - out_c.shape[0], dtype=np.int64)))
                out_i = _grow_i(out_i)
                out_f = _grow_f(out_f)
            out_c[n_out] = c
            out_i[n_out] = open_i[c]
            out_f[n_out] = open_f[c]
            n_out += 1
        open_i[c, 0] = seq
        open_i[c, 1] = seq
        open_i[c, 2] = hit_i[h, 1]
        open_i[c, 3] = hit_i[h, 1]
        open_i[c, 4] = 1
        for j in range(9):
            open_f[c, j] = hit_f[h, j]
        open_f[c, 6] = profit
    for c in range(open_i.shape[0]):
        if open_i[c, 4] > 0 and open_i[c, 1] + 1 < next_seq[c // pairs]:
            if n_out == cap:
                cap *= 2
                out_c = np.concatenate((out_c, np.empty(cap - out_c.shape[0], dtype=np.int64)))
                out_i = _grow_i(out_i)
                out_f = _grow_f(out_f)
            out_c[n_out] = c
            out_i[n_out] = open_i[c]
            out_f[n_out] = open_f[c]
            n_out += 1
            open_i[c] = 0
            open_f[c] = np.nan
    return n_out, out_c, out_i, out_f


def _freshness(age: float, latency: float, max_age: float) -> float:
    """:func:`arbkit.detect._confidence.freshness`, same operations."""
    span = max_age - latency
    if not (span >= 1e-9):  # np.maximum(span, 1e-9), NaN kept
        span = span if np.isnan(span) else 1e-9
    return _clip01(1.0 - (age - latency) / span)


def _clip01(x: float) -> float:
    if x < 0.0:
        return 0.0
    if x > 1.0:
        return 1.0
    return x  # NaN stays NaN, as np.clip


def _depth(size: float, shown: float) -> float:
    """:func:`arbkit.detect._confidence.depth_factor`, same operations."""
    used = size / shown if shown > 0.0 else 1.0
    return 1.0 - 0.5 * _clip01(used)


def _nan_min(x: float, y: float) -> float:
    """np.minimum: NaN if either is NaN."""
    if np.isnan(x) or np.isnan(y):
        return np.nan
    return x if x <= y else y


def _price_py(
    hit_i: npt.NDArray[np.int64],
    hit_f: npt.NDArray[np.float64],
    walk: npt.NDArray[np.float64],
    sym: npt.NDArray[np.int32],
    n_ven: int,
    latency: npt.NDArray[np.float64],
    max_age_ms: npt.NDArray[np.float64],
    min_profit: float,
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Price the hits of :func:`scan` for :func:`merge`: candidate ids, (seq, time) and OPEN_F payloads.

    ``walk`` is empty, or one row per hit of the book walk ``(use, size, profit, cost, proceeds, buy depth, sell
    depth)``; a walked hit that earns nothing is dropped.  Profit, percentage and confidence follow the
    formulas of :mod:`arbkit.detect._cross_exchange` and :mod:`arbkit.detect._confidence` operation by operation.
    """
    n = hit_i.shape[0]
    candidate = np.empty(n, dtype=np.int64)
    ints = np.empty((n, 2), dtype=np.int64)
    floats = np.empty((n, 9), dtype=np.float64)
    walked = walk.shape[0] > 0
    k = 0
    for h in range(n):
        buy_price, sell_price = hit_f[h, 0], hit_f[h, 1]
        shown_buy, shown_sell = hit_f[h, 2], hit_f[h, 3]
        per_unit, size, fee_a = hit_f[h, 4], hit_f[h, 5], hit_f[h, 6]
        profit = per_unit * size
        percentage = 100.0 * per_unit / (buy_price * (1.0 + fee_a))
        buy_fill, sell_fill = buy_price, sell_price
        if walked and walk[h, 0] > 0.0:
            w_size, w_profit, w_cost, w_proceeds = walk[h, 1], walk[h, 2], walk[h, 3], walk[h, 4]
            if not (w_size > 0.0 and w_profit > 0.0 and w_profit >= min_profit):
                continue
            size, profit = w_size, w_profit
            percentage = 100.0 * w_profit / (w_cost * (1.0 + fee_a))
            buy_fill, sell_fill = w_cost / w_size, w_proceeds / w_size
            shown_buy, shown_sell = walk[h, 5], walk[h, 6]
        t = hit_i[h, 2]
        a, b = hit_i[h, 3], hit_i[h, 4]
        fresh = _nan_min(
            _freshness((t - hit_i[h, 5]) / 1e6, latency[a], max_age_ms[a]),
            _freshness((t - hit_i[h, 6]) / 1e6, latency[b], max_age_ms[b]),
        )
        depth = _nan_min(_depth(size, shown_buy), _depth(size, shown_sell))
        candidate[k] = (sym[hit_i[h, 0]] * n_ven + a) * n_ven + b
        ints[k, 0] = hit_i[h, 1]
        ints[k, 1] = t
        floats[k, 0] = buy_price
        floats[k, 1] = sell_price
        floats[k, 2] = buy_fill
        floats[k, 3] = sell_fill
        floats[k, 4] = size
        floats[k, 5] = profit
        floats[k, 6] = profit
        floats[k, 7] = percentage
        floats[k, 8] = fresh * depth
        k += 1
    return k, candidate, ints, floats


def _fold_py(
    hit_i: npt.NDArray[np.int64],
    hit_f: npt.NDArray[np.float64],
    walk: npt.NDArray[np.float64],
    sym: npt.NDArray[np.int32],
    n_ven: int,
    latency: npt.NDArray[np.float64],
    max_age_ms: npt.NDArray[np.float64],
    min_profit: float,
    open_i: npt.NDArray[np.int64],
    open_f: npt.NDArray[np.float64],
    next_seq: npt.NDArray[np.int64],
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """:func:`_price_py` then :func:`_merge_py` in one call (one dispatch per micro-batch)."""
    k, candidate, ints, floats = _price(hit_i, hit_f, walk, sym, n_ven, latency, max_age_ms, min_profit)
    closed: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
    closed = _merge(candidate[:k], ints[:k], floats[:k], open_i, open_f, next_seq, n_ven * n_ven)
    return closed


_jit: Callable[[Any], Any] = numba.njit(cache=True, nogil=True, error_model="numpy")
_grow_i = cast(Any, _jit(_grow_i))
_grow_f = cast(Any, _jit(_grow_f))
_freshness = cast(Any, _jit(_freshness))
_clip01 = cast(Any, _jit(_clip01))
_depth = cast(Any, _jit(_depth))
_nan_min = cast(Any, _jit(_nan_min))
_price = cast(Any, _jit(_price_py))
_merge = cast(Any, _jit(_merge_py))
fold = cast(
    Callable[..., tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]], _jit(_fold_py)
)
scan = cast(Callable[..., tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]], _jit(_scan_py))
