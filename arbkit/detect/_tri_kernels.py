"""Compiled (numba) scan of the triangular detector: incremental cycle screening over a batch's timeline.

Every timeline row updates one ``(venue, symbol)`` cell, so a cycle's log-rate sum only changes at rows that
update one of its columns.  :func:`scan_cycles` walks the rows once, keeps each column's current log rates, and
re-evaluates only the cycles that read the updated column (all cycles at the batch's first row).  Each positive
evaluation opens a *span* ``[start, end)``: the rows until the cycle's next evaluation, during which none of its
legs changes.  So everything computed from the legs' quotes is the same on every row of a span, and callers size
a span once instead of once per row.

The sums are added in leg order from ``0.0`` with the same per-leg terms (``log rate + log(1 - fee)``) as a NumPy
gather would use, so which spans are positive depends only on the quotes, never on where a batch was cut.  The
logs themselves are taken by NumPy before the call (one vectorized ``np.log``), so they are the values the full
grid would use.

Most rows only move cycles that are clearly unprofitable: each cycle keeps a running estimate (its last exact sum
plus the changes of its terms since), and only cycles whose estimate is within ``_MARGIN`` of zero (or that have
absorbed ``_MAX_ABSORBED`` changes) are summed exactly.  The estimate's rounding drift is orders of magnitude
below the margin, so every positive/non-positive decision is the exact sum's.

A plain Python loop, compiled once per process (``numba.njit(cache=True)``, cached on disk): every argument has a
fixed dtype and layout, so batches of any length reuse one compiled signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from arbkit.align import Reason

__all__ = [
    "TextTable",
    "episode_columns",
    "fold_runs",
    "group_runs",
    "prepare_scan",
    "scan_cycles",
    "scan_signatures",
    "size_spans",
    "timeline_rows",
]

_I = npt.NDArray[np.int64]
_F = npt.NDArray[np.float64]
_B = npt.NDArray[np.bool_]

#: A cycle whose running estimate is below ``-_MARGIN`` is not summed exactly: the estimate drifts from the exact
#: sum by a few ulps per absorbed change (about 1e-14 for log rates of any market price), and it is replaced by
#: an exact sum after ``_MAX_ABSORBED`` changes, so it cannot be off by 1e-9 and the decision is the exact one.
_MARGIN = 1e-9
_MAX_ABSORBED = 32


def _scan_py(
    row_cell: Any,
    row_log_sell: Any,
    row_log_buy: Any,
    cell_log_sell: Any,
    cell_log_buy: Any,
    cell_column: Any,
    column_cell: Any,
    column_ptr: Any,
    column_cycles: Any,
    cycle_edges: Any,
    edge_column: Any,
    edge_sell: Any,
    edge_log_fee: Any,
    column_edges: Any,
    cycles: Any,
    entry_side: Any,
) -> Any:
    n = row_cell.shape[0]
    n_cells = cell_log_sell.shape[0]
    n_edges = edge_column.shape[0]
    n_cycles, legs = cycle_edges.shape
    source = np.empty(n_cells, dtype=np.int64)  # where each cell's current quote is: row r, or n + cell (carried)
    for c in range(n_cells):
        source[c] = n + c
    # Current term of every edge (log rate + log(1 - fee)); transfers and the extra last slot (pads) add 0.
    rate = np.zeros(n_edges + 1, dtype=np.float64)
    for e in range(n_edges):
        c = edge_column[e]
        if c >= 0:
            cell = column_cell[c]
            rate[e] = (cell_log_sell[cell] if edge_sell[e] else cell_log_buy[cell]) + edge_log_fee[e]
    # Running estimate of every cycle's sum (last exact sum plus the changes of its terms since), and how many
    # changes it has absorbed.  A cycle is summed exactly only when the estimate is not clearly negative.
    estimate = np.zeros(n_cycles, dtype=np.float64)
    absorbed = np.zeros(n_cycles, dtype=np.int64)
    cap = n_cycles + 64
    span_cycle = np.empty(cap, dtype=np.int64)
    span_start = np.empty(cap, dtype=np.int64)
    span_end = np.empty(cap, dtype=np.int64)
    span_source = np.empty((cap, legs), dtype=np.int64)
    open_span = np.full(n_cycles, -1, dtype=np.int64)
    change = np.zeros(2, dtype=np.float64)
    m = 0
    for r in range(n):
        cell = row_cell[r]
        source[cell] = r
        column = cell_column[cell]
        if column >= 0:
            sell_edge, buy_edge = column_edges[column, 0], column_edges[column, 1]
            new_sell = row_log_sell[r] + edge_log_fee[sell_edge]
            new_buy = row_log_buy[r] + edge_log_fee[buy_edge]
            change[0], change[1] = new_sell - rate[sell_edge], new_buy - rate[buy_edge]
            rate[sell_edge], rate[buy_edge] = new_sell, new_buy
        if r == 0:
            lo, hi = 0, n_cycles
        elif column >= 0:
            lo, hi = column_ptr[column], column_ptr[column + 1]
        else:
            continue
        for i in range(lo, hi):
            k = i if r == 0 else column_cycles[i]
            if r > 0 and absorbed[k] < _MAX_ABSORBED:
                guess = estimate[k] + change[entry_side[i]]
                if guess < -_MARGIN:  # certainly not positive (NaN never passes this test)
                    estimate[k] = guess
                    absorbed[k] += 1
                    if open_span[k] >= 0:
                        span_end[open_span[k]] = r
                        open_span[k] = -1
                    continue
            if open_span[k] >= 0:
                span_end[open_span[k]] = r
            total = 0.0
            for leg in range(legs):
                total += rate[cycles[k, leg]]
            estimate[k] = total
            absorbed[k] = 0
            if total > 0.0:
                if m == cap:
                    cap *= 2
                    span_cycle = _grow(span_cycle, cap)
                    span_start = _grow(span_start, cap)
                    span_end = _grow(span_end, cap)
                    wider = np.empty((cap, legs), dtype=np.int64)
                    wider[:m] = span_source[:m]
                    span_source = wider
                span_cycle[m], span_start[m], span_end[m] = k, r, n
                for leg in range(legs):
                    e = cycle_edges[k, leg]
                    c = edge_column[e] if e >= 0 else -1
                    span_source[m, leg] = source[column_cell[c]] if c >= 0 else -1
                open_span[k] = m
                m += 1
            else:
                open_span[k] = -1
    return span_cycle[:m].copy(), span_start[:m].copy(), span_end[:m].copy(), span_source[:m].copy(), source


def _prepare_py(column_ptr: Any, column_cycles: Any, cycle_edges: Any, edge_column: Any, edge_sell: Any) -> Any:
    n_columns, n_edges = column_ptr.shape[0] - 1, edge_column.shape[0]
    legs = cycle_edges.shape[1]
    column_edges = np.full((n_columns, 2), n_edges, dtype=np.int64)  # the sell and buy edge of each column
    for e in range(n_edges):
        if edge_column[e] >= 0:
            column_edges[edge_column[e], 0 if edge_sell[e] else 1] = e
    cycles = np.where(cycle_edges >= 0, cycle_edges, n_edges)  # pads read the last rate slot (0)
    # Which edge (sell or buy) of the column each CSR entry's cycle uses: a simple cycle uses a column once.
    entry_side = np.zeros(column_cycles.shape[0], dtype=np.int64)
    for c in range(n_columns):
        for i in range(column_ptr[c], column_ptr[c + 1]):
            for leg in range(legs):
                if cycles[column_cycles[i], leg] == column_edges[c, 1]:
                    entry_side[i] = 1
    return column_edges, cycles, entry_side


_NO_DEADLINE = np.iinfo(np.int64).max
_LOT_SLACK = 1.0 + 1e-12  # as arbkit.detect._depth._floor_lot


def _floor_lot_py(size: float, lot: float) -> float:
    return np.floor(size / lot * _LOT_SLACK) * lot if lot > 0 else size


def _size_py(
    cycle: Any,
    start: Any,
    end: Any,
    source: Any,
    bid: Any,
    bid_size: Any,
    ask: Any,
    ask_size: Any,
    clock: Any,
    reason: Any,
    time: Any,
    cycle_edges: Any,
    edge_column: Any,
    edge_sell: Any,
    fee: Any,
    lot: Any,
    min_notional: Any,
    limit_ns: Any,
    max_notional: float,
    min_profit: float,
    keep_only: bool,
) -> Any:
    n_units, legs = source.shape
    unit = np.empty(n_units, dtype=np.int64)
    stop = np.empty(n_units, dtype=np.int64)
    amount_out = np.empty(n_units, dtype=np.float64)
    profit_out = np.empty(n_units, dtype=np.float64)
    growth_out = np.empty(n_units, dtype=np.float64)
    notional_out = np.empty(n_units, dtype=np.bool_)
    trade = np.empty((n_units, legs), dtype=np.bool_)
    column = np.empty((n_units, legs), dtype=np.int64)
    sell = np.empty((n_units, legs), dtype=np.bool_)
    leg_fee = np.empty((n_units, legs), dtype=np.float64)
    price = np.empty((n_units, legs), dtype=np.float64)
    size = np.empty((n_units, legs), dtype=np.float64)
    displayed = np.empty((n_units, legs), dtype=np.float64)
    quote_time = np.empty((n_units, legs), dtype=np.int64)
    rate = np.empty(legs, dtype=np.float64)
    before = np.empty(legs, dtype=np.float64)
    per_start = np.empty(legs, dtype=np.float64)
    leg_lot = np.empty(legs, dtype=np.float64)
    suppressed = np.zeros(2, dtype=np.int64)  # stale rows, flagged rows
    m = 0
    for u in range(n_units):
        k = cycle[u]
        present, flag_free, deadline = True, True, _NO_DEADLINE
        for leg in range(legs):
            e = cycle_edges[k, leg]
            c = edge_column[e] if e >= 0 else -1
            src = max(source[u, leg], 0)  # pads and transfers read slot 0, as the NumPy gather did
            is_trade = c >= 0
            trade[m, leg] = is_trade
            column[m, leg] = max(c, 0)
            sell[m, leg] = edge_sell[max(e, 0)]
            leg_fee[m, leg] = 0.0 if e >= 0 and not is_trade else fee[max(c, 0)]  # pads read column 0's fee
            quote_time[m, leg] = clock[src]
            if is_trade:
                b, a = bid[src], ask[src]
                if not (np.isfinite(b) and np.isfinite(a) and b > 0 and a > 0):
                    present = False
                if reason[src] != 0:
                    flag_free = False
                else:
                    deadline = min(deadline, clock[src] + limit_ns[c])
        # Stale from the first row whose clock passes the deadline (a binary search inside the unit).
        lo, hi = start[u], end[u]
        while lo < hi:
            mid = (lo + hi) // 2
            if time[mid] <= deadline:
                lo = mid + 1
            else:
                hi = mid
        if present:
            suppressed[0] += end[u] - lo
            if not flag_free:
                suppressed[1] += lo - start[u]
        if not (present and flag_free and lo > start[u]):
            continue
        # Sizing, operation for operation as the NumPy version did it (so values are bit-identical).
        for leg in range(legs):
            src = max(source[u, leg], 0)
            b, a = bid[src], ask[src]
            s = sell[m, leg]
            rate[leg] = 1.0 if not trade[m, leg] else (b if s else 1.0 / a) * (1.0 - leg_fee[m, leg])
            before[leg] = 1.0 if leg == 0 else before[leg - 1] * rate[leg - 1]
            price[m, leg] = b if s else a
            displayed[m, leg] = bid_size[src] if s else ask_size[src]
            per_start[leg] = before[leg] if s else before[leg] / a
            leg_lot[leg] = lot[column[m, leg]] if trade[m, leg] else 0.0
        amount = np.inf
        for leg in range(legs):
            if not trade[m, leg]:
                capacity = np.inf
            else:
                capacity = displayed[m, leg] if sell[m, leg] else displayed[m, leg] * price[m, leg]
            amount = _nan_min(amount, capacity / before[leg], leg == 0)
        amount = _nan_min(amount, max_notional, False)
        ratio = 1.0
        for leg in range(legs):
            raw = amount * per_start[leg]
            part = _floor_lot(raw, leg_lot[leg]) / raw if trade[m, leg] and raw > 0 else 1.0
            ratio = _nan_min(ratio, part, leg == 0)
        amount = amount * ratio
        notional_ok = True
        growth = rate[0]
        for leg in range(legs):
            if leg > 0:
                growth = growth * rate[leg]
            if trade[m, leg]:
                size[m, leg] = _floor_lot(amount * per_start[leg], leg_lot[leg])
                if not size[m, leg] * price[m, leg] >= min_notional[column[m, leg]]:
                    notional_ok = False
            else:
                size[m, leg] = 0.0
        profit = amount * (growth - 1.0)
        if keep_only and not (
            growth > 1.0 and amount > 0 and notional_ok and profit >= min_profit and np.isfinite(profit)
        ):
            continue
        unit[m], stop[m] = u, lo
        amount_out[m], profit_out[m], growth_out[m], notional_out[m] = amount, profit, growth, notional_ok
        m += 1
    return (
        unit[:m].copy(), stop[:m].copy(), amount_out[:m].copy(), profit_out[:m].copy(), growth_out[:m].copy(),
        notional_out[:m].copy(), trade[:m].copy(), column[:m].copy(), sell[:m].copy(), leg_fee[:m].copy(),
        price[:m].copy(), size[:m].copy(), displayed[:m].copy(), quote_time[:m].copy(), suppressed,
    )  # fmt: skip


def _nan_min_py(current: float, value: float, first: bool) -> float:
    """``min`` that propagates NaN, as NumPy's ``min`` reduction and ``minimum`` do."""
    if first or np.isnan(value) or value < current:
        return value
    return current


