"""Compiled row scans, exact evaluation and episode fold of the basis and put-call parity detectors.

Both detectors evaluate a *candidate* (two legs for basis, call + put + future for parity) on every row of its
timeline: every row of one of its legs once the required legs have been quoted.  A scan walks the batch's rows in
canonical order once, replaces the row's cell (the latest row per instrument, whatever its quality, as in
:mod:`arbkit.align`), advances the row counter of every candidate the row belongs to and estimates both trades of
each such candidate.  A candidate row is *emitted* for the exact evaluation unless both trades are clearly
unprofitable: estimate below ``-1e-9`` times the sum of the magnitudes entering it.  The estimate differs from the
exact value by a few rounding errors only, so the screen never changes a decision; with ``screen`` off every row is
emitted (research detail frames).

:func:`basis_events` and :func:`parity_events` evaluate the emitted rows exactly (the formulas of the detector
modules, in their order of operations, no fused multiply-adds) and return the active rows as events.  The live
step and the research path call the same compiled code, so they agree bit for bit; a micro-batch with a few
emitted rows pays one compiled call, not a hundred NumPy operations and a JAX dispatch.  The JAX kernels of
:mod:`arbkit.detect._b_kernels` stay the independent reference of the tests (equal to a relative 1e-12).

The fold merges the events (rows where a trade is active) into the open episode of their slot ``(candidate,
trade)``: a slot's event continues the open episode when its ``seq`` is the next row of the timeline, otherwise the
open one closes.  After the batch, every open episode whose timeline moved past it closes too; the rules of
:mod:`arbkit.detect._episodes`.  All functions update the carried arrays in place (callers pass copies).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "EMIT_BASIS_F",
    "EMIT_PARITY_F",
    "OPEN_F",
    "OPEN_I",
    "basis_events",
    "basis_scan",
    "fold",
    "parity_events",
    "parity_scan",
    "reasons",
]

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int64]
_B = npt.NDArray[np.bool_]

#: Columns of the open-episode arrays, one row per slot (``rows == 0``: no open episode).
OPEN_I = ("seq_start", "seq_last", "ts_start", "ts_end", "rows")
OPEN_F = ("buy_price", "sell_price", "size", "profit", "peak_profit", "profit_percentage", "confidence",
          "leg0", "leg1", "leg2")  # fmt: skip
#: Emitted basis rows: ints ``(candidate, seq, now, time_a, time_b, funding_a, funding_b)`` (funding: seen or
#: not), floats: the quote cells of both legs then the funding cells of both legs.
EMIT_BASIS_F = ("bid_a", "ask_a", "bid_size_a", "ask_size_a", "flags_a", "reason_a",
                "bid_b", "ask_b", "bid_size_b", "ask_size_b", "flags_b", "reason_b",
                "rate_a", "next_funding_a", "mark_a", "funding_flags_a",
                "rate_b", "next_funding_b", "mark_b", "funding_flags_b")  # fmt: skip
#: Emitted parity rows: ints ``(candidate, seq, now, time_call, time_put, time_future, future_seen)``, floats: the
#: call and put cells (``bid, ask, bid_size, ask_size, underlying_price, reason``) then the future's (no
#: underlying).
EMIT_PARITY_F = ("bid_c", "ask_c", "bid_size_c", "ask_size_c", "underlying_c", "reason_c",
                 "bid_p", "ask_p", "bid_size_p", "ask_size_p", "underlying_p", "reason_p",
                 "bid_f", "ask_f", "bid_size_f", "ask_size_f", "reason_f")  # fmt: skip

_NS_PER_YEAR = 365.0 * 24 * 3600 * 1e9
_SCREEN = 1e-9


def _grow_i(a: _I) -> _I:
    out = np.empty((a.shape[0] * 2, a.shape[1]), dtype=np.int64)
    out[: a.shape[0]] = a
    return out


def _grow_f(a: _F) -> _F:
    out = np.empty((a.shape[0] * 2, a.shape[1]), dtype=np.float64)
    out[: a.shape[0]] = a
    return out


def _room(n: int, ints: _I, floats: _F) -> tuple[_I, _F]:
    """The row arrays, doubled when row ``n`` does not fit."""
    if n < ints.shape[0]:
        return ints, floats
    return _grow_i(ints), _grow_f(floats)


def _refresh(k: int, fk: int, cells: _F, f_cells: _F, f_seen: _B, to_usdt: _F, is_perp: _B, cache: _F) -> None:
    """Recompute the estimate ``(bid, ask, rate, mark)`` in USDT of key ``k`` (see ``_basis._leg``) after its quote
    or funding cell changed."""
    bid = cells[k, 0] * to_usdt[k]
    ask = cells[k, 1] * to_usdt[k]
    mark = (bid + ask) / 2.0
    rate = 0.0
    if is_perp[k] and fk >= 0 and f_seen[fk]:
        rate = f_cells[fk, 0]
        if np.isfinite(f_cells[fk, 2]):
            mark = f_cells[fk, 2] * to_usdt[k]
    cache[k, 0] = bid
    cache[k, 1] = ask
    cache[k, 2] = rate
    cache[k, 3] = mark


def _next_funding(k: int, fk: int, now: int, f_cells: _F, f_seen: _B, period: _I, is_perp: _B) -> float:
    """Estimate of the next funding time of key ``k`` at ``now``: the funding row's, else the venue's grid."""
    if is_perp[k] and fk >= 0 and f_seen[fk] and np.isfinite(f_cells[fk, 1]) and f_cells[fk, 1] > now:
        return float(f_cells[fk, 1])
    p = period[k]
    return float(((now // p) + 1) * p) if p > 0 else float(now)


def _basis_scan_py(
    order: _I,
    n_quotes: int,
    q_key: _I,
    q_clock: _I,
    q_values: _F,
    f_key: _I,
    f_clock: _I,
    f_values: _F,
    cells: _F,
    cell_time: _I,
    cell_seen: _B,
    f_cells: _F,
    f_time: _I,
    f_seen: _B,
    key_ptr: _I,
    key_cands: _I,
    fkey_ptr: _I,
    fkey_cands: _I,
    cand_a: _I,
    cand_b: _I,
    cand_family: _I,
    funding_of: _I,
    to_usdt: _F,
    fee: _F,
    period: _I,
    is_perp: _B,
    expiry: _I,
    borrow_rate: float,
    rate: float,
    screen: bool,
    next_seq: _I,
    quote_of: _I,
    cache: _F,
) -> tuple[int, _I, _F]:
    """Scan quote rows (``q_*``, values ``bid, ask, bid_size, ask_size, flags, reason``) and funding rows (``f_*``,
    values ``rate, next_funding_time, mark, flags``) in ``order`` (global indices, quotes first; input order when
    empty); key ``-1``: a row no candidate uses.  ``quote_of`` maps funding keys to quote keys (-1: none) and
    ``cache`` holds each quote key's screening estimate (refreshed here: the caller passes a fresh one)."""
    for k in range(cells.shape[0]):
        _refresh(k, funding_of[k], cells, f_cells, f_seen, to_usdt, is_perp, cache)
    n = order.shape[0] if order.shape[0] > 0 else n_quotes + f_key.shape[0]
    emit_i = np.empty((64, 7), dtype=np.int64)
    emit_f = np.empty((64, 20), dtype=np.float64)
    n_emit = 0
    for j in range(n):
        g = order[j] if order.shape[0] > 0 else j
        if g < n_quotes:
            k = q_key[g]
            if k < 0:
                continue
            now = q_clock[g]
            # The cell stores stay inline (here and in the parity scan): a shared helper measured ~45% slower
            # scans (the whole-history parity step 0.29 -> 0.43 s), even inlined in numba's IR.
            for c in range(6):
                cells[k, c] = q_values[g, c]
            cell_time[k] = now
            cell_seen[k] = True
            _refresh(k, funding_of[k], cells, f_cells, f_seen, to_usdt, is_perp, cache)
            lo, hi = key_ptr[k], key_ptr[k + 1]
            touched = key_cands
        else:
            r = g - n_quotes
            k = f_key[r]
            if k < 0:
                continue
            now = f_clock[r]
            for c in range(4):
                f_cells[k, c] = f_values[r, c]
            f_time[k] = now
            f_seen[k] = True
            if quote_of[k] >= 0:
                _refresh(quote_of[k], k, cells, f_cells, f_seen, to_usdt, is_perp, cache)
            lo, hi = fkey_ptr[k], fkey_ptr[k + 1]
            touched = fkey_cands
        for t in range(lo, hi):
            cand = touched[t]
            a = cand_a[cand]
            b = cand_b[cand]
            if not (cell_seen[a] and cell_seen[b]):
                continue
            seq = next_seq[cand]
            next_seq[cand] = seq + 1
            fa = funding_of[a]
            fb = funding_of[b]
            if screen:
                bid_a, ask_a, rate_a, mark_a = cache[a, 0], cache[a, 1], cache[a, 2], cache[a, 3]
                bid_b, ask_b, rate_b, mark_b = cache[b, 0], cache[b, 1], cache[b, 2], cache[b, 3]
                family = cand_family[cand]
                if family == 0:
                    nft_b = _next_funding(b, fb, now, f_cells, f_seen, period, is_perp)
                    tau = max(nft_b - now, 0.0) / _NS_PER_YEAR
                    carry0 = rate_b * mark_b
                    carry1 = -rate_b * mark_b - borrow_rate * tau * bid_a
                elif family == 1:
                    years = max((expiry[b] - now) / _NS_PER_YEAR, 0.0)
                    growth = math.expm1(rate * years)
                    carry0 = -ask_a * growth
                    carry1 = bid_a * growth - borrow_rate * years * bid_a
                else:
                    carry0 = rate_b * mark_b - rate_a * mark_a
                    carry1 = -carry0
                fee_a, fee_b = fee[a], fee[b]
                p0 = bid_b - ask_a - 2.0 * (fee_a * ask_a + fee_b * bid_b) + carry0
                p1 = bid_a - ask_b - 2.0 * (fee_b * ask_b + fee_a * bid_a) + carry1
                scale = abs(bid_a) + abs(ask_a) + abs(bid_b) + abs(ask_b)
                if p0 < -_SCREEN * (scale + abs(carry0)) and p1 < -_SCREEN * (scale + abs(carry1)):
                    continue
            emit_i, emit_f = _room(n_emit, emit_i, emit_f)
            emit_i[n_emit, 0] = cand
            emit_i[n_emit, 1] = seq
            emit_i[n_emit, 2] = now
            emit_i[n_emit, 3] = cell_time[a]
            emit_i[n_emit, 4] = cell_time[b]
            emit_i[n_emit, 5] = 1 if fa >= 0 and f_seen[fa] else 0
            emit_i[n_emit, 6] = 1 if fb >= 0 and f_seen[fb] else 0
            for c in range(6):
                emit_f[n_emit, c] = cells[a, c]
                emit_f[n_emit, 6 + c] = cells[b, c]
            for c in range(4):
                emit_f[n_emit, 12 + c] = f_cells[fa, c] if fa >= 0 else np.nan
                emit_f[n_emit, 16 + c] = f_cells[fb, c] if fb >= 0 else np.nan
            n_emit += 1
    return n_emit, emit_i, emit_f


