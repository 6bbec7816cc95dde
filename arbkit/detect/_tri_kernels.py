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

__all__ = ["prepare_scan", "scan_cycles", "scan_signatures", "string_codes"]

_I = npt.NDArray[np.int64]
_F = npt.NDArray[np.float64]

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


def _string_codes_py(offsets: Any, data: Any) -> Any:
    n = offsets.shape[0] - 1
    size = 16
    while size < 2 * n:
        size *= 2
    slot_hash = np.zeros(size, dtype=np.uint64)
    slot_code = np.full(size, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        a, b = offsets[i], offsets[i + 1]
        h = np.uint64(14695981039346656037)  # FNV-1a
        for j in range(a, b):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            code = slot_code[slot]
            if code < 0:  # a new string
                slot_hash[slot], slot_code[slot] = h, count
                first[count] = i
                inverse[i] = count
                count += 1
                break
            if slot_hash[slot] == h:  # same hash: the same string only if the bytes agree
                r = first[code]
                c, d = offsets[r], offsets[r + 1]
                same = d - c == b - a
                if same:
                    for j in range(b - a):
                        if data[a + j] != data[c + j]:
                            same = False
                            break
                if same:
                    inverse[i] = code
                    break
            slot = (slot + 1) & (size - 1)
    return first[:count].copy(), inverse


def _grow_py(values: Any, size: int) -> Any:
    out = np.empty(size, dtype=values.dtype)
    out[: values.shape[0]] = values
    return out


_grow = numba.njit(cache=True)(_grow_py)
_scan = numba.njit(cache=True)(_scan_py)
_prepare = numba.njit(cache=True)(_prepare_py)
_string_codes = numba.njit(cache=True)(_string_codes_py)


def string_codes(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Code the strings of an Arrow string column's buffers (``offsets``, ``data``): ``(first, inverse)`` where
    ``first[c]`` is the row of the first string of code ``c`` (codes in order of first appearance) and
    ``inverse[i]`` is row ``i``'s code.  An open-addressing table over FNV-1a hashes; rows whose hash matches
    are compared byte by byte, so codes are exact.

    Examples
    --------
    >>> import numpy as np
    >>> text = b"okxbinanceokx"
    >>> first, inverse = string_codes(np.array([0, 3, 10, 13]), np.frombuffer(text, dtype=np.uint8))
    >>> [text[[0, 3, 10, 13][f]:[0, 3, 10, 13][f + 1]] for f in first.tolist()], inverse.tolist()
    ([b'okx', b'binance'], [0, 1, 0])
    """
    out: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] = _string_codes(offsets, data)
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