def _group_py(cycle: Any, start: Any, stop: Any, profit: Any) -> Any:
    n = cycle.shape[0]
    width = 1
    for i in range(n):
        width = max(width, stop[i] + 1)
    order = np.argsort(cycle * width + start, kind="mergesort")
    run_first = np.empty(n, dtype=np.int64)
    run_last = np.empty(n, dtype=np.int64)
    rows = np.empty(n, dtype=np.int64)
    peak = np.empty(n, dtype=np.float64)
    m = -1
    for j in range(n):
        h = order[j]
        if m >= 0 and cycle[h] == cycle[run_last[m]] and start[h] == stop[run_last[m]]:
            rows[m] += stop[h] - start[h]
            if np.isnan(profit[h]) or profit[h] > peak[m]:  # NaN propagates, as in np.maximum
                peak[m] = profit[h]
        else:
            m += 1
            run_first[m], rows[m], peak[m] = h, stop[h] - start[h], profit[h]
        run_last[m] = h
    return run_first[: m + 1].copy(), run_last[: m + 1].copy(), rows[: m + 1].copy(), peak[: m + 1].copy()


def _clip01_py(x: float) -> float:
    """``np.clip(x, 0.0, 1.0)`` operation for operation (NaN passes through)."""
    if np.isnan(x):
        return x
    y = x if x > 0.0 else 0.0
    return y if y < 1.0 else 1.0


