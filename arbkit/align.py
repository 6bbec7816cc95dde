"""As-of alignment: every venue's latest usable quote, per instrument, at every row of a merged timeline.

Detectors compare quotes of the same instrument on several venues (or of several instruments on one venue), so
at each row of the merged timeline they need the *as-of view*: for every venue, the latest quote of that
instrument with a clock ``<= t``.  This module computes that view for a whole batch at once and carries the
latest quote per ``(exchange, symbol)`` in an explicit :class:`LastQuotes` state, so that stepping over
micro-batches gives exactly the view of one run over the concatenation (batch-split parity, see
:mod:`arbkit.pipeline`).

Rules (DESIGN.md section 4)
---------------------------
* **Timeline.**  Rows are processed in the canonical order of :mod:`arbkit.pipeline`: stable sort by the clock
  column (``ts_recv`` by default, ``ts_event`` on request), ties broken by position in the batch.  The view at
  a row includes that row itself and every earlier row, never a later row with the same timestamp: that is what
  a live engine knew when it processed the row, and it does not depend on where a micro-batch was cut.
* **Latest wins, even when bad.**  A rejected or flagged row still *replaces* its venue's latest quote: the
  venue's book is then unknown (or known to be broken) and an older quote must not be resurrected.  The venue
  becomes usable again with its next good row.
* **Usable** at time ``t`` means: present, passed the row checks (:data:`REASONS`), carries no
  :meth:`~arbkit.schema.QuoteFlag.blocking` flag, and ``t - clock <= max_age`` for its venue.  ``max_age``
  comes from ``Registry.profile(exchange).max_age_ms`` unless overridden.

Implementation: rows are grouped by symbol (stable, so the timeline order is kept inside a group) and, for
each venue, the index of its latest row is a running maximum of ``where(venue == v, position, -1)``; an index
that points before the group's start means "no row of this venue yet in this batch" and falls back to the
carried state.  That is ``O(rows x venues)`` NumPy work, no Python loop per row: the value arrays stay in input
order (extended with the carried cells), and only the index arrays are permuted.  A batch already in clock order
(store files, replays) is not sorted; the carried state keeps NumPy copies of its cells for the next step.

Examples
--------
>>> import polars as pl
>>> from arbkit.instruments import default_registry
>>> q = pl.DataFrame({
...     "ts_event": [1, 2, 3], "ts_recv": [10, 20, 30],
...     "exchange": ["binance", "okx", "binance"], "symbol": ["BTC/USDT"] * 3,
...     "bid": [100.0, 101.0, 102.0], "bid_size": [1.0] * 3, "ask": [100.5, 101.5, 102.5], "ask_size": [1.0] * 3,
... })
>>> view, state = align_quotes(q, LastQuotes.empty(), registry=default_registry())
>>> view.venues
('binance', 'okx')
>>> view.bid.tolist()  # one row per timeline row, one column per venue
[[100.0, nan], [100.0, 101.0], [102.0, 101.0]]
>>> state.frame.select("exchange", "bid").rows()
[('binance', 102.0), ('okx', 101.0)]
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit.instruments import Registry, UnknownInstrumentError
from arbkit.schema import QuoteFlag

__all__ = [
    "REASONS",
    "AlignedQuotes",
    "Clock",
    "LastQuotes",
    "Reason",
    "align_quotes",
    "canonical_order",
    "check_quotes",
    "count_reasons",
    "max_age_ns",
]

Clock = Literal["ts_recv", "ts_event"]

_NS_PER_MS = 1_000_000


class Reason(enum.IntEnum):
    """Why a row cannot be used (0 = usable).  Counted by detectors in their state, by name."""

    OK = 0
    MISSING_PRICE = 1  # null, NaN or infinite bid or ask
    NON_POSITIVE_PRICE = 2  # bid or ask <= 0
    CROSSED = 3  # bid > ask on the venue's own book (flagged or not)
    BAD_SIZE = 4  # negative, NaN or infinite displayed size
    UNKNOWN_INSTRUMENT = 5  # the registry cannot resolve (exchange, symbol)
    FLAGGED = 6  # carries a blocking QuoteFlag (stale, crossed, unverified, resyncing, outage)


#: Reason names in code order; ``REASONS[code]`` is the counter key.
REASONS: tuple[str, ...] = tuple(r.name.lower() for r in Reason)

_STATE_SCHEMA = pl.Schema(
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "bid": pl.Float64,
        "bid_size": pl.Float64,
        "ask": pl.Float64,
        "ask_size": pl.Float64,
        "time": pl.Int64,
        "flags": pl.UInt16,
        "reason": pl.UInt8,
    }
)
_EMPTY_STATE = pl.DataFrame(schema=_STATE_SCHEMA)


@dataclass(frozen=True)
class LastQuotes:
    """The latest row per ``(exchange, symbol)``, whatever its quality; sorted by exchange then symbol.

    ``frame`` has columns ``exchange, symbol, bid, bid_size, ask, ask_size, time`` (the chosen clock, ns),
    ``flags`` and ``reason`` (:class:`Reason` code of the row; usable rows have 0).
    """

    frame: pl.DataFrame
    _cells: _StateCells | None = field(default=None, compare=False, repr=False)

    @classmethod
    def empty(cls) -> LastQuotes:
        """The state before any quote was seen."""
        return cls(_EMPTY_STATE.clear())

    def _state_cells(self) -> _StateCells:
        """``frame`` as Python names and NumPy columns (made once per state, or handed over by the step that made
        the state): the next step reads the carried cells without Polars calls."""
        if self._cells is None:
            object.__setattr__(self, "_cells", _StateCells.of(self.frame))
        assert self._cells is not None
        return self._cells


_STATE_VALUES = ("bid", "bid_size", "ask", "ask_size", "time", "flags", "reason")


@dataclass(frozen=True)
class _StateCells:
    """The rows of a :class:`LastQuotes` frame (same order): names as lists, values as NumPy arrays."""

    exchange: list[str]
    symbol: list[str]
    values: Mapping[str, npt.NDArray[Any]]

    @classmethod
    def of(cls, frame: pl.DataFrame) -> _StateCells:
        return cls(
            frame.get_column("exchange").to_list(),
            frame.get_column("symbol").to_list(),
            {name: frame.get_column(name).to_numpy() for name in _STATE_VALUES},
        )


@dataclass(frozen=True)
class AlignedQuotes:
    """The as-of view of a batch: one row per input row in timeline order, one column per venue.

    Attributes
    ----------
    venues, symbols
        Names behind the integer codes, sorted.  Columns of the ``(rows, venues)`` arrays follow ``venues``.
    source
        Position of each timeline row in the input frame (timeline order = canonical clock order).
    symbol, exchange
        The row's own symbol and venue codes.
    time
        The row's clock (ns).
    reason
        The row's own :class:`Reason` code.
    bid, ask, bid_size, ask_size
        Latest quote of the row's symbol on each venue as of the row (NaN where the venue has none).
    quote_time
        Clock of those quotes (``-1`` where none).
    usable
        True where that quote is present, passed the checks, is unflagged and is within the venue's max age.
    stale
        True where the quote would be usable but is older than the venue's max age.
    """

    venues: tuple[str, ...]
    symbols: tuple[str, ...]
    source: npt.NDArray[np.int64]
    symbol: npt.NDArray[np.int32]
    exchange: npt.NDArray[np.int32]
    time: npt.NDArray[np.int64]
    reason: npt.NDArray[np.uint8]
    bid: npt.NDArray[np.float64]
    ask: npt.NDArray[np.float64]
    bid_size: npt.NDArray[np.float64]
    ask_size: npt.NDArray[np.float64]
    quote_time: npt.NDArray[np.int64]
    usable: npt.NDArray[np.bool_]
    stale: npt.NDArray[np.bool_]

    @property
    def height(self) -> int:
        return int(self.source.shape[0])

    @property
    def age_ns(self) -> npt.NDArray[np.int64]:
        """Age of each venue's quote at each row (ns); meaningless where ``quote_time < 0``."""
        return self.time[:, None] - self.quote_time