def _parity_scan_py(
    order: _I,
    n_futures: int,
    f_key: _I,
    f_clock: _I,
    f_values: _F,
    o_key: _I,
    o_clock: _I,
    o_values: _F,
    cells: _F,
    cell_time: _I,
    cell_seen: _B,
    f_cells: _F,
    f_time: _I,
    f_seen: _B,
    key_ptr: _I,
    key_cands: _I,
    fkey_ptr: _I,
    fkey_cands: _I,
    cand_call: _I,
    cand_put: _I,
    cand_future: _I,
    in_base: _B,
    expiry: _I,
    strike: _F,
    rate: float,
    dividend: float,
    screen: bool,
    next_seq: _I,
) -> tuple[int, _I, _F]:
    """Scan future rows (``f_*``, values ``bid, ask, bid_size, ask_size, reason``) and option rows (``o_*``, values
    ``bid, ask, bid_size, ask_size, underlying_price, reason``) in ``order`` (global indices, quotes first, the
    canonical table order; input order when empty)."""
    n = order.shape[0] if order.shape[0] > 0 else n_futures + o_key.shape[0]
    emit_i = np.empty((64, 7), dtype=np.int64)
    emit_f = np.empty((64, 17), dtype=np.float64)
    n_emit = 0
    for j in range(n):
        g = order[j] if order.shape[0] > 0 else j
        if g >= n_futures:
            r = g - n_futures
            k = o_key[r]
            if k < 0:
                continue
            now = o_clock[r]
            for c in range(6):
                cells[k, c] = o_values[r, c]
            cell_time[k] = now
            cell_seen[k] = True
            lo, hi = key_ptr[k], key_ptr[k + 1]
            touched = key_cands
        else:
            k = f_key[g]
            if k < 0:
                continue
            now = f_clock[g]
            for c in range(5):
                f_cells[k, c] = f_values[g, c]
            f_time[k] = now
            f_seen[k] = True
            lo, hi = fkey_ptr[k], fkey_ptr[k + 1]
            touched = fkey_cands
        for t in range(lo, hi):
            cand = touched[t]
            ci = cand_call[cand]
            pi = cand_put[cand]
            if not (cell_seen[ci] and cell_seen[pi]):
                continue
            seq = next_seq[cand]
            next_seq[cand] = seq + 1
            fi = cand_future[cand]
            have = fi >= 0 and f_seen[fi]
            if screen:
                cu = cells[ci, 4]
                pu = cells[pi, 4]
                cm = cu if in_base[ci] else 1.0
                pm = pu if in_base[pi] else 1.0
                cb, ca = cells[ci, 0] * cm, cells[ci, 1] * cm
                pb, pa = cells[pi, 0] * pm, cells[pi, 1] * pm
                years = max((expiry[cand] - now) / _NS_PER_YEAR, 0.0)
                if have:
                    fb, fa = f_cells[fi, 0], f_cells[fi, 1]
                else:
                    index = cu if cell_time[ci] >= cell_time[pi] else pu
                    fb = index * math.exp((rate - dividend) * years)
                    fa = fb
                k_disc = math.exp(-rate * years)
                rev = cb - pa - (fa - strike[cand]) * k_disc
                conv = pb - ca - (strike[cand] - fb) * k_disc
                scale = abs(cb) + abs(ca) + abs(pb) + abs(pa) + abs(fb) + abs(fa) + abs(strike[cand])
                # On positive prices fees only lower both trades: the fee-free estimates bound them from above.
                positive = cb > 0.0 and ca > 0.0 and pb > 0.0 and pa > 0.0 and fb > 0.0 and fa > 0.0
                positive = positive and cu > 0.0 and pu > 0.0
                if positive and rev < -_SCREEN * scale and conv < -_SCREEN * scale:
                    continue
            emit_i, emit_f = _room(n_emit, emit_i, emit_f)
            emit_i[n_emit, 0] = cand
            emit_i[n_emit, 1] = seq
            emit_i[n_emit, 2] = now
            emit_i[n_emit, 3] = cell_time[ci]
            emit_i[n_emit, 4] = cell_time[pi]
            emit_i[n_emit, 5] = f_time[fi] if fi >= 0 else -1
            emit_i[n_emit, 6] = 1 if have else 0
            for c in range(6):
                emit_f[n_emit, c] = cells[ci, c]
                emit_f[n_emit, 6 + c] = cells[pi, c]
            for c in range(5):
                emit_f[n_emit, 12 + c] = f_cells[fi, c] if fi >= 0 else np.nan
            n_emit += 1
    return n_emit, emit_i, emit_f


