"""Plumbing shared by the basis and parity detectors: instrument codes, dense carried state, closed episodes.

* Rows name their instrument by ``(exchange, symbol)`` strings; :func:`pair_ids` codes them through the
  process-wide interners of :mod:`arbkit._intern` and one process-wide table of pairs, so a step resolves each
  instrument it meets (registry lookups) once per process, not once per row or per step.
* The carried state lives in dense arrays indexed by sorted instrument keys and by candidate; when a batch brings
  new instruments, :func:`regrid` copies the arrays onto the grown (still sorted) grid, so a state depends only on
  the rows seen, never on where a history was cut.
* :func:`episodes_frame` turns the closed (or, at the end, open) episodes of the fold in :mod:`._b_scan` into an
  :data:`arbkit.schema.OPPORTUNITIES` frame, with the values and order of
  :func:`arbkit.detect._episodes.to_opportunities`; strings are made only here, once per episode.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from arbkit import schema
from arbkit._intern import shared
from arbkit.detect import _b_scan
from arbkit.detect._b_scan import OPEN_F, OPEN_I
from arbkit.detect._confidence import persistence
from arbkit.detect._episodes import episode_id, event_frame

__all__ = [
    "KEPT",
    "KNOWN",
    "NO_EVENTS",
    "PERP",
    "CellState",
    "Events",
    "SlotText",
    "bump",
    "canonical_order",
    "clock_of",
    "csr",
    "episodes_frame",
    "event_rows",
    "finish_slots",
    "floats_of",
    "fold_events",
    "ints_of",
    "key_codes",
    "on_grid",
    "open_arrays",
    "pair_flags",
    "pair_ids",
    "pair_names",
    "regrid",
    "sorted_events",
]

_I = npt.NDArray[np.int64]
_F = npt.NDArray[np.float64]
_B = npt.NDArray[np.bool_]

_PAIRS: dict[tuple[str, str], int] = {}
_PAIR_NAMES: list[tuple[str, str]] = []
_LOCK = threading.Lock()


def pair_ids(frame: pl.DataFrame) -> tuple[_I, _I]:
    """``(unique, inverse)``: the process-wide ids of the distinct ``(exchange, symbol)`` pairs of ``frame`` and,
    for each row, the position of its pair in ``unique``.

    Exchange names are short, so the shared interner codes them from the Arrow views; symbols of derivatives are
    longer than a view's 12 inline bytes, so Arrow's dictionary encoding codes them (no Python object per row);
    a dense ``(exchange, symbol)`` table then gives each row its pair id without a sort.
    """
    if frame.height == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if frame.height <= _FEW_ROWS:
        few = _few_pair_ids(frame)
        if few is not None:
            return few
    ex = shared("exchange").codes(frame.get_column("exchange")).astype(np.int64)
    local, names = _symbol_codes(frame.get_column("symbol"))
    exchanges = shared("exchange").names
    with _LOCK:
        sym = np.array([_SYMBOLS.get(name) or _new_symbol(name) for name in names], dtype=np.int64)[local]
        old = grid = _PAIR_GRID[0]
        n_ex, n_sym = len(exchanges), len(_SYMBOL_NAMES) + 1
        if grid.shape[0] < n_ex or grid.shape[1] < n_sym:
            grid = np.full((max(n_ex, old.shape[0]), max(n_sym, old.shape[1])), -1, dtype=np.int64)
            grid[: old.shape[0], : old.shape[1]] = old
            _PAIR_GRID[0] = grid
        rows = grid[ex, sym]
        if (rows < 0).any():
            for e, y in {(int(e), int(y)) for e, y in zip(ex[rows < 0], sym[rows < 0], strict=True)}:
                pair = (exchanges[e], _SYMBOL_NAMES[y - 1])
                found = _PAIRS.get(pair)
                if found is None:
                    found = _PAIRS[pair] = len(_PAIR_NAMES)
                    _PAIR_NAMES.append(pair)
                grid[e, y] = found
            rows = grid[ex, sym]
    ids = np.flatnonzero(np.bincount(rows))
    lut = np.empty(int(ids[-1]) + 1, dtype=np.int64)
    lut[ids] = np.arange(ids.shape[0], dtype=np.int64)
    return ids.astype(np.int64), lut[rows]


#: Frames up to this many rows (funding rows of a micro-batch) are coded by Python dict lookups: cheaper than the
#: columnar path's fixed cost (Arrow dictionary encoding, a dozen NumPy calls) below about a hundred rows.
_FEW_ROWS = 64


def _few_pair_ids(frame: pl.DataFrame) -> tuple[_I, _I] | None:
    """:func:`pair_ids` of a short frame without nulls (``None`` when it has some: the columnar path codes them)."""
    exchange, symbol = frame.get_column("exchange"), frame.get_column("symbol")
    if exchange.null_count() or symbol.null_count():
        return None
    local: dict[tuple[str, str], int] = {}
    inverse = [local.setdefault(pair, len(local)) for pair in zip(exchange.to_list(), symbol.to_list(), strict=True)]
    with _LOCK:
        ids = [_PAIRS.get(pair, -1) for pair in local]
        for i, pair in enumerate(local):
            if ids[i] < 0:
                ids[i] = _PAIRS[pair] = len(_PAIR_NAMES)
                _PAIR_NAMES.append(pair)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    rank = [0] * len(ids)
    for r, i in enumerate(order):
        rank[i] = r
    return np.array([ids[i] for i in order], dtype=np.int64), np.array([rank[i] for i in inverse], dtype=np.int64)


_SYMBOLS: dict[str, int] = {}  # symbol name -> column of _PAIR_GRID (from 1)
_SYMBOL_NAMES: list[str] = []
#: (exchange interner code, symbol column) -> pair id, -1 where not seen yet (one slot: replaced when grown).
_PAIR_GRID: list[_I] = [np.full((0, 0), -1, dtype=np.int64)]


def _new_symbol(name: str) -> int:
    _SYMBOL_NAMES.append(name)
    _SYMBOLS[name] = len(_SYMBOL_NAMES)
    return len(_SYMBOL_NAMES)


def _symbol_codes(series: pl.Series) -> tuple[_I, list[str]]:
    """Per-row codes into a list of the column's names (valid for this call only)."""
    if series.dtype == pl.String and series.null_count() == 0:
        encoded = pc.dictionary_encode(series.to_arrow(compat_level=pl.CompatLevel.newest()))
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        return codes, [str(x) for x in encoded.dictionary.to_pylist()]
    interner = shared("symbol")
    return interner.codes(series).astype(np.int64), interner.names