def canonical_order(clock: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Positions of the rows in canonical order: stable sort by clock (ties keep batch order).

    Examples
    --------
    >>> import numpy as np
    >>> canonical_order(np.array([5, 3, 5, 3])).tolist()
    [1, 3, 0, 2]
    """
    return np.argsort(clock, kind="stable").astype(np.int64)


def max_age_ns(
    venues: tuple[str, ...], registry: Registry, override: float | Mapping[str, float] | None = None
) -> npt.NDArray[np.int64]:
    """Max quote age per venue in ns: the override (one value, or per venue) or the registry profile.

    Venues the registry does not know get 0 (their rows are rejected anyway).

    Examples
    --------
    >>> from arbkit.instruments import default_registry
    >>> max_age_ns(("binance", "kraken"), default_registry(), {"kraken": 500.0}).tolist()
    [1000000000, 500000000]
    """
    out = np.zeros(len(venues), dtype=np.int64)
    for i, venue in enumerate(venues):
        value: float | None = None
        if isinstance(override, Mapping):
            value = override.get(venue)
        elif override is not None:
            value = float(override)
        if value is None:
            try:
                value = registry.profile(venue).max_age_ms
            except UnknownInstrumentError:
                value = 0.0
        out[i] = round(value * _NS_PER_MS)
    return out


_MEMOS: dict[int, tuple[weakref.ref[Registry], dict[Any, Any]]] = {}


def _memo(registry: Registry) -> dict[Any, Any]:
    """A per-registry cache of lookups (registries are frozen); dropped with the registry."""
    entry = _MEMOS.get(id(registry))
    if entry is None or entry[0]() is not registry:
        if len(_MEMOS) > 64:
            _MEMOS.clear()
        entry = (weakref.ref(registry), {})
        _MEMOS[id(registry)] = entry
    return entry[1]


def _known(registry: Registry, exchange: str, symbol: str) -> bool:
    memo = _memo(registry)
    key = ("known", exchange, symbol)
    if key not in memo:
        memo[key] = (exchange, symbol) in registry
    return bool(memo[key])


def _codes(series: pl.Series) -> tuple[tuple[str, ...], npt.NDArray[np.int32]]:
    if series.len() <= _FEW_ROWS and series.null_count() == 0:  # live micro-batches: no Polars query
        values = series.to_list()
        names = tuple(sorted(set(values)))
        index = {name: i for i, name in enumerate(names)}
        return names, np.fromiter(map(index.__getitem__, values), dtype=np.int32, count=len(values))
    names = tuple(sorted(str(x) for x in series.unique().to_list()))
    if not names:
        return names, np.zeros(0, dtype=np.int32)
    codes = series.cast(pl.Enum(list(names))).to_physical().to_numpy().astype(np.int32, copy=False)
    return names, codes


@dataclass(frozen=True)
class _Checked:
    """Row check codes and the string columns as integer codes (shared by check and align)."""

    reason: npt.NDArray[np.uint8]
    exchanges: tuple[str, ...]
    exchange: npt.NDArray[np.int32]
    symbols: tuple[str, ...]
    symbol: npt.NDArray[np.int32]
    prices: Mapping[str, npt.NDArray[np.float64]] | None = None  # bid, ask, bid_size, ask_size (input order)


#: Batches up to this many rows code their string columns in Python (cheaper than two Polars queries).
_FEW_ROWS = 8192


def _int_column(quotes: pl.DataFrame, name: str, dtype: type[pl.DataType]) -> npt.NDArray[Any]:
    """``cast(dtype).fill_null(0)`` of a column, skipping the fill (a Polars query) when there is no null."""
    series = quotes.get_column(name).cast(dtype)
    if series.null_count():
        series = series.fill_null(0)
    return series.to_numpy()


def _float(quotes: pl.DataFrame, name: str) -> npt.NDArray[np.float64]:
    series = quotes.get_column(name)
    if series.dtype == pl.Float64 and series.null_count() == 0:
        values: npt.NDArray[np.float64] = series.to_numpy()  # zero-copy
        return values
    converted: npt.NDArray[np.float64] = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return converted


def check_quotes(quotes: pl.DataFrame, registry: Registry) -> npt.NDArray[np.uint8]:
    """The :class:`Reason` code of every row (input order); 0 where the row is usable.

    Checks run in the order of :class:`Reason`; a row gets the first that applies.

    Examples
    --------
    >>> import polars as pl
    >>> from arbkit.instruments import default_registry
    >>> q = pl.DataFrame({"exchange": ["okx", "okx", "okx", "nowhere"], "symbol": ["BTC/USDT"] * 4,
    ...                   "bid": [1.0, float("nan"), 2.0, 1.0], "bid_size": [1.0] * 4,
    ...                   "ask": [1.5, 1.0, 1.0, 1.5], "ask_size": [1.0] * 4, "flags": [0, 0, 2, 0]})
    >>> [REASONS[c] for c in check_quotes(q, default_registry())]
    ['ok', 'missing_price', 'crossed', 'unknown_instrument']
    """
    return _check(quotes, registry).reason


def _check(quotes: pl.DataFrame, registry: Registry) -> _Checked:
    n = quotes.height
    reason = np.zeros(n, dtype=np.uint8)
    if n == 0:
        empty = np.zeros(0, dtype=np.int32)
        return _Checked(reason, (), empty, (), empty)
    bid, ask = _float(quotes, "bid"), _float(quotes, "ask")
    bid_size, ask_size = _float(quotes, "bid_size"), _float(quotes, "ask_size")
    flags = _int_column(quotes, "flags", pl.Int64) if "flags" in quotes.columns else None
    exchanges, ex_code = _codes(quotes.get_column("exchange"))
    symbols, sym_code = _codes(quotes.get_column("symbol"))
    pair = ex_code.astype(np.int64) * len(symbols) + sym_code
    seen = np.flatnonzero(np.bincount(pair, minlength=len(exchanges) * len(symbols)))
    known = np.zeros(len(exchanges) * len(symbols), dtype=np.bool_)
    known[seen] = [_known(registry, exchanges[int(p) // len(symbols)], symbols[int(p) % len(symbols)]) for p in seen]
    reason = _reason_codes(bid, ask, bid_size, ask_size, flags, known[pair])
    prices = {"bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size}
    return _Checked(reason, exchanges, ex_code, symbols, sym_code, prices)


def _reason_codes(
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    bid_size: npt.NDArray[np.float64],
    ask_size: npt.NDArray[np.float64],
    flags: npt.NDArray[np.integer[Any]] | None,
    known: npt.NDArray[np.bool_],
) -> npt.NDArray[np.uint8]:
    """The :class:`Reason` of every row from its values and whether its instrument is known (first that applies),
    for detectors that code the string columns themselves."""
    reason = np.zeros(bid.shape[0], dtype=np.uint8)

    def mark(bad: npt.NDArray[np.bool_], code: Reason) -> None:
        reason[(reason == 0) & bad] = code

    with np.errstate(invalid="ignore"):
        mark(~(np.isfinite(bid) & np.isfinite(ask)), Reason.MISSING_PRICE)
        mark((bid <= 0) | (ask <= 0), Reason.NON_POSITIVE_PRICE)
        mark(bid > ask, Reason.CROSSED)
        mark(~(np.isfinite(bid_size) & np.isfinite(ask_size)) | (bid_size < 0) | (ask_size < 0), Reason.BAD_SIZE)
    mark(~known, Reason.UNKNOWN_INSTRUMENT)
    if flags is not None:
        mark((flags & QuoteFlag.blocking()) != 0, Reason.FLAGGED)
    return reason


def count_reasons(reason: npt.NDArray[np.uint8]) -> dict[str, int]:
    """Rows per non-zero reason, by name (only reasons that occurred).

    Examples
    --------
    >>> import numpy as np
    >>> count_reasons(np.array([0, 3, 3, 6], dtype=np.uint8))
    {'crossed': 2, 'flagged': 1}
    """
    counts = np.bincount(reason, minlength=len(REASONS))
    return {REASONS[i]: int(c) for i, c in enumerate(counts) if i > 0 and c > 0}


def align_quotes(
    quotes: pl.DataFrame,
    state: LastQuotes,
    *,
    registry: Registry,
    clock: Clock = "ts_recv",
    max_age_ms: float | Mapping[str, float] | None = None,
    reason: npt.NDArray[np.uint8] | None = None,
) -> tuple[AlignedQuotes, LastQuotes]:
    """As-of view of every venue's latest quote of each row's instrument, and the updated state.

    Parameters
    ----------
    quotes
        Rows of the ``quotes`` table (:data:`arbkit.schema.QUOTES` columns), in any order: they are put in
        canonical order by ``clock`` here.
    state
        The carried :class:`LastQuotes` (``LastQuotes.empty()`` at the start of a run).
    registry
        Resolves instruments (unknown ones are rejected) and gives each venue's ``max_age_ms``.
    clock
        ``"ts_recv"`` (what the engine knew, default) or ``"ts_event"`` (venue time).
    max_age_ms
        Override of the venues' max quote age: one value for all, or per venue (missing venues use the
        registry).
    reason
        Precomputed :func:`check_quotes` codes (input order), to avoid checking twice.

    Returns
    -------
    tuple[AlignedQuotes, LastQuotes]
        The view (rows in timeline order) and the state to pass to the next batch.

    Examples
    --------
    A flagged quote replaces its venue's latest quote and is not usable; the quote goes stale after max age:

    >>> import polars as pl
    >>> from arbkit.instruments import default_registry
    >>> ms = 1_000_000
    >>> q = pl.DataFrame({
    ...     "ts_event": [1, 1, 1], "ts_recv": [1 * ms, 2 * ms, 1500 * ms], "exchange": ["okx", "binance", "binance"],
    ...     "symbol": ["BTC/USDT"] * 3, "bid": [1.0] * 3, "bid_size": [1.0] * 3, "ask": [2.0] * 3,
    ...     "ask_size": [1.0] * 3, "flags": [0, 1, 0]})
    >>> view, _ = align_quotes(q, LastQuotes.empty(), registry=default_registry())
    >>> view.usable.tolist(), view.stale.tolist()
    ([[False, True], [False, True], [True, False]], [[False, False], [False, False], [False, True]])
    """
    if reason is None:
        checked = _check(quotes, registry)
    else:  # only the codes are needed
        exchanges, ex_code = _codes(quotes.get_column("exchange"))
        symbols, sym_code = _codes(quotes.get_column("symbol"))
        checked = _Checked(reason, exchanges, ex_code, symbols, sym_code)
    return _align(quotes, state, checked, registry=registry, clock=clock, max_age_ms=max_age_ms)


def _align(
    quotes: pl.DataFrame,
    state: LastQuotes,
    checked: _Checked,
    *,
    registry: Registry,
    clock: Clock = "ts_recv",
    max_age_ms: float | Mapping[str, float] | None = None,
) -> tuple[AlignedQuotes, LastQuotes]:
    lazy, last = _align_lazy(quotes, state, checked, registry=registry, clock=clock, max_age_ms=max_age_ms)
    return lazy.view(), last


@dataclass(frozen=True)
class _LazyView:
    """The as-of view before its ``(rows, venues)`` value arrays are gathered: detectors that screen rows gather
    the few columns they screen on for every row (:meth:`values`, or per venue in symbol-grouped order with
    ``src_g``) and everything else only for the rows that pass (:meth:`view` with ``rows``).

    ``src_g[v, g]`` is the index into the extended value arrays ``ext`` (the batch rows in input order, then the
    carried state cells, then one missing sentinel) of venue ``v``'s latest quote as of the ``g``-th row of the
    symbol-grouped order; ``grouped[g]`` is that row's timeline position and ``back`` the inverse permutation.
    """

    venues: tuple[str, ...]
    symbols: tuple[str, ...]
    source: npt.NDArray[np.int64]
    symbol: npt.NDArray[np.int32]
    exchange: npt.NDArray[np.int32]
    time: npt.NDArray[np.int64]
    reason: npt.NDArray[np.uint8]
    src_g: npt.NDArray[np.int64]  # (venues, rows) in symbol-grouped order
    grouped: npt.NDArray[np.int64]  # timeline position of each grouped row
    back: npt.NDArray[np.int64]  # grouped position of each timeline row
    group_counts: npt.NDArray[np.int64]  # rows per symbol (the grouped order's runs)
    ext: Mapping[str, npt.NDArray[np.float64]]
    ext_time: npt.NDArray[np.int64]
    ext_ok: npt.NDArray[np.bool_]
    limits: npt.NDArray[np.int64]

    @property
    def height(self) -> int:
        return int(self.source.shape[0])

    @cached_property
    def src(self) -> npt.NDArray[np.int64]:
        """``(rows, venues)`` index into the extended value arrays, in timeline order."""
        return np.take(self.src_g, self.back, axis=1).T

    def values(self, name: str) -> npt.NDArray[np.float64]:
        """``(rows, venues)`` as-of values of ``bid``, ``ask``, ``bid_size`` or ``ask_size`` for every row."""
        return np.take(self.ext[name], self.src)

    def view(self, rows: npt.NDArray[np.int64] | None = None) -> AlignedQuotes:
        """The :class:`AlignedQuotes` of every row, or of the timeline rows ``rows`` only."""
        src = self.src if rows is None else self.src_g[:, self.back[rows]].T

        def pick(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return values if rows is None else values[rows]

        time = pick(self.time)
        quote_time = np.take(self.ext_time, src)
        present_ok = np.take(self.ext_ok, src)
        fresh = (time[:, None] - quote_time) <= self.limits[None, :]
        return AlignedQuotes(
            venues=self.venues,
            symbols=self.symbols,
            source=pick(self.source),
            symbol=pick(self.symbol),
            exchange=pick(self.exchange),
            time=time,
            reason=pick(self.reason),
            bid=np.take(self.ext["bid"], src),
            ask=np.take(self.ext["ask"], src),
            bid_size=np.take(self.ext["bid_size"], src),
            ask_size=np.take(self.ext["ask_size"], src),
            quote_time=quote_time,
            usable=present_ok & fresh,
            stale=present_ok & ~fresh,
        )


def _extended(values: npt.NDArray[Any], tail: int, fill: Any, dtype: Any) -> npt.NDArray[Any]:
    out = np.empty(values.shape[0] + tail, dtype=dtype)
    out[: values.shape[0]] = values
    out[values.shape[0] :] = fill
    return out


def _align_lazy(
    quotes: pl.DataFrame,
    state: LastQuotes,
    checked: _Checked,
    *,
    registry: Registry,
    clock: Clock = "ts_recv",
    max_age_ms: float | Mapping[str, float] | None = None,
) -> tuple[_LazyView, LastQuotes]:
    n = quotes.height
    reason = checked.reason
    clock_all = quotes.get_column(clock).to_numpy().astype(np.int64, copy=False)
    # Already in clock order (store files, the replay): the canonical order is the identity, no sort or gather.
    in_order = n < 2 or bool((clock_all[1:] >= clock_all[:-1]).all())
    order = np.arange(n, dtype=np.int64) if in_order else canonical_order(clock_all)

    prior = state._state_cells()
    symbols, sym_code_in = checked.symbols, checked.symbol
    wanted = set(symbols)
    here = [i for i, s in enumerate(prior.symbol) if s in wanted]
    venues = tuple(sorted(set(checked.exchanges) | {prior.exchange[i] for i in here}))
    n_sym, n_ven = len(symbols), len(venues)
    venue_index = {v: i for i, v in enumerate(venues)}
    venue_of_exchange = np.array([venue_index[e] for e in checked.exchanges], dtype=np.int32)
    ven_code_in = venue_of_exchange[checked.exchange] if n else np.zeros(0, dtype=np.int32)

    # Rows grouped by symbol (stable: timeline order kept inside each group).  Small integer codes make NumPy's
    # stable sort a radix sort.
    sym_t = sym_code_in if in_order else sym_code_in[order]
    small = np.uint8 if n_sym <= 256 else np.uint16 if n_sym <= 65_536 else np.int64
    by_symbol = np.argsort(sym_t.astype(small), kind="stable")
    rows = by_symbol if in_order else order[by_symbol]  # input positions, grouped by symbol
    ven_g = ven_code_in[rows]

    # Extended value arrays: the batch rows (input order), then the carried state per (symbol, venue) cell, then
    # one "missing" sentinel at the very end.
    n_cells = n_sym * n_ven
    tail = n_cells + 1
    seed_index = np.full(n_cells, n + n_cells, dtype=np.int64)  # default: the sentinel
    ext = {
        name: _extended(checked.prices[name] if checked.prices is not None else _float(quotes, name), tail, np.nan,
                        np.float64)
        for name in ("bid", "ask", "bid_size", "ask_size")
    }  # fmt: skip
    ext_time = _extended(clock_all, tail, -1, np.int64)
    ext_reason = _extended(reason, tail, 255, np.uint8)
    flags_in = _int_column(quotes, "flags", pl.UInt16) if "flags" in quotes.columns else np.zeros(n, dtype=np.uint16)
    ext_flags = _extended(flags_in, tail, 0, np.uint16)
    if here:
        symbol_index = {s: i for i, s in enumerate(symbols)}
        take = np.array(here, dtype=np.int64)
        cell = np.array(
            [symbol_index[prior.symbol[i]] * n_ven + venue_index[prior.exchange[i]] for i in here], dtype=np.int64
        )
        slot = n + cell
        seed_index[cell] = slot
        for name, values in ext.items():
            values[slot] = prior.values[name][take]
        ext_time[slot] = prior.values["time"][take]
        ext_reason[slot] = prior.values["reason"][take]
        ext_flags[slot] = prior.values["flags"][take]

    # Index of the latest row per venue, as of each row, in grouped order (input positions into ``ext``).
    counts = np.bincount(sym_code_in, minlength=n_sym).astype(np.int64) if n else np.zeros(n_sym, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    group_start = np.repeat(starts, counts)
    positions = np.arange(n, dtype=np.int64)
    src_g = np.empty((n_ven, n), dtype=np.int64)  # per venue, contiguous, grouped order
    ends = starts + counts - 1
    has_rows = counts > 0
    last_cell = np.full(n_cells, -1, dtype=np.int64)  # input position of each cell's last row in this batch
    for v in range(n_ven):
        if n == 0:
            break
        last = np.maximum.accumulate(np.where(ven_g == v, positions, -1))
        seed = np.repeat(seed_index[np.arange(n_sym) * n_ven + v], counts)
        src_g[v] = np.where(last >= group_start, rows[last], seed)
        end_last = last[ends[has_rows]]
        seen = end_last >= starts[has_rows]
        last_cell[np.flatnonzero(has_rows)[seen] * n_ven + v] = rows[end_last[seen]]
    back = np.empty(n, dtype=np.int64)
    back[by_symbol] = positions

    lazy = _LazyView(
        venues=venues,
        symbols=symbols,
        source=order,
        symbol=sym_t.astype(np.int32, copy=False),
        exchange=ven_code_in if in_order else ven_code_in[order],
        time=clock_all if in_order else clock_all[order],
        reason=reason if in_order else reason[order],
        src_g=src_g,
        grouped=by_symbol.astype(np.int64, copy=False),
        back=back,
        group_counts=counts,
        ext=ext,
        ext_time=ext_time,
        ext_ok=ext_reason == 0,
        limits=max_age_ns(venues, registry, max_age_ms),
    )

    # New state: the last row per (symbol, venue) cell of this batch, plus untouched carried rows; sorted by
    # exchange then symbol.
    if not n:
        return lazy, state
    cells = np.flatnonzero(last_cell >= 0)
    idx = last_cell[cells]
    names = [(venues[int(c) % n_ven], symbols[int(c) // n_ven]) for c in cells]
    updated = set(names)
    kept = [i for i, cell_name in enumerate(zip(prior.exchange, prior.symbol, strict=True)) if cell_name not in updated]
    # Entries: (exchange, symbol, carried position or -1, batch position or -1).
    entries = sorted(
        [(prior.exchange[i], prior.symbol[i], i, -1) for i in kept]
        + [(e, s, -1, int(j)) for (e, s), j in zip(names, idx, strict=True)]
    )
    from_prior = np.array([e[2] for e in entries], dtype=np.int64)
    from_batch = np.array([e[3] for e in entries], dtype=np.int64)
    is_batch = from_batch >= 0
    batch_at = np.maximum(from_batch, 0)
    prior_at = np.maximum(from_prior, 0)
    batch_values = {
        "bid": ext["bid"], "bid_size": ext["bid_size"], "ask": ext["ask"], "ask_size": ext["ask_size"],
        "time": ext_time, "flags": ext_flags, "reason": ext_reason,
    }  # fmt: skip
    new_values: dict[str, npt.NDArray[Any]] = {}
    for name in _STATE_VALUES:
        fresh = batch_values[name][batch_at]
        if len(prior.exchange):
            new_values[name] = np.where(is_batch, fresh, prior.values[name][prior_at].astype(fresh.dtype))
        else:
            new_values[name] = fresh
    exchange_names = [e[0] for e in entries]
    symbol_names = [e[1] for e in entries]
    frame = pl.DataFrame({"exchange": exchange_names, "symbol": symbol_names, **new_values}, schema=_STATE_SCHEMA)
    return lazy, LastQuotes(frame, _StateCells(exchange_names, symbol_names, new_values))