def _run_confidence_py(
    h: int,
    row_time: int,
    trade: Any,
    column: Any,
    size: Any,
    displayed: Any,
    quote_time: Any,
    latency_ms: Any,
    max_age_ms: Any,
) -> float:
    """Confidence of unit ``h`` at ``row_time``: :func:`arbkit.detect._confidence.freshness`, ``depth_factor``
    and ``row_confidence`` of its weakest legs, with their operations in their order (bit-identical)."""
    least_fresh, least_depth = 1.0, 1.0
    for leg in range(trade.shape[1]):
        fresh, depth = 1.0, 1.0
        if trade[h, leg]:
            c = column[h, leg]
            age = (row_time - quote_time[h, leg]) / 1e6
            latency = latency_ms[c]
            span = max_age_ms[c] - latency
            span = span if np.isnan(span) or span >= 1e-9 else 1e-9  # np.maximum(span, 1e-9)
            fresh = _clip01(1.0 - (age - latency) / span)
            d = displayed[h, leg]
            used = size[h, leg] / d if d > 0 else 1.0
            depth = 1.0 - 0.5 * _clip01(used)
        least_fresh = _nan_min(least_fresh, fresh, leg == 0)
        least_depth = _nan_min(least_depth, depth, leg == 0)
    return least_fresh * least_depth