def bump(counts: dict[str, int], more: Mapping[str, int]) -> None:
    """Add the non-zero counters of ``more`` to ``counts``."""
    for k, v in more.items():
        if v:
            counts[k] = counts.get(k, 0) + int(v)


def floats_of(frame: pl.DataFrame, name: str) -> _F:
    """A numeric column as float64 NumPy, nulls as NaN (``cast(Float64).fill_null(nan)`` without a Polars query;
    zero-copy when it already is one)."""
    return np.asarray(frame.get_column(name).to_numpy(), dtype=np.float64)


def ints_of(frame: pl.DataFrame, name: str) -> _I:
    """An integer column as int64 NumPy, nulls as 0 (``cast(Int64).fill_null(0)`` without a Polars query)."""
    values = frame.get_column(name).to_numpy()
    if values.dtype.kind == "f":  # nulls came back as NaN
        values = np.nan_to_num(values, nan=0.0)
    return np.asarray(values, dtype=np.int64)


def clock_of(frame: pl.DataFrame, clock: str) -> _I:
    """The clock column as int64 NumPy."""
    return frame.get_column(clock).to_numpy().astype(np.int64, copy=False)


#: Bits of :func:`pair_flags`.
KEPT, PERP, KNOWN = 1, 2, 4


def pair_flags(memo: dict[Any, Any], name: object, ids: _I, resolve: Callable[[tuple[str, str]], int]) -> _I:
    """``resolve(pair)`` of each pair id, computed once per pair and kept in ``memo`` under ``name`` as an array
    over all pair ids (a step then looks its pairs up with one gather, no registry call)."""
    table: _I | None = memo.get(name)
    if table is None or table.shape[0] < len(_PAIR_NAMES):
        grown = np.full(len(_PAIR_NAMES), -1, dtype=np.int64)
        if table is not None:
            grown[: table.shape[0]] = table
        table = memo[name] = grown
    out = table[ids]
    if (out < 0).any():
        for i in ids[out < 0].tolist():
            table[i] = resolve(_PAIR_NAMES[i])
        out = table[ids]
    return out