def _nmin(a: float, b: float) -> float:
    """``np.minimum`` of two floats (NaN when either is)."""
    if np.isnan(a) or np.isnan(b):
        return a + b
    return a if a <= b else b


def _nmax(a: float, b: float) -> float:
    """``np.maximum`` of two floats (NaN when either is)."""
    if np.isnan(a) or np.isnan(b):
        return a + b
    return a if a >= b else b


def _clip01(x: float) -> float:
    """``np.clip(x, 0, 1)`` (NaN stays NaN)."""
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


def _freshness(age_ms: float, latency_ms: float, max_age_ms: float) -> float:
    """:func:`arbkit.detect._confidence.freshness` of one leg."""
    return _clip01(1.0 - (age_ms - latency_ms) / _nmax(max_age_ms - latency_ms, 1e-9))


def _depth(size: float, displayed: float) -> float:
    """:func:`arbkit.detect._confidence.depth_factor` of one leg."""
    return 1.0 - 0.5 * _clip01(size / displayed if displayed > 0.0 else 1.0)


def _event_arrays(n: int) -> tuple[_I, _I, _I, _F, _I]:
    """Room for ``n`` events ``(slot, seq, ts, values)`` and the suppressed counters ``(flagged, stale)``."""
    values = np.empty((n, len(OPEN_F)), dtype=np.float64)
    return np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64), values, np.zeros(2, np.int64)