def _fold_py(
    cycle: Any,
    start: Any,
    stop: Any,
    amount: Any,
    profit: Any,
    growth: Any,
    trade: Any,
    column: Any,
    price: Any,
    size: Any,
    displayed: Any,
    quote_time: Any,
    time: Any,
    seq0: int,
    n_rows: int,
    latency_ms: Any,
    max_age_ms: Any,
    o_cycle: Any,
    o_seq_start: Any,
    o_seq_last: Any,
    o_ts_start: Any,
    o_ts_end: Any,
    o_rows: Any,
    o_size: Any,
    o_profit: Any,
    o_peak: Any,
    o_percentage: Any,
    o_confidence: Any,
    o_price: Any,
    o_leg_size: Any,
) -> Any:
    first, last, rows, peak = _group(cycle, start, stop, profit)
    n_runs, n_open, legs = first.shape[0], o_cycle.shape[0], trade.shape[1]
    # The runs' episodes (payload of their last unit), continued from an open episode of their cycle when they
    # start right after it.
    r_int = np.empty((n_runs, 6), dtype=np.int64)  # cycle, seq_start, seq_last, ts_start, ts_end, rows
    r_float = np.empty((n_runs, 5), dtype=np.float64)  # size, profit, peak, percentage, confidence
    r_price = np.zeros((n_runs, legs), dtype=np.float64)
    r_leg_size = np.zeros((n_runs, legs), dtype=np.float64)
    continued = np.zeros(n_open, dtype=np.bool_)
    n_still = 0
    for j in range(n_runs):
        h0, h = first[j], last[j]
        first_row, last_row = start[h0], stop[h] - 1
        k = cycle[h0]
        r_int[j, 0], r_int[j, 1], r_int[j, 2] = k, seq0 + first_row, seq0 + last_row
        r_int[j, 3], r_int[j, 4], r_int[j, 5] = time[first_row], time[last_row], rows[j]
        r_float[j, 0], r_float[j, 1], r_float[j, 2] = amount[h], profit[h], peak[j]
        r_float[j, 3] = 100.0 * (growth[h] - 1.0)
        r_float[j, 4] = _run_confidence(
            h, time[last_row], trade, column, size, displayed, quote_time, latency_ms, max_age_ms
        )
        for leg in range(legs):
            if trade[h, leg]:
                r_price[j, leg], r_leg_size[j, leg] = price[h, leg], size[h, leg]
        lo, hi = 0, n_open  # the open episode of cycle k (open episodes are sorted by cycle)
        while lo < hi:
            mid = (lo + hi) // 2
            if o_cycle[mid] < k:
                lo = mid + 1
            else:
                hi = mid
        if lo < n_open and o_cycle[lo] == k and o_seq_last[lo] + 1 == r_int[j, 1]:
            continued[lo] = True
            r_int[j, 1], r_int[j, 3] = o_seq_start[lo], o_ts_start[lo]
            r_int[j, 5] += o_rows[lo]
            if not r_float[j, 2] > o_peak[lo]:  # max(open, run) as Python's max
                r_float[j, 2] = o_peak[lo]
        if r_int[j, 2] + 1 >= seq0 + n_rows:
            n_still += 1
    n_closed = n_runs - n_still + n_open - int(continued.sum())
    still = _episodes_out(n_still, legs)
    closed = _episodes_out(n_closed, legs)
    a, b = 0, 0
    for j in range(n_runs):
        if r_int[j, 2] + 1 >= seq0 + n_rows:
            _put(still, a, r_int[j], r_float[j], r_price[j], r_leg_size[j])
            a += 1
        else:
            _put(closed, b, r_int[j], r_float[j], r_price[j], r_leg_size[j])
            b += 1
    ints = np.empty(6, dtype=np.int64)
    floats = np.empty(5, dtype=np.float64)
    for i in range(n_open):
        if not continued[i]:
            ints[0], ints[1], ints[2], ints[3] = o_cycle[i], o_seq_start[i], o_seq_last[i], o_ts_start[i]
            ints[4], ints[5] = o_ts_end[i], o_rows[i]
            floats[0], floats[1], floats[2] = o_size[i], o_profit[i], o_peak[i]
            floats[3], floats[4] = o_percentage[i], o_confidence[i]
            _put(closed, b, ints, floats, o_price[i], o_leg_size[i])
            b += 1
    return still, closed