def key_codes(
    keys: tuple[tuple[str, str], ...], ids: _I, kept: npt.NDArray[np.bool_]
) -> tuple[_I, list[tuple[str, str]]]:
    """Codes of the pair ids in the sorted ``keys`` (-1: not a key), from an array over all pair ids cached per
    key set, and the ``kept`` pairs that are not keys yet."""
    lut = _KEY_LUTS.get(keys)
    if lut is None or lut.shape[0] < len(_PAIR_NAMES):
        if len(_KEY_LUTS) > 256:
            _KEY_LUTS.clear()
        at = {key: i for i, key in enumerate(keys)}
        lut = _KEY_LUTS[keys] = np.array([at.get(name, -1) for name in _PAIR_NAMES], dtype=np.int64)
    codes = lut[ids]
    new = ids[kept & (codes < 0)]
    return codes, [_PAIR_NAMES[i] for i in new.tolist()]


_KEY_LUTS: dict[tuple[tuple[str, str], ...], _I] = {}


def pair_names(ids: _I) -> list[tuple[str, str]]:
    """The ``(exchange, symbol)`` of each pair id."""
    return [_PAIR_NAMES[i] for i in ids.tolist()]


def csr(n_keys: int, members: Sequence[tuple[int, ...]]) -> tuple[_I, _I]:
    """``(ptr, items)``: for every key, the candidates whose legs include it (``members[c]``: keys of candidate
    ``c``, ``-1`` for none), candidates in increasing order."""
    lists: list[list[int]] = [[] for _ in range(n_keys)]
    for c, keys in enumerate(members):
        for k in keys:
            if k >= 0 and (not lists[k] or lists[k][-1] != c):
                lists[k].append(c)
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    items = np.array([c for x in lists for c in x], dtype=np.int64)
    return ptr, items


def open_arrays(n_slots: int) -> tuple[_I, _F]:
    """Empty open-episode arrays for ``n_slots`` slots."""
    return np.zeros((n_slots, len(OPEN_I)), dtype=np.int64), np.full((n_slots, len(OPEN_F)), np.nan)


def regrid(old: Sequence[object], new: Sequence[object], array: npt.NDArray[np.generic], fill: object) -> np.ndarray:
    """``array`` (rows indexed by ``old`` names) on the rows of ``new`` (a superset), other rows ``fill``."""
    out = np.full((len(new), *array.shape[1:]), fill, dtype=array.dtype)
    if len(old):
        at = {name: i for i, name in enumerate(new)}
        out[np.array([at[name] for name in old], dtype=np.int64)] = array
    return out


@dataclass(frozen=True)
class CellState:
    """The state both detectors carry: the latest row per instrument of two tables on sorted keys, the candidates'
    row counters and their open episodes (a step copies it: the compiled scan updates its arrays in place).

    ``keys`` / ``cells`` are the priced legs (basis: quote rows; parity: options) and ``side_keys`` /
    ``side_cells`` the other table (basis: funding rows of perpetuals; parity: dated futures), each with the row's
    clock (``*_time``) and whether there is one (``*_seen``).  ``timelines`` name the candidates, ``next_seq``
    counts each one's timeline rows, ``open_i`` / ``open_f`` hold the open episode of every slot
    ``2 * candidate + trade`` (columns :data:`OPEN_I` / :data:`OPEN_F`; ``rows == 0``: none open), ``counts``
    the rejected and suppressed rows.  Subclasses set :attr:`COLUMNS` and :attr:`TRADES`.
    """

    keys: tuple[tuple[str, str], ...]
    cells: _F
    cell_time: _I
    cell_seen: _B
    side_keys: tuple[tuple[str, str], ...]
    side_cells: _F
    side_time: _I
    side_seen: _B
    timelines: tuple[str, ...]
    next_seq: _I
    open_i: _I
    open_f: _F
    counts: Mapping[str, int]

    #: Columns of ``cells`` and ``side_cells``.
    COLUMNS: ClassVar[tuple[int, int]] = (0, 0)
    #: Names of a candidate's two trades (slot keys ``timeline>trade``).
    TRADES: ClassVar[tuple[str, str]] = ("0", "1")

    @classmethod
    def empty(cls) -> Self:
        open_i, open_f = open_arrays(0)
        n_cells, n_side = cls.COLUMNS
        return cls(
            (), np.zeros((0, n_cells)), np.zeros(0, np.int64), np.zeros(0, np.bool_),
            (), np.zeros((0, n_side)), np.zeros(0, np.int64), np.zeros(0, np.bool_),
            (), np.zeros(0, np.int64), open_i, open_f, {},
        )  # fmt: skip

    def grown(
        self, keys: tuple[tuple[str, str], ...], side_keys: tuple[tuple[str, str], ...], timelines: tuple[str, ...]
    ) -> Self:
        """A copy on the grids ``keys`` x ``side_keys`` (supersets of the state's) whose candidates are
        ``timelines``; rows of new instruments and candidates start empty."""
        if keys == self.keys and side_keys == self.side_keys:
            return type(self)(
                keys, self.cells.copy(), self.cell_time.copy(), self.cell_seen.copy(), side_keys,
                self.side_cells.copy(), self.side_time.copy(), self.side_seen.copy(), self.timelines,
                self.next_seq.copy(), self.open_i.copy(), self.open_f.copy(), self.counts,
            )  # fmt: skip
        slots_old = [f"{t}>{d}" for t in self.timelines for d in self.TRADES]
        slots_new = [f"{t}>{d}" for t in timelines for d in self.TRADES]
        return type(self)(
            keys,
            regrid(self.keys, keys, self.cells, np.nan),
            regrid(self.keys, keys, self.cell_time, -1),
            regrid(self.keys, keys, self.cell_seen, False),
            side_keys,
            regrid(self.side_keys, side_keys, self.side_cells, np.nan),
            regrid(self.side_keys, side_keys, self.side_time, -1),
            regrid(self.side_keys, side_keys, self.side_seen, False),
            timelines,
            regrid(self.timelines, timelines, self.next_seq, 0),
            regrid(slots_old, slots_new, self.open_i, 0),
            regrid(slots_old, slots_new, self.open_f, np.nan),
            self.counts,
        )


