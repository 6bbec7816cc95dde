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

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["group_runs", "prepare_scan", "scan_cycles", "scan_signatures", "size_spans"]

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