def _episodes_out_py(n: int, legs: int) -> Any:
    return (
        np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64),
        np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64), np.empty((n, legs), dtype=np.float64),
        np.empty((n, legs), dtype=np.float64),
    )  # fmt: skip


def _put_py(out: Any, i: int, ints: Any, floats: Any, price: Any, leg_size: Any) -> None:
    out[0][i], out[1][i], out[2][i], out[3][i], out[4][i], out[5][i] = (
        ints[0],
        ints[1],
        ints[2],
        ints[3],
        ints[4],
        ints[5],
    )
    out[6][i], out[7][i], out[8][i], out[9][i], out[10][i] = floats[0], floats[1], floats[2], floats[3], floats[4]
    out[11][i, :] = price
    out[12][i, :] = leg_size


def _columns_py(
    order: Any,
    cycle: Any,
    ts_start: Any,
    ts_end: Any,
    rows: Any,
    size: Any,
    profit: Any,
    peak: Any,
    percentage: Any,
    confidence: Any,
    price: Any,
    leg_size: Any,
    persistence: Any,
    cycle_trade: Any,
    leg_start: Any,
    first_trade: Any,
    cycle_offsets: Any,
    cycle_data: Any,
    leg_offsets: Any,
    leg_data: Any,
) -> Any:
    n, legs = order.shape[0], cycle_trade.shape[1]
    out_cycle = np.empty(n, dtype=np.int64)
    ints = np.empty((3, n), dtype=np.int64)  # ts_start, ts_end, rows
    floats = np.empty((6, n), dtype=np.float64)  # buy price, size, profit, peak, percentage, confidence
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    for j in range(n):
        k = cycle[order[j]]
        offsets[j + 1] = offsets[j] + leg_start[k + 1] - leg_start[k]
    total = offsets[n]
    leg_rows = np.empty(total, dtype=np.int64)
    leg_price = np.empty(total, dtype=np.float64)
    leg_amount = np.empty(total, dtype=np.float64)
    m = 0
    for j in range(n):
        i = order[j]
        k = cycle[i]
        out_cycle[j] = k
        ints[0, j], ints[1, j], ints[2, j] = ts_start[i], ts_end[i], rows[i]
        floats[0, j], floats[1, j], floats[2, j] = price[i, first_trade[k]], size[i], profit[i]
        floats[3, j], floats[4, j] = peak[i], percentage[i]
        floats[5, j] = _clip01(confidence[i] * persistence[i])  # np.clip(confidence * persistence, 0, 1)
        row = leg_start[k]
        for leg in range(legs):
            if cycle_trade[k, leg]:
                leg_rows[m], leg_price[m], leg_amount[m] = row, price[i, leg], leg_size[i, leg]
                row += 1
                m += 1
    o0, d0 = _gather_text(out_cycle, cycle_offsets[0], cycle_data[0])
    o1, d1 = _gather_text(out_cycle, cycle_offsets[1], cycle_data[1])
    o2, d2 = _gather_text(out_cycle, cycle_offsets[2], cycle_data[2])
    o3, d3 = _gather_text(leg_rows, leg_offsets[0], leg_data[0])
    o4, d4 = _gather_text(leg_rows, leg_offsets[1], leg_data[1])
    o5, d5 = _gather_text(leg_rows, leg_offsets[2], leg_data[2])
    return ints, floats, offsets, leg_price, leg_amount, (o0, o1, o2, o3, o4, o5), (d0, d1, d2, d3, d4, d5)


def _gather_text_py(index: Any, offsets: Any, data: Any) -> Any:
    n = index.shape[0]
    out_offsets = np.empty(n + 1, dtype=np.int64)
    out_offsets[0] = 0
    for j in range(n):
        k = index[j]
        out_offsets[j + 1] = out_offsets[j] + offsets[k + 1] - offsets[k]
    out = np.empty(out_offsets[n], dtype=np.uint8)
    for j in range(n):
        k, at = index[j], out_offsets[j]
        for c in range(offsets[k + 1] - offsets[k]):
            out[at + c] = data[offsets[k] + c]
    return out_offsets, out


_MISSING_PRICE, _NON_POSITIVE_PRICE = int(Reason.MISSING_PRICE), int(Reason.NON_POSITIVE_PRICE)
_CROSSED, _BAD_SIZE = int(Reason.CROSSED), int(Reason.BAD_SIZE)
_UNKNOWN, _FLAGGED, _N_REASONS = int(Reason.UNKNOWN_INSTRUMENT), int(Reason.FLAGGED), len(Reason)