class _HasTimelines(Protocol):
    @property
    def timelines(self) -> tuple[str, ...]: ...


_S = TypeVar("_S", bound=CellState)
_T = TypeVar("_T", bound=_HasTimelines)


def on_grid(
    state: _S,
    pairs: tuple[_I, npt.NDArray[np.bool_]],
    side_pairs: tuple[_I, npt.NDArray[np.bool_]],
    tables_of: Callable[[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], _T],
) -> tuple[_S, _T, _I, _I]:
    """A copy of ``state`` grown with the kept pairs of a batch (``(ids, kept)`` of :func:`pair_ids` and
    :func:`pair_flags`, for both tables), its static tables, and the key codes of both tables' pair ids (-1: not
    a key).  Grids stay sorted, so codes never depend on where a history was cut."""
    code, new = key_codes(state.keys, *pairs)
    side_code, side_new = key_codes(state.side_keys, *side_pairs)
    keys = tuple(sorted({*state.keys, *new})) if new else state.keys
    side_keys = tuple(sorted({*state.side_keys, *side_new})) if side_new else state.side_keys
    tables = tables_of(keys, side_keys)
    if new or side_new:
        code, _ = key_codes(keys, *pairs)
        side_code, _ = key_codes(side_keys, *side_pairs)
    return state.grown(keys, side_keys, tables.timelines), tables, code, side_code


def canonical_order(first: _I, second: _I) -> _I:
    """Row order of two tables' clocks (``first`` ranked before ``second`` on ties, rows in order): empty when the
    rows are in order already (the scans then walk them as given)."""
    clocks = np.concatenate([first, second])
    if clocks.size > 1 and (np.diff(clocks) < 0).any():
        return np.argsort(clocks, kind="stable").astype(np.int64)
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class SlotText:
    """The strings of every slot ``(candidate, trade)``: episode key, symbol, exchanges and legs
    ``(exchange, symbol, side)``, the legs' prices taken from the ``leg0..`` columns of :data:`OPEN_F`."""

    key: tuple[str, ...]
    symbol: tuple[str, ...]
    buy_exchange: tuple[str, ...]
    sell_exchange: tuple[str, ...]
    legs: tuple[tuple[tuple[str, str, str], ...], ...]


_OPPORTUNITY_SCHEMA = schema.OPPORTUNITIES.polars
_LEG0 = OPEN_F.index("leg0")


