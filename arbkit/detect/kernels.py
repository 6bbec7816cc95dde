"""JAX kernels of the detectors: cycle log-rate sums over a currency graph.

:func:`cycle_log_sums` evaluates every cycle at every row (the full ``rows x cycles`` grid), for research, sweeps
and accelerators.  The triangular detector does not call it on CPU: it scans each batch once in compiled code and
re-evaluates only the cycles that read the column a row updates (:mod:`arbkit.detect._tri_kernels`), which is
work proportional to the rows rather than ``rows x cycles`` and costs one call per micro-batch, where a jitted JAX
call costs tens of microseconds and XLA's CPU gather over ``(rows, cycles, legs)`` is slow.

The static topology (which quote column and side every edge reads, which edges every cycle chains) is separate
from the dynamic values (the as-of quotes of every row), so one compiled kernel serves every batch whose padded
shapes fall in the same buckets: rows, quote columns, edges and cycles are each padded to a power-of-two-ish
bucket (:func:`bucket`).  Padding is inert: a padded edge reads a constant column of rate 1 (log 0), a padded
cycle slot uses a padded edge, and padded rows/cycles are sliced away.

Examples
--------
>>> import numpy as np
>>> # one column quoting BASE/QUOTE at bid 2, ask 2; a 2-cycle sell-then-buy at zero fee returns exactly 1
>>> out = cycle_log_sums(
...     bid=np.array([[2.0]]), ask=np.array([[2.0]]), usable=np.array([[True]]), stale=np.array([[False]]),
...     edge_column=np.array([0, 0]), edge_sell=np.array([True, False]), edge_log_fee=np.zeros(2),
...     cycle_edges=np.array([[0, 1]]))
>>> out[0].tolist(), out[1].tolist()
([[0.0]], [[True]])
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

jax.config.update("jax_enable_x64", True)

__all__ = ["bucket", "cycle_log_sums", "trace_counts"]

_TRACES: Counter[str] = Counter()


def bucket(length: int, smallest: int = 8) -> int:
    """The padded size for ``length``: the next power of two, at least ``smallest``, multiples of 65,536 beyond.

    Examples
    --------
    >>> [bucket(n) for n in (0, 5, 9, 1000, 70_000)]
    [8, 8, 16, 1024, 131072]
    """
    if length > 65_536:
        return -(-length // 65_536) * 65_536
    size = smallest
    while size < length:
        size *= 2
    return size


def trace_counts() -> dict[str, int]:
    """How many times each kernel was traced (compiled) in this process: once per shape bucket."""
    return dict(_TRACES)


@jax.jit  # type: ignore[untyped-decorator]
def _cycle_kernel(
    bid: Any, ask: Any, usable: Any, stale: Any, edge_column: Any, edge_sell: Any, edge_log_fee: Any, cycles: Any
) -> tuple[Any, Any, Any, Any]:
    _TRACES["cycle_log_sums"] += 1
    log_bid = jnp.log(jnp.where(jnp.isfinite(bid) & (bid > 0), bid, 1.0))
    log_ask = jnp.log(jnp.where(jnp.isfinite(ask) & (ask > 0), ask, 1.0))
    present = jnp.isfinite(bid) & jnp.isfinite(ask) & (bid > 0) & (ask > 0)
    # (rows, edges): log of the rate an edge converts at, net of its fee.
    rate = jnp.where(edge_sell[None, :], log_bid[:, edge_column], -log_ask[:, edge_column]) + edge_log_fee[None, :]
    edge_usable = usable[:, edge_column]
    edge_present = present[:, edge_column]
    edge_stale = stale[:, edge_column]
    # (rows, cycles): gather the cycle's edges and reduce over legs.
    log_sum = rate[:, cycles].sum(axis=2)
    return (
        log_sum,
        edge_usable[:, cycles].all(axis=2),
        edge_present[:, cycles].all(axis=2),
        edge_stale[:, cycles].any(axis=2),
    )


def cycle_log_sums(
    *,
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    usable: npt.NDArray[np.bool_],
    stale: npt.NDArray[np.bool_],
    edge_column: npt.NDArray[np.integer[Any]],
    edge_sell: npt.NDArray[np.bool_],
    edge_log_fee: npt.NDArray[np.float64],
    cycle_edges: npt.NDArray[np.integer[Any]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Log of the product of net rates of every cycle at every row, and whether all its legs are usable.

    Parameters
    ----------
    bid, ask, usable, stale
        ``(rows, columns)`` as-of quotes of every instrument column (see :mod:`arbkit.align`).
    edge_column, edge_sell, edge_log_fee
        Per edge: the column it reads, whether it sells the base at the bid (else buys it at the ask), and
        ``log(1 - taker fee)``.  A column index ``-1`` is a transfer edge (rate 1).
    cycle_edges
        ``(cycles, legs)`` edge indices; ``-1`` pads shorter cycles.

    Returns
    -------
    tuple of ``(rows, cycles)`` arrays
        ``log_sum`` (``log(prod rates)``; the cycle earns ``exp(log_sum) - 1`` per unit), ``usable`` (every leg
        usable), ``present`` (every leg has a positive finite quote) and ``stale`` (some leg is stale).
    """
    n, c = bid.shape
    e, (k, legs) = edge_column.shape[0], cycle_edges.shape
    nb, cb, eb, kb = bucket(n, 64), bucket(c + 1), bucket(e + 1), bucket(k)
    pad_col = cb - 1  # a column of constant rate 1, always usable
    pad_edge = eb - 1  # an edge reading it, fee 0

    def grid(values: npt.NDArray[Any], fill: Any, dtype: Any) -> npt.NDArray[Any]:
        out = np.full((nb, cb), fill, dtype=dtype)
        out[:n, :c] = values
        return out

    bid_p, ask_p = grid(bid, 1.0, np.float64), grid(ask, 1.0, np.float64)
    usable_p, stale_p = grid(usable, True, np.bool_), grid(stale, False, np.bool_)
    bid_p[:, pad_col] = ask_p[:, pad_col] = 1.0
    usable_p[:, pad_col] = True
    columns = np.full(eb, pad_col, dtype=np.int32)
    columns[:e] = np.where(edge_column < 0, pad_col, edge_column)
    sell = np.ones(eb, dtype=np.bool_)
    sell[:e] = edge_sell
    log_fee = np.zeros(eb)
    log_fee[:e] = np.where(edge_column < 0, 0.0, edge_log_fee)
    cycles = np.full((kb, legs), pad_edge, dtype=np.int32)
    cycles[:k] = np.where(cycle_edges < 0, pad_edge, cycle_edges)
    out = _cycle_kernel(bid_p, ask_p, usable_p, stale_p, columns, sell, log_fee, cycles)
    log_sum, ok, present, any_stale = (np.asarray(x)[:n, :k] for x in out)
    return log_sum, ok, present, any_stale