def _row_reason_py(
    bid: float, ask: float, bid_size: float, ask_size: float, known: bool, flags: int, blocking: int
) -> int:
    """A row's :class:`arbkit.align.Reason`: :func:`arbkit.align.check_quotes`'s checks in their order, the first
    that applies (0: usable)."""
    if not (np.isfinite(bid) and np.isfinite(ask)):
        return _MISSING_PRICE
    if bid <= 0.0 or ask <= 0.0:
        return _NON_POSITIVE_PRICE
    if bid > ask:
        return _CROSSED
    if not (np.isfinite(bid_size) and np.isfinite(ask_size)) or bid_size < 0.0 or ask_size < 0.0:
        return _BAD_SIZE
    if not known:
        return _UNKNOWN
    if (flags & blocking) != 0:
        return _FLAGGED
    return 0


def _timeline_rows_py(
    bid: Any,
    ask: Any,
    bid_size: Any,
    ask_size: Any,
    flags: Any,
    blocking: int,
    clock: Any,
    pair: Any,
    spot: Any,
    known: Any,
    pair_cell: Any,
) -> Any:
    n = bid.shape[0]
    reason = np.empty(n, dtype=np.uint8)
    counts = np.zeros(_N_REASONS, dtype=np.int64)
    take = np.empty(n, dtype=np.int64)
    out_f = np.empty((4, n), dtype=np.float64)  # bid, bid_size, ask, ask_size of the spot rows
    out_clock = np.empty(n, dtype=np.int64)
    out_reason = np.empty(n, dtype=np.uint8)
    out_cell = np.empty(n, dtype=np.int64)
    m = 0
    ordered = True
    for i in range(n):
        b, a, bs, as_, p = bid[i], ask[i], bid_size[i], ask_size[i], pair[i]
        r = _row_reason(b, a, bs, as_, known[p], flags[i], blocking)
        reason[i] = r
        counts[r] += 1
        if spot[p]:
            if m > 0 and clock[i] < out_clock[m - 1]:
                ordered = False
            take[m], out_clock[m], out_reason[m], out_cell[m] = i, clock[i], r, pair_cell[p]
            out_f[0, m], out_f[1, m], out_f[2, m], out_f[3, m] = b, bs, a, as_
            m += 1
    return reason, counts, take[:m], ordered, out_f[:, :m], out_clock[:m], out_reason[:m], out_cell[:m]


def _grow_py(values: Any, size: int) -> Any:
    out = np.empty(size, dtype=values.dtype)
    out[: values.shape[0]] = values
    return out


_grow = numba.njit(cache=True)(_grow_py)
_scan = numba.njit(cache=True)(_scan_py)
_prepare = numba.njit(cache=True)(_prepare_py)
_floor_lot = numba.njit(cache=True)(_floor_lot_py)
_nan_min = numba.njit(cache=True)(_nan_min_py)
_size = numba.njit(cache=True)(_size_py)
_group = numba.njit(cache=True)(_group_py)
_clip01 = numba.njit(cache=True, nogil=True, error_model="numpy")(_clip01_py)
_run_confidence = numba.njit(cache=True, nogil=True, error_model="numpy")(_run_confidence_py)
_episodes_out = numba.njit(cache=True, nogil=True)(_episodes_out_py)
_put = numba.njit(cache=True, nogil=True)(_put_py)
_fold = numba.njit(cache=True, nogil=True, error_model="numpy")(_fold_py)
_columns = numba.njit(cache=True, nogil=True)(_columns_py)
_row_reason = numba.njit(cache=True, nogil=True)(_row_reason_py)
_timeline_rows = numba.njit(cache=True, nogil=True)(_timeline_rows_py)
_gather_text = numba.njit(cache=True, nogil=True)(_gather_text_py)


_Sized = tuple[_I, _I, _F, _F, _F, _B, _B, _I, _B, _F, _F, _F, _F, _I, _I]


def size_spans(
    units: tuple[_I, _I, _I, _I],
    quotes: tuple[_F, _F, _F, _F, _I, npt.NDArray[np.uint8]],
    time: _I,
    graph: tuple[_I, _I, _B, _F, _F, _F, _I],
    max_notional: float,
    min_profit: float,
    *,
    keep_only: bool,
) -> _Sized:
    """Check and size every unit ``(cycle, start, end, leg sources)`` of a scan (see
    :func:`arbkit.detect._triangular._evaluate`): the per-unit NumPy sizing compiled into one loop, with the same
    operations in the same order, so values are bit-identical to it.

    ``quotes`` are the extended ``(bid, bid_size, ask, ask_size, clock, reason)`` (batch rows, then carried
    cells), ``time`` the batch rows' clock, ``graph`` ``(cycle_edges, edge_column, edge_sell, fee, lot,
    min_notional, limit_ns)`` (the last four per column).  Returns, for the units that pass (and, with
    ``keep_only``, are worth reporting): ``(unit, stop, amount, profit, growth, notional_ok, trade, column, sell,
    fee, price, size, displayed, quote_time)`` (per leg from ``trade`` on) and ``[stale rows, flagged rows]``.
    """
    out: _Sized = _size(*units, *quotes, time, *graph, max_notional, min_profit, keep_only)
    return out