def _event(
    n: int, slot: _I, seq: _I, ts: _I, values: _F, s: int, q: int, now: int, buy: float, sell: float, size: float,
    profit: float, percentage: float, confidence: float, leg0: float, leg1: float, leg2: float,
) -> int:  # fmt: skip
    """Write one event (values in :data:`OPEN_F` order, the peak column holding the profit) at ``n``; ``n + 1``."""
    slot[n] = s
    seq[n] = q
    ts[n] = now
    values[n, 0] = buy
    values[n, 1] = sell
    values[n, 2] = size
    values[n, 3] = profit
    values[n, 4] = profit
    values[n, 5] = percentage
    values[n, 6] = confidence
    values[n, 7] = leg0
    values[n, 8] = leg1
    values[n, 9] = leg2
    return n + 1


def _basis_leg(
    e: int, side: int, k: int, now: int, emit_i: _I, emit_f: _F, key_f: _F, period: _I, max_age: _I, is_perp: _B,
    inverse: _B, blocking: int,
) -> tuple[float, float, float, float, bool, bool, bool, float, float, float]:  # fmt: skip
    """Leg ``side`` (0: a, 1: b) of emitted row ``e`` on key ``k``: ``(bid, ask, bid_size, ask_size, usable, stale,
    flagged, rate, mark, next_funding)`` in USDT and base units (the quantities of the ``_basis`` docstring)."""
    q = 6 * side
    fq = 12 + 4 * side
    to_usdt = key_f[k, 0]
    contract = key_f[k, 2]
    bid = emit_f[e, q] * to_usdt
    ask = emit_f[e, q + 1] * to_usdt
    if inverse[k]:
        bid_size = emit_f[e, q + 2] * contract / (bid / to_usdt)
        ask_size = emit_f[e, q + 3] * contract / (ask / to_usdt)
    else:
        bid_size = emit_f[e, q + 2] * contract
        ask_size = emit_f[e, q + 3] * contract
    ok = emit_f[e, q + 5] == 0.0
    fresh = now - emit_i[e, 3 + side] <= max_age[k]
    flagged = not ok and np.isfinite(bid) and np.isfinite(ask) and bid > 0.0 and ask > 0.0
    have = emit_i[e, 5 + side] != 0 and is_perp[k]
    rate = emit_f[e, fq] if have else 0.0
    mark = (bid + ask) / 2.0
    if have and np.isfinite(emit_f[e, fq + 2]):
        mark = emit_f[e, fq + 2] * to_usdt
    nft = emit_f[e, fq + 1]
    p = period[k]
    next_funding = float(((now // p) + 1) * p if p > 0 else now)
    if have and np.isfinite(nft) and nft > float(now):
        next_funding = nft
    funding_ok = True
    if have:
        fflags = 0 if np.isnan(emit_f[e, fq + 3]) else int(emit_f[e, fq + 3])
        funding_ok = (fflags & blocking) == 0
    usable = ok and fresh and funding_ok
    return bid, ask, bid_size, ask_size, usable, ok and not fresh, flagged or (ok and not funding_ok), rate, mark, \
        next_funding  # fmt: skip


def _basis_events_py(
    emit_i: _I,
    emit_f: _F,
    cand_a: _I,
    cand_b: _I,
    cand_family: _I,
    key_f: _F,
    period: _I,
    max_age: _I,
    is_perp: _B,
    inverse: _B,
    expiry: _I,
    borrow_rate: float,
    rate: float,
    max_notional: float,
    min_profit: float,
    blocking: int,
    detail: _F,
) -> tuple[int, _I, _I, _I, _F, _I]:
    """Exact evaluation of the emitted basis rows (the formulas of the ``_basis`` docstring, both directions):
    the active rows as events ``(n, slot, seq, ts, values)`` in row order, the suppressed counters ``(flagged,
    stale)``, and where ``detail`` has a row per emitted row, its ``profit_0, size_0, profit_1, size_1,
    annualized_basis, annualized_funding, usable``."""
    n = emit_i.shape[0]
    slot, seq, ts, values, suppressed = _event_arrays(2 * n)
    n_ev = 0
    for e in range(n):
        cand = emit_i[e, 0]
        now = emit_i[e, 2]
        a = cand_a[cand]
        b = cand_b[cand]
        a_bid, a_ask, a_bid_size, a_ask_size, a_usable, a_stale, a_flagged, a_rate, a_mark, _ = _basis_leg(
            e, 0, a, now, emit_i, emit_f, key_f, period, max_age, is_perp, inverse, blocking
        )
        b_bid, b_ask, b_bid_size, b_ask_size, b_usable, b_stale, b_flagged, b_rate, b_mark, b_next = _basis_leg(
            e, 1, b, now, emit_i, emit_f, key_f, period, max_age, is_perp, inverse, blocking
        )
        family = cand_family[cand]
        years = 0.0
        if family == 0:
            tau = _nmax(b_next - float(now), 0.0) / _NS_PER_YEAR
            carry0 = b_rate * b_mark
            carry1 = -b_rate * b_mark - borrow_rate * tau * a_bid
        elif family == 1:
            years = (expiry[b] - now) / _NS_PER_YEAR
            held = _nmax(years, 0.0)
            growth = math.expm1(rate * held)
            carry0 = -a_ask * growth
            carry1 = a_bid * growth - borrow_rate * held * a_bid
        else:
            carry0 = b_rate * b_mark - a_rate * a_mark
            carry1 = -carry0
        alive = years > 0.0 if family == 1 else years >= 0.0
        usable = a_usable and b_usable and alive
        stale_only = (a_stale or b_stale) and not (a_flagged or b_flagged)
        a_fee, b_fee = key_f[a, 1], key_f[b, 1]
        for d in range(2):
            if d == 0:  # buy a at its ask, sell b at its bid
                buy, sell, buy_size, sell_size, fee_buy, fee_sell, carry = a_ask, b_bid, a_ask_size, b_bid_size, \
                    a_fee, b_fee, carry0  # fmt: skip
                buy_key, sell_key, buy_time, sell_time = a, b, emit_i[e, 3], emit_i[e, 4]
            else:
                buy, sell, buy_size, sell_size, fee_buy, fee_sell, carry = b_ask, a_bid, b_ask_size, a_bid_size, \
                    b_fee, a_fee, carry1  # fmt: skip
                buy_key, sell_key, buy_time, sell_time = b, a, emit_i[e, 4], emit_i[e, 3]
            unit = sell - buy - 2.0 * (fee_buy * buy + fee_sell * sell) + carry
            size = _nmin(_nmin(buy_size, sell_size), max_notional / buy)
            if not (np.isfinite(size) and size > 0.0):
                size = 0.0
            profit = unit * size
            if detail.shape[0] > 0:
                detail[e, 2 * d] = profit
                detail[e, 2 * d + 1] = size
            if not (np.isfinite(profit) and profit > min_profit and size > 0.0 and alive):
                continue
            if not usable:
                suppressed[1 if stale_only else 0] += 1
                continue
            fresh = _nmin(
                _freshness((now - buy_time) / 1e6, key_f[buy_key, 3], max_age[buy_key] / 1e6),
                _freshness((now - sell_time) / 1e6, key_f[sell_key, 3], max_age[sell_key] / 1e6),
            )
            depth = _nmin(_depth(size, buy_size), _depth(size, sell_size))
            n_ev = _event(n_ev, slot, seq, ts, values, 2 * cand + d, emit_i[e, 1], now, buy, sell, size, profit,
                          100.0 * unit / buy, fresh * depth, buy, sell, np.nan)  # fmt: skip
        if detail.shape[0] > 0:
            hours = key_f[b, 4]
            premium = ((b_bid + b_ask) / 2.0) / ((a_bid + a_ask) / 2.0) - 1.0
            detail[e, 4] = premium / years if family == 1 else premium * (8760.0 / hours)
            detail[e, 5] = b_rate * (8760.0 / hours) if is_perp[b] else 0.0
            detail[e, 6] = 1.0 if usable else 0.0
    return n_ev, slot, seq, ts, values, suppressed


def _parity_events_py(
    emit_i: _I,
    emit_f: _F,
    cand_call: _I,
    in_base: _B,
    cand_put: _I,
    expiry: _I,
    max_age: _I,
    future_inverse: _B,
    cand_f: _F,
    rate: float,
    dividend: float,
    max_notional: float,
    min_profit: float,
) -> tuple[int, _I, _I, _I, _F, _I]:
    """Exact evaluation of the emitted parity rows (the formulas of the ``_parity`` docstring, reversal then
    conversion): the active rows as events ``(n, slot, seq, ts, values)`` in row order and the suppressed
    counters ``(flagged, stale)``."""
    n = emit_i.shape[0]
    slot, seq, ts, values, suppressed = _event_arrays(2 * n)
    n_ev = 0
    for e in range(n):
        cand = emit_i[e, 0]
        now = emit_i[e, 2]
        strike, option_fee, fee_cap, future_fee, f_contract, latency = (
            cand_f[cand, 0], cand_f[cand, 1], cand_f[cand, 2], cand_f[cand, 3], cand_f[cand, 4], cand_f[cand, 5]
        )  # fmt: skip
        cu, pu = emit_f[e, 4], emit_f[e, 10]
        c_mult = cu if in_base[cand_call[cand]] else 1.0
        p_mult = pu if in_base[cand_put[cand]] else 1.0
        call_bid, call_ask = emit_f[e, 0] * c_mult, emit_f[e, 1] * c_mult
        put_bid, put_ask = emit_f[e, 6] * p_mult, emit_f[e, 7] * p_mult
        t = (expiry[cand] - now) / _NS_PER_YEAR
        held = _nmax(t, 0.0)
        have = emit_i[e, 6] != 0
        c_time, p_time, f_time = emit_i[e, 3], emit_i[e, 4], emit_i[e, 5]
        if have:
            f_bid, f_ask = emit_f[e, 12], emit_f[e, 13]
        else:
            index = cu if c_time >= p_time else pu
            f_bid = index * math.exp((rate - dividend) * held)
            f_ask = f_bid
        discount = math.exp(-rate * held)
        reversal = call_bid - put_ask - (f_ask - strike) * discount - (
            _nmin(option_fee * cu, fee_cap * call_bid) + _nmin(option_fee * pu, fee_cap * put_ask) + future_fee * f_ask
        )  # fmt: skip
        conversion = put_bid - call_ask - (strike - f_bid) * discount - (
            _nmin(option_fee * cu, fee_cap * call_ask) + _nmin(option_fee * pu, fee_cap * put_bid) + future_fee * f_bid
        )  # fmt: skip
        age = max_age[cand]
        c_ok, p_ok, f_ok = emit_f[e, 5] == 0.0, emit_f[e, 11] == 0.0, emit_f[e, 16] == 0.0
        c_fresh, p_fresh, f_fresh = now - c_time <= age, now - p_time <= age, now - f_time <= age
        legs_ok = c_ok and c_fresh and p_ok and p_fresh and (not have or (f_ok and f_fresh)) and t > 0.0
        any_stale = (c_ok and not c_fresh) or (p_ok and not p_fresh) or (have and f_ok and not f_fresh)
        for trade in range(2):
            if trade == 0:  # reversal: sell the call, buy the put and the future
                unit, size_0, size_1, f_size, f_price = reversal, emit_f[e, 2], emit_f[e, 9], emit_f[e, 15], f_ask
                price_0, price_1, buy, sell = call_bid, put_ask, put_ask, call_bid
            else:  # conversion: buy the call, sell the put and the future
                unit, size_0, size_1, f_size, f_price = conversion, emit_f[e, 3], emit_f[e, 8], emit_f[e, 14], f_bid
                price_0, price_1, buy, sell = call_ask, put_bid, call_ask, put_bid
            future_size = np.inf
            if have:
                future_size = f_size * f_contract / f_price if future_inverse[cand] else f_size * f_contract
            size = _nmin(_nmin(size_0, size_1), _nmin(future_size, max_notional / f_price))
            if not (np.isfinite(size) and size > 0.0):
                size = 0.0
            profit = unit * size
            if not (np.isfinite(profit) and profit > min_profit and size > 0.0 and t > 0.0):
                continue
            if not legs_ok:
                suppressed[1 if any_stale else 0] += 1
                continue
            age_ms = age / 1e6
            fresh = _nmin(_freshness((now - c_time) / 1e6, latency, age_ms), _freshness((now - p_time) / 1e6, latency,
                                                                                         age_ms))  # fmt: skip
            depth = _nmin(_depth(size, size_0), _depth(size, size_1))
            if have:
                fresh = _nmin(fresh, _freshness((now - f_time) / 1e6, latency, age_ms))
                depth = _nmin(depth, _depth(size, future_size))
            n_ev = _event(n_ev, slot, seq, ts, values, 2 * cand + trade, emit_i[e, 1], now, buy, sell, size, profit,
                          100.0 * unit / f_price, fresh * depth, price_0, price_1, f_price)  # fmt: skip
    return n_ev, slot, seq, ts, values, suppressed


def _reasons_py(values: _F, flags: _I, known: _B, blocking: int) -> npt.NDArray[np.uint8]:
    """The :class:`arbkit.align.Reason` of every row (``values`` columns ``bid, ask, bid_size, ask_size``): the
    checks of :func:`arbkit.align.check_quotes` in their order, the first that applies."""
    out = np.zeros(values.shape[0], dtype=np.uint8)
    for i in range(values.shape[0]):
        bid, ask, bid_size, ask_size = values[i, 0], values[i, 1], values[i, 2], values[i, 3]
        if not (np.isfinite(bid) and np.isfinite(ask)):
            out[i] = 1
        elif bid <= 0.0 or ask <= 0.0:
            out[i] = 2
        elif bid > ask:
            out[i] = 3
        elif not (np.isfinite(bid_size) and np.isfinite(ask_size)) or bid_size < 0.0 or ask_size < 0.0:
            out[i] = 4
        elif not known[i]:
            out[i] = 5
        elif (flags[i] & blocking) != 0:
            out[i] = 6
    return out


def _close(s: int, n: int, slots: _I, ints: _I, floats: _F, open_i: _I, open_f: _F) -> tuple[int, _I, _I, _F]:
    """Append slot ``s``'s open episode to the closed ones (``n`` so far, arrays doubled when full)."""
    if n == slots.shape[0]:
        ints, floats = _grow_i(ints), _grow_f(floats)
        grown = np.empty(slots.shape[0] * 2, dtype=np.int64)
        grown[:n] = slots[:n]
        slots = grown
    slots[n] = s
    ints[n] = open_i[s]
    floats[n] = open_f[s]
    return n + 1, slots, ints, floats


def _fold_py(
    slot: _I, seq: _I, ts: _I, values: _F, candidate_of: _I, open_i: _I, open_f: _F, next_seq: _I
) -> tuple[int, _I, _I, _F]:
    """Fold events (in seq order within each slot, e.g. row order; ``values`` in :data:`OPEN_F` order, the peak
    column holding the event's ``profit``) into the open episodes; return the closed ones ``(n, slots, ints,
    floats)``."""
    n_cols_i = open_i.shape[1]
    n_cols_f = open_f.shape[1]
    closed_slot = np.empty(max(16, slot.shape[0]), dtype=np.int64)
    closed_i = np.empty((closed_slot.shape[0], n_cols_i), dtype=np.int64)
    closed_f = np.empty((closed_slot.shape[0], n_cols_f), dtype=np.float64)
    n_closed = 0
    for e in range(slot.shape[0]):
        s = slot[e]
        if open_i[s, 4] > 0 and seq[e] == open_i[s, 1] + 1:
            open_i[s, 1] = seq[e]
            open_i[s, 3] = ts[e]
            open_i[s, 4] += 1
            peak = open_f[s, 4]
            for c in range(n_cols_f):
                open_f[s, c] = values[e, c]
            profit = values[e, 3]
            open_f[s, 4] = profit if profit > peak else peak
            continue
        if open_i[s, 4] > 0:
            n_closed, closed_slot, closed_i, closed_f = _close(
                s, n_closed, closed_slot, closed_i, closed_f, open_i, open_f
            )
        open_i[s, 0] = seq[e]
        open_i[s, 1] = seq[e]
        open_i[s, 2] = ts[e]
        open_i[s, 3] = ts[e]
        open_i[s, 4] = 1
        for c in range(n_cols_f):
            open_f[s, c] = values[e, c]
        open_f[s, 4] = values[e, 3]
    for s in range(open_i.shape[0]):
        if open_i[s, 4] > 0 and open_i[s, 1] + 1 < next_seq[candidate_of[s]]:
            n_closed, closed_slot, closed_i, closed_f = _close(
                s, n_closed, closed_slot, closed_i, closed_f, open_i, open_f
            )
            open_i[s] = 0
            open_f[s] = np.nan
    return n_closed, closed_slot, closed_i, closed_f


_jit: Callable[[Any], Any] = numba.njit(cache=True, nogil=True, error_model="numpy")
_grow_i = cast(Any, _jit(_grow_i))
_grow_f = cast(Any, _jit(_grow_f))
_room = cast(Any, _jit(_room))
_close = cast(Any, _jit(_close))
_refresh = cast(Any, _jit(_refresh))
_next_funding = cast(Any, _jit(_next_funding))
_nmin = cast(Any, _jit(_nmin))
_nmax = cast(Any, _jit(_nmax))
_clip01 = cast(Any, _jit(_clip01))
_freshness = cast(Any, _jit(_freshness))
_depth = cast(Any, _jit(_depth))
_event = cast(Any, _jit(_event))
_event_arrays = cast(Any, _jit(_event_arrays))
_basis_leg = cast(Any, _jit(_basis_leg))
_Scan = Callable[..., tuple[int, _I, _F]]
_Events = Callable[..., tuple[int, _I, _I, _I, _F, _I]]
basis_events = cast(_Events, _jit(_basis_events_py))
parity_events = cast(_Events, _jit(_parity_events_py))
basis_scan = cast(_Scan, _jit(_basis_scan_py))
parity_scan = cast(_Scan, _jit(_parity_scan_py))
fold = cast(Callable[..., tuple[int, _I, _I, _F]], _jit(_fold_py))
reasons = cast(Callable[[_F, _I, _B, int], npt.NDArray[np.uint8]], _jit(_reasons_py))
