"""Keyed as-of lookups across several instruments and tables, for detectors whose legs are different symbols.

:func:`arbkit.align.align_quotes` aligns the venues of *one* symbol; basis and parity trades combine different
symbols (spot and perpetual, call and put and future) and tables (quotes and funding, option quotes).  A
:class:`Stream` holds one table's rows in the merged canonical timeline plus the carried last row per key, and
answers "which row of key ``k`` was the latest at timeline position ``p``" for many positions at once
(``searchsorted`` on the key's own positions, falling back to the carried row, then to a missing sentinel).

Rules follow :mod:`arbkit.align`: the view at a row includes that row and every earlier one; the latest row wins
even when it is bad (flagged or rejected), so an older good quote is never resurrected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = ["Stream", "build_stream", "merged_order"]

IntArray = npt.NDArray[np.int64]


def merged_order(clocks: Sequence[npt.NDArray[np.int64]]) -> list[IntArray]:
    """Global timeline positions of each table's rows (canonical order: clock, then table, then row).

    Examples
    --------
    >>> import numpy as np
    >>> [p.tolist() for p in merged_order([np.array([5, 1]), np.array([1, 5])])]
    [[2, 0], [1, 3]]
    """
    sizes = [len(c) for c in clocks]
    clock = np.concatenate([np.asarray(c, dtype=np.int64) for c in clocks]) if clocks else np.zeros(0, np.int64)
    table = np.concatenate([np.full(s, i, dtype=np.int64) for i, s in enumerate(sizes)]) if clocks else clock
    row = np.concatenate([np.arange(s, dtype=np.int64) for s in sizes]) if clocks else clock
    order = np.lexsort((row, table, clock))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order), dtype=np.int64)
    out = []
    start = 0
    for s in sizes:
        out.append(position[start : start + s])
        start += s
    return out


@dataclass(frozen=True)
class Stream:
    """One table's rows in timeline terms, with the carried last row per key.

    ``columns`` are extended arrays: the batch rows (input order), then one carried row per key, then a final
    missing sentinel (NaN, time ``-1``, ``missing`` True).
    """

    keys: tuple[tuple[str, str], ...]
    position: IntArray  # global timeline position of each batch row
    key: IntArray  # key code of each batch row
    columns: dict[str, npt.NDArray[np.float64]]
    time: IntArray
    missing: npt.NDArray[np.bool_]
    by_key_positions: tuple[IntArray, ...]
    by_key_rows: tuple[IntArray, ...]
    seed: IntArray  # extended index of the carried row per key (sentinel where none)

    @property
    def sentinel(self) -> int:
        return int(self.time.shape[0]) - 1

    def code(self, exchange: str, symbol: str) -> int:
        """Key code of ``(exchange, symbol)``, ``-1`` where unknown."""
        try:
            return self.keys.index((exchange, symbol))
        except ValueError:
            return -1

    def positions(self, code: int) -> IntArray:
        """Timeline positions of the batch rows of one key."""
        return self.by_key_positions[code] if code >= 0 else np.zeros(0, dtype=np.int64)

    def latest(self, code: int, at: IntArray) -> IntArray:
        """Extended index of the latest row of key ``code`` at each timeline position of ``at``."""
        if code < 0:
            return np.full(len(at), self.sentinel, dtype=np.int64)
        pos = self.by_key_positions[code]
        i = np.searchsorted(pos, at, side="right") - 1
        rows = self.by_key_rows[code]
        return np.where(i >= 0, rows[np.maximum(i, 0)] if len(rows) else self.seed[code], self.seed[code])

    def state(self, names: Sequence[str]) -> pl.DataFrame:
        """The carried state after this batch: last row per key (``exchange, symbol, time`` and ``names``)."""
        last = np.array(
            [rows[-1] if len(rows) else self.seed[k] for k, rows in enumerate(self.by_key_rows)], dtype=np.int64
        )
        keep = ~self.missing[last] if len(last) else np.zeros(0, dtype=np.bool_)
        data: dict[str, object] = {
            "exchange": [k[0] for k, ok in zip(self.keys, keep, strict=True) if ok],
            "symbol": [k[1] for k, ok in zip(self.keys, keep, strict=True) if ok],
            "time": self.time[last[keep]],
        }
        for name in names:
            data[name] = self.columns[name][last[keep]]
        schema = {"exchange": pl.String, "symbol": pl.String, "time": pl.Int64} | dict.fromkeys(names, pl.Float64)
        return pl.DataFrame(data, schema=schema)


def build_stream(
    exchange: Sequence[str],
    symbol: Sequence[str],
    time: IntArray,
    position: IntArray,
    columns: dict[str, npt.NDArray[np.float64]],
    carried: pl.DataFrame,
) -> Stream:
    """Build a :class:`Stream` from batch rows and the carried state frame (as written by :meth:`Stream.state`).

    Keys are sorted ``(exchange, symbol)`` pairs, so codes do not depend on where a batch was cut.
    """
    n = len(time)
    carried_keys = list(
        zip(carried.get_column("exchange").to_list(), carried.get_column("symbol").to_list(), strict=True)
    )
    batch_keys = list(zip(exchange, symbol, strict=True))
    keys = tuple(sorted(set(carried_keys) | set(batch_keys)))
    index = {k: i for i, k in enumerate(keys)}
    n_keys = len(keys)
    key = np.array([index[k] for k in batch_keys], dtype=np.int64)
    size = n + n_keys + 1
    ext: dict[str, npt.NDArray[np.float64]] = {}
    for name, values in columns.items():
        array = np.full(size, np.nan, dtype=np.float64)
        array[:n] = values
        ext[name] = array
    ext_time = np.full(size, -1, dtype=np.int64)
    ext_time[:n] = time
    missing = np.ones(size, dtype=np.bool_)
    missing[:n] = False
    seed = np.full(n_keys, size - 1, dtype=np.int64)
    if carried.height:
        codes = np.array([index[k] for k in carried_keys], dtype=np.int64)
        slots = n + codes
        seed[codes] = slots
        ext_time[slots] = carried.get_column("time").to_numpy()
        missing[slots] = False
        for name in columns:
            ext[name][slots] = carried.get_column(name).cast(pl.Float64).to_numpy()
    order = np.lexsort((position, key)) if n else np.zeros(0, dtype=np.int64)
    sorted_keys = key[order]
    bounds = np.searchsorted(sorted_keys, np.arange(n_keys + 1))
    by_rows = tuple(order[bounds[k] : bounds[k + 1]] for k in range(n_keys))
    by_positions = tuple(position[rows] for rows in by_rows)
    return Stream(
        keys=keys,
        position=position,
        key=key,
        columns=ext,
        time=ext_time,
        missing=missing,
        by_key_positions=by_positions,
        by_key_rows=by_rows,
        seed=seed,
    )