def group_runs(cycle: _I, start: _I, stop: _I, profit: _F) -> tuple[_I, _I, _I, _F]:
    """Chain units of one cycle where one starts on the row where the previous stopped, in ``(cycle, start)``
    order: per run ``(first unit, last unit, rows, peak profit)``.

    Examples
    --------
    >>> import numpy as np
    >>> i = lambda *v: np.array(v, dtype=np.int64)
    >>> [x.tolist() for x in group_runs(i(1, 0, 1), i(5, 0, 0), i(9, 3, 5), np.array([1.0, 2.0, 3.0]))]
    [[1, 2], [1, 0], [3, 9], [2.0, 3.0]]
    """
    out: tuple[_I, _I, _I, _F] = _group(cycle, start, stop, profit)
    return out


#: Episodes column-wise: cycle, seq_start, seq_last, ts_start, ts_end, rows (int64), size, profit, peak profit,
#: profit percentage, confidence (float64), then per cycle leg price and size (``(episodes, legs)`` float64).
Episodes = tuple[_I, _I, _I, _I, _I, _I, _F, _F, _F, _F, _F, _F, _F]


def fold_runs(
    hits: tuple[_I, _I, _I, _F, _F, _F, _B, _I, _F, _F, _F, _I],
    time: _I,
    seq0: int,
    n_rows: int,
    per_column: tuple[_F, _F],
    open_episodes: Episodes,
) -> tuple[Episodes, Episodes]:
    """Fold a batch's sized units into the open episodes in one compiled pass: (still open, closed).

    ``hits`` are the units that pass ``(cycle, start, stop, amount, profit, growth, trade, column, price, size,
    displayed, quote_time)`` (see :func:`size_spans`), ``time`` the batch rows' clock, ``seq0`` the timeline
    position of its first row, ``per_column`` ``(latency_ms, max_age_ms)`` and ``open_episodes`` sorted by cycle.

    Units chain into runs as :func:`group_runs` chains them; a run takes its start from its first unit, its
    payload (size, profit, growth, the traded legs' prices and sizes, and the confidence at its last row) from its
    last, and continues the open episode of its cycle when it starts right after it.  Runs that reach the batch's
    last row stay open (sorted by cycle); the others close, followed by the open episodes not continued.  Values
    are those of the NumPy code it replaced, operation for operation.
    """
    still: Episodes
    closed: Episodes
    still, closed = _fold(*hits, time, seq0, n_rows, *per_column, *open_episodes)
    return still, closed


class TextTable(NamedTuple):
    """Strings as UTF-8 bytes back to back (``data``) with ``offsets`` (string ``k`` is
    ``data[offsets[k]:offsets[k + 1]]``): a fixed table that :func:`episode_columns` picks from without a Python
    object per string.

    Examples
    --------
    >>> TextTable.of(["buy", "sell"]).offsets.tolist()
    [0, 3, 7]
    """

    offsets: _I
    data: npt.NDArray[np.uint8]

    @classmethod
    def of(cls, strings: Sequence[str]) -> TextTable:
        encoded = [s.encode() for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(e) for e in encoded])
        return cls(offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8).copy())  # writable, one numba type


def episode_columns(
    order: _I,
    episodes: Episodes,
    persistence: _F,
    legs: tuple[_B, _I, _I],
    cycle_text: tuple[TextTable, TextTable, TextTable],
    leg_text: tuple[TextTable, TextTable, TextTable],
) -> tuple[_I, _F, _I, _F, _F, list[pa.LargeStringArray]]:
    """The columns of an opportunities frame of ``episodes`` taken in ``order``, in one compiled pass.

    ``persistence`` is each episode's persistence factor (the confidence column is ``clip(confidence *
    persistence, 0, 1)``), ``legs`` the layout's ``(cycle_trade, leg_start, first_trade)``, ``cycle_text`` and
    ``leg_text`` the strings per cycle (name, buy and sell venue) and per traded leg (exchange, symbol, side).
    Returns ``([ts_start, ts_end, rows], [buy price, size, profit, peak profit, profit percentage, confidence],
    leg offsets, leg prices, leg sizes, [name, buy venue, sell venue, leg exchange, leg symbol, leg side])``: the
    traded legs of every episode in cycle order, flat, grouped per episode by the offsets.
    """
    cycle, _, _, ts_start, ts_end, rows, size, profit, peak, percentage, confidence, price, leg_size = episodes
    ints, floats, offsets, leg_price, leg_amount, text_offsets, text_data = _columns(
        order, cycle, ts_start, ts_end, rows, size, profit, peak, percentage, confidence, price, leg_size,
        persistence, *legs, tuple(t.offsets for t in cycle_text), tuple(t.data for t in cycle_text),
        tuple(t.offsets for t in leg_text), tuple(t.data for t in leg_text),
    )  # fmt: skip
    texts = [
        pa.Array.from_buffers(_TEXT, o.shape[0] - 1, [None, pa.py_buffer(o), pa.py_buffer(d)])
        for o, d in zip(text_offsets, text_data, strict=True)
    ]
    return ints, floats, offsets, leg_price, leg_amount, texts


_TEXT = pa.large_string()