def episodes_frame(kind: str, text: SlotText, slots: _I, ints: _I, floats: _F, status: str) -> pl.DataFrame:
    """Episodes (slot ids and their :data:`OPEN_I` / :data:`OPEN_F` rows) as an OPPORTUNITIES frame sorted by
    ``(ts_start, id)``.

    A step closes one or two episodes at most, and one ``from_dicts`` call is the cheapest build measured here for
    them (~0.3 ms on a loaded 2-core box): column-wise construction pays ~25 us per Series and ~0.6 ms for the
    nested ``legs`` column from Python objects, and an Arrow table costs ~16 us per column in ``from_arrow``."""
    ts_start = ints[:, 2].tolist()
    slot_list = slots.tolist()
    ids = [episode_id(kind, text.key[s], t) for s, t in zip(slot_list, ts_start, strict=True)]
    confidence = np.clip(floats[:, 6] * persistence(ints[:, 4]), 0.0, 1.0).tolist()
    ts_end, rows = ints[:, 3].tolist(), ints[:, 4].tolist()
    buy_price, sell_price, size = floats[:, 0].tolist(), floats[:, 1].tolist(), floats[:, 2].tolist()
    profit, peak, pct = floats[:, 3].tolist(), floats[:, 4].tolist(), floats[:, 5].tolist()
    leg_prices = floats[:, _LEG0:].tolist()
    out = []
    for k in sorted(range(len(ids)), key=lambda k: (ts_start[k], ids[k])):
        s = slot_list[k]
        legs = [
            {"exchange": ex, "symbol": sym, "side": side, "price": leg_prices[k][j], "size": size[k]}
            for j, (ex, sym, side) in enumerate(text.legs[s])
        ]
        out.append(
            {"id": ids[k], "kind": kind, "ts_start": ts_start[k], "ts_end": ts_end[k], "symbol": text.symbol[s],
             "legs": legs, "buy_exchange": text.buy_exchange[s], "sell_exchange": text.sell_exchange[s],
             "buy_price": buy_price[k], "sell_price": sell_price[k], "size": size[k], "profit": profit[k],
             "peak_profit": peak[k], "profit_percentage": pct[k], "confidence": confidence[k], "rows": rows[k],
             "status": status}
        )  # fmt: skip
    return pl.from_dicts(out, schema=_OPPORTUNITY_SCHEMA) if out else schema.empty(schema.OPPORTUNITIES)


#: Events of a step: ``(slot, seq, ts, values)``, values in :data:`OPEN_F` order (the peak column holds the
#: event's profit), sorted by slot then seq.
Events = tuple[_I, _I, _I, _F]
NO_EVENTS: Events = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(OPEN_F))))


def sorted_events(parts: Sequence[Events]) -> Events:
    """The events of several trades together, sorted by slot then seq (the order :func:`fold_events` needs)."""
    if not parts:
        return NO_EVENTS
    slot, seq, ts, values = (np.concatenate([part[j] for part in parts]) for j in range(4))
    order = np.lexsort((seq, slot))
    return slot[order], seq[order], ts[order], np.ascontiguousarray(values[order])


def fold_events(
    kind: str, text: SlotText, slot_candidate: _I, events: Events, open_i: _I, open_f: _F, next_seq: _I
) -> pl.DataFrame:
    """Fold ``events`` into the open episodes (arrays updated in place) and return those that closed."""
    slot, seq, ts, values = events
    if slot.size == 0 and not (open_i[:, 4] > 0).any():
        return _EMPTY.clear()
    n, slots, ints, floats = _b_scan.fold(slot, seq, ts, values, slot_candidate, open_i, open_f, next_seq)
    return episodes_frame(kind, text, slots[:n], ints[:n], floats[:n], "expired") if n else _EMPTY.clear()


def finish_slots(kind: str, text: SlotText, open_i: _I, open_f: _F) -> pl.DataFrame:
    """The open episodes as ``"active"`` opportunities (the end of a run)."""
    slots = np.flatnonzero(open_i[:, 4] > 0)
    if slots.size == 0:
        return _EMPTY.clear()
    return episodes_frame(kind, text, slots.astype(np.int64), open_i[slots], open_f[slots], "active")


def event_rows(kind: str, text: SlotText, timelines: Sequence[str], events: Events) -> pl.DataFrame:
    """``events`` as an event frame of :mod:`arbkit.detect._episodes` (research paths; strings per event)."""
    slot, seq, ts, values = events
    picked = slot.tolist()
    leg_prices = values[:, OPEN_F.index("leg0") :].tolist()
    size = values[:, 2].tolist()
    return event_frame(
        kind=kind,
        key=[text.key[s] for s in picked],
        timeline=[timelines[s // 2] for s in picked],
        seq=seq,
        ts=ts,
        symbol=[text.symbol[s] for s in picked],
        legs=[
            [
                {"exchange": ex, "symbol": sym, "side": side, "price": price, "size": z}
                for (ex, sym, side), price in zip(text.legs[s], prices, strict=False)
            ]
            for s, prices, z in zip(picked, leg_prices, size, strict=True)
        ],
        buy_exchange=[text.buy_exchange[s] for s in picked],
        sell_exchange=[text.sell_exchange[s] for s in picked],
        buy_price=values[:, 0],
        sell_price=values[:, 1],
        size=values[:, 2],
        profit=values[:, 3],
        profit_percentage=values[:, 5],
        confidence=values[:, 6],
    )


_EMPTY = schema.empty(schema.OPPORTUNITIES)