def timeline_rows(
    quotes: tuple[_F, _F, _F, _F, npt.NDArray[np.integer[Any]], _I],
    blocking: int,
    pair: _I,
    per_pair: tuple[_B, _B, _I],
) -> tuple[npt.NDArray[np.uint8], _I, _I, bool, tuple[_F, _F, _F, _F, _I, npt.NDArray[np.uint8]], _I]:
    """One compiled pass over a batch's rows: each row's :class:`arbkit.align.Reason` (the checks of
    :func:`arbkit.align.check_quotes` in their order, the first that applies) and the spot rows in batch order.

    ``quotes`` are ``(bid, ask, bid_size, ask_size, flags, clock)``, ``pair`` each row's name pair, ``per_pair``
    ``(spot, known, cell)``.  Returns ``(reason, rows per reason, spot rows, whether their clock is sorted, their
    (bid, bid_size, ask, ask_size, clock, reason), their cell)``.
    """
    bid, ask, bid_size, ask_size, flags, clock = quotes
    reason, counts, take, ordered, f, t, r, cell = _timeline_rows(
        bid, ask, bid_size, ask_size, flags, blocking, clock, pair, *per_pair
    )
    return reason, counts, take, bool(ordered), (f[0], f[1], f[2], f[3], t, r), cell


def prepare_scan(
    column_ptr: _I, column_cycles: _I, cycle_edges: _I, edge_column: _I, edge_sell: npt.NDArray[np.bool_]
) -> tuple[_I, _I, _I]:
    """Static helpers of :func:`scan_cycles` for one graph (made once per topology): each column's sell and buy
    edge, the cycle index with pads pointing at a zero slot, and which edge of its column each CSR entry uses."""
    out: tuple[_I, _I, _I] = _prepare(column_ptr, column_cycles, cycle_edges, edge_column, edge_sell)
    return out


def scan_cycles(
    *,
    row_cell: _I,
    row_log_sell: _F,
    row_log_buy: _F,
    cell_log_sell: _F,
    cell_log_buy: _F,
    cell_column: _I,
    column_cell: _I,
    column_ptr: _I,
    column_cycles: _I,
    cycle_edges: _I,
    edge_column: _I,
    edge_sell: npt.NDArray[np.bool_],
    edge_log_fee: _F,
    prepared: tuple[_I, _I, _I],
) -> tuple[_I, _I, _I, _I, _I]:
    """Positive spans of every cycle over a batch's timeline rows, and each cell's final quote source.

    Parameters
    ----------
    row_cell, row_log_sell, row_log_buy
        Per timeline row: the cell it updates, ``log(bid)`` and ``-log(ask)`` (NaN where not a positive number).
    cell_log_sell, cell_log_buy
        The same for every cell's carried quote (before the batch).
    cell_column, column_cell
        Cell -> graph column (``-1``: not in the graph) and back.
    column_ptr, column_cycles
        CSR index: the cycles reading column ``c`` are ``column_cycles[column_ptr[c]:column_ptr[c + 1]]``.
    cycle_edges, edge_column, edge_sell, edge_log_fee
        ``(cycles, legs)`` edges (``-1`` pads); per edge its column (``-1``: a transfer, rate 1), side and
        ``log(1 - fee)``.
    prepared
        :func:`prepare_scan` of the graph.

    Returns
    -------
    tuple
        ``(cycle, start, end, source, cell_source)``: one entry per positive span (``source[s, leg]`` is where
        the leg's quote is, a row ``< n`` or ``n + cell`` for a carried quote, ``-1`` for transfers and pads), and
        where each cell's latest quote is after the batch.

    Examples
    --------
    >>> import numpy as np
    >>> i = lambda *v: np.array(v, dtype=np.int64)
    >>> # one cell quoting A/B: sell at log 0.1, buy back at log -0.05 -> the 2-leg loop earns; then it stops
    >>> out = scan_cycles(
    ...     row_cell=i(0, 0), row_log_sell=np.array([0.1, 0.0]), row_log_buy=np.array([-0.05, -0.2]),
    ...     cell_log_sell=np.array([np.nan]), cell_log_buy=np.array([np.nan]), cell_column=i(0), column_cell=i(0),
    ...     column_ptr=i(0, 1), column_cycles=i(0), cycle_edges=np.array([[0, 1]], dtype=np.int64),
    ...     edge_column=i(0, 0), edge_sell=np.array([True, False]), edge_log_fee=np.zeros(2),
    ...     prepared=prepare_scan(i(0, 1), i(0), np.array([[0, 1]], dtype=np.int64), i(0, 0), np.array([True, False])))
    >>> [x.tolist() for x in out]
    [[0], [0], [1], [[0, 0]], [1]]
    """
    out: tuple[_I, _I, _I, _I, _I] = _scan(
        row_cell, row_log_sell, row_log_buy, cell_log_sell, cell_log_buy, cell_column, column_cell, column_ptr,
        column_cycles, cycle_edges, edge_column, edge_sell, edge_log_fee, *prepared,
    )  # fmt: skip
    return out


def scan_signatures() -> int:
    """How many compiled signatures the scan has in this process (one, whatever the batch lengths)."""
    return len(_scan.signatures)
