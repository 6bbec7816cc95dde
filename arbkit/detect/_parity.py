"""Put-call parity detector: call minus put against the discounted forward, after fees and spreads.

Candidates are the ``(exchange, expiry, strike)`` groups of an option chain (OPTION_QUOTES rows) where both the
call and the put have been quoted.  The forward hedge is the future of the same expiry on the same venue
(``BASE/USD:SETTLE-YYMMDD`` in the quotes table) when it has been quoted; otherwise a synthetic forward
``index * exp((rate - dividend) * T)`` from the latest option row's ``underlying_price`` (bid = ask, no spread).
Option prices are in the premium currency (:attr:`arbkit.instruments.Instrument.premium_currency`: the base for
Deribit's inverse options) and are converted to USD with each row's own ``underlying_price``.

Two trades per candidate and row (also :func:`arbkit.detect._b_kernels.parity_profit`):

* ``reversal``: sell the call at its bid, buy the put at its ask, buy the future at its ask;
* ``conversion``: buy the call at its ask, sell the put at its bid, sell the future at its bid;

each option leg pays ``min(taker_fee * underlying_price, fee_cap * premium_usd)``, the future ``taker_fee * F``.
``T`` is the time to the expiry (08:00 UTC on the expiry date) in years of 365 days.

Size (in units of the base asset): the displayed size of every leg on the side traded (option amounts are in
the base; inverse futures in USD contracts, converted with ``contract_size / price``) and ``max_notional / F``.
A row is active when the profit at size exceeds ``min_profit`` and every leg used is usable (row checks of
:func:`arbkit.align.check_quotes`, no blocking flag, no older than the venue's max age); a profitable row on an
unusable leg is counted as suppressed and ends the episode.  A candidate's timeline is every row of its call,
put and future once call and put have both been quoted.

Speed: a step is one compiled pass over its rows (:mod:`._b_scan`) on dense carried cells (the latest row per
option and future), which advances every candidate's row counter and screens out rows where neither trade can be
profitable; the remaining rows are evaluated exactly in compiled code (:func:`arbkit.detect._b_scan.parity_events`,
the formulas above, shared with :func:`evaluate_parity`), and their events folded into the open episodes.  Frames
are built only for the episodes that close.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.align import Clock, _known, _memo, count_reasons, max_age_ns
from arbkit.detect import _b_scan
from arbkit.detect._b_common import (
    KEPT,
    KNOWN,
    NO_EVENTS,
    PERP,
    CellState,
    Events,
    SlotText,
    bump,
    canonical_order,
    clock_of,
    csr,
    event_rows,
    finish_slots,
    floats_of,
    fold_events,
    ints_of,
    on_grid,
    pair_flags,
    pair_ids,
    sorted_events,
)
from arbkit.instruments import (
    InstrumentKind,
    Registry,
    SymbolInfo,
    UnknownInstrumentError,
    default_registry,
    format_symbol,
    parse_symbol,
)
from arbkit.instruments import expiry_ns as expiry_instant
from arbkit.pipeline import Batch
from arbkit.schema import QuoteFlag

__all__ = ["ParityParams", "ParityState", "evaluate_parity", "finish_parity", "step_parity"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_NS_PER_YEAR = 365.0 * 24 * 3600 * 1e9
_TRADES = ("reversal", "conversion")
_SIDES = (("sell", "buy", "buy"), ("buy", "sell", "sell"))


@dataclass(frozen=True)
class ParityParams:
    """Parameters of the parity detector.

    Attributes
    ----------
    registry
        Fees, fee caps, premium currencies, contract sizes and venue max ages.
    clock
        ``"ts_recv"`` (default) or ``"ts_event"``.
    rate
        Continuously compounded risk-free rate (the generator writes it to ``<store>/meta.json``).
    dividend
        Continuous yield of the underlying, used only for the synthetic forward.
    max_notional
        Cap on the forward notional ``size * F`` (USD).
    min_profit
        A row is profitable when its profit at size exceeds this (USD).
    kind
        The ``kind`` written to the opportunities.
    max_age_ms
        Override of the venues' max quote age (ms); ``None`` uses the registry profiles.
    """

    registry: Registry = field(default_factory=default_registry)
    clock: Clock = "ts_recv"
    rate: float = 0.05
    dividend: float = 0.0
    max_notional: float = 1_000_000.0
    min_profit: float = 0.0
    kind: str = "parity"
    max_age_ms: float | None = None


@dataclass(frozen=True)
class ParityState(CellState):
    """Everything a step carries (:class:`arbkit.detect._b_common.CellState`): ``keys`` are the options seen
    (``cells``: ``bid, ask, bid_size, ask_size, underlying_price, reason`` of the latest row), ``side_keys`` the
    dated futures seen in the quotes (``side_cells``: ``bid, ask, bid_size, ask_size, reason``); candidates are the
    sorted groups, slots ``2 * candidate + trade`` (reversal, conversion).
    """

    COLUMNS = (6, 5)
    TRADES = _TRADES


@dataclass(frozen=True, slots=True)
class _Option:
    group: tuple[str, str, str, float]  # exchange, chain prefix (BASE/QUOTE:SETTLE-YYMMDD), strike text, strike
    call: bool
    premium_in_base: bool
    taker_fee: float
    fee_cap: float
    expiry: int
    future_symbol: str


def _classify(exchange: str, symbol: str, registry: Registry) -> _Option | None:
    try:
        inst = registry.get(exchange, symbol)
    except UnknownInstrumentError:
        return None
    if inst.kind is not InstrumentKind.OPTION or inst.expiry is None or inst.strike is None:
        return None
    info = inst.info
    future = format_symbol(SymbolInfo(info.base, info.quote, info.settle, info.expiry))
    return _Option(
        group=(exchange, future, symbol.rsplit("-", 2)[1], float(inst.strike)),
        call=info.option_type == "C",
        premium_in_base=inst.premium_currency == info.base,
        taker_fee=inst.taker_fee,
        fee_cap=inst.fee_cap if inst.fee_cap is not None else 1.0,
        expiry=expiry_instant(inst.expiry),
        future_symbol=future,
    )


def _option(key: tuple[str, str], registry: Registry) -> _Option | None:
    memo = _memo(registry)
    memo_key = ("parity.option", key)
    if memo_key not in memo:
        memo[memo_key] = _classify(key[0], key[1], registry)
    return cast(_Option | None, memo[memo_key])


def _is_future(symbol: str) -> bool:
    try:
        return parse_symbol(symbol).kind is InstrumentKind.FUTURE
    except ValueError:
        return False


#: Bit of :func:`_pair_flags`: a dated future (a possible hedge), beside ``KEPT`` (an option leg) and ``KNOWN``.
FUTURE = PERP


def _pair_flags(key: tuple[str, str], registry: Registry) -> int:
    bits = KNOWN if _known(registry, *key) else 0
    bits |= KEPT if _option(key, registry) is not None else 0
    return bits | (FUTURE if _is_future(key[1]) else 0)


_CAND_F = ("strike", "option_fee", "fee_cap", "future_fee", "future_contract", "latency_ms")


@dataclass(frozen=True)
class _Tables:
    """Static tables of a key set: per option key ``in_base``; per candidate the legs, ``expiry``, ``max_age`` (ns),
    ``future_inverse`` and the :data:`_CAND_F` floats; the keys' CSR lists; per slot the strings."""

    in_base: BoolArray
    cand_call: IntArray
    cand_put: IntArray
    cand_future: IntArray
    expiry: IntArray
    max_age: IntArray
    future_inverse: BoolArray
    cand_f: FloatArray
    key_ptr: IntArray
    key_cands: IntArray
    fkey_ptr: IntArray
    fkey_cands: IntArray
    timelines: tuple[str, ...]
    slot_of_candidate: IntArray
    text: SlotText


def _tables(okeys: tuple[tuple[str, str], ...], fkeys: tuple[tuple[str, str], ...], params: ParityParams) -> _Tables:
    registry = params.registry
    memo = _memo(registry)
    memo_key = ("parity.tables", okeys, fkeys, params.kind, params.max_age_ms)
    found = memo.get(memo_key)
    if found is not None:
        return cast(_Tables, found)
    infos = [_option(k, registry) for k in okeys]
    groups: dict[tuple[str, str, str, float], list[int]] = {}
    for code, opt in enumerate(infos):
        if opt is not None:
            groups.setdefault(opt.group, [-1, -1])[0 if opt.call else 1] = code
    venues = tuple(sorted({g[0] for g in groups}))
    ages = dict(zip(venues, max_age_ns(venues, registry, params.max_age_ms).tolist(), strict=True))
    f_index = {k: i for i, k in enumerate(fkeys)}
    chosen = [(g, groups[g]) for g in sorted(groups) if min(groups[g]) >= 0]
    n = len(chosen)
    cand_call = np.array([c for _, (c, _) in chosen], dtype=np.int64)
    cand_put = np.array([p for _, (_, p) in chosen], dtype=np.int64)
    cand_future = np.array([f_index.get((g[0], g[1]), -1) for g, _ in chosen], dtype=np.int64)
    expiry = np.zeros(n, dtype=np.int64)
    max_age = np.zeros(n, dtype=np.int64)
    future_inverse = np.zeros(n, dtype=np.bool_)
    cand_f = np.zeros((n, len(_CAND_F)))
    timelines, key_text, symbol, exchanges, legs = [], [], [], [], []
    for i, (group, (c_code, p_code)) in enumerate(chosen):
        exchange, future_symbol, strike_text, strike = group
        copt = infos[c_code]
        assert copt is not None
        try:
            fut = registry.get(exchange, future_symbol)
            future_fee, f_contract, f_inverse = fut.taker_fee, fut.contract_size, fut.info.inverse
        except UnknownInstrumentError:
            future_fee, f_contract, f_inverse = 0.0, 1.0, False
        expiry[i] = copt.expiry
        max_age[i] = ages[exchange]
        future_inverse[i] = f_inverse
        latency = registry.profile(exchange).latency_ms
        cand_f[i] = (strike, copt.taker_fee, copt.fee_cap, future_fee, f_contract, latency)
        timeline = f"{params.kind}:{exchange}:{future_symbol}-{strike_text}"
        timelines.append(timeline)
        symbols = (okeys[c_code][1], okeys[p_code][1], future_symbol)
        for name, sides in zip(_TRADES, _SIDES, strict=True):
            key_text.append(f"{timeline}>{name}")
            symbol.append(f"{future_symbol}-{strike_text}")
            exchanges.append(exchange)
            legs.append(tuple((exchange, sym, side) for sym, side in zip(symbols, sides, strict=True)))
    in_base = np.array([o is not None and o.premium_in_base for o in infos], dtype=np.bool_)
    key_ptr, key_cands = csr(len(okeys), [(int(c), int(p)) for c, p in zip(cand_call, cand_put, strict=True)])
    fkey_ptr, fkey_cands = csr(len(fkeys), [(int(f),) for f in cand_future])
    text = SlotText(tuple(key_text), tuple(symbol), tuple(exchanges), tuple(exchanges), tuple(legs))
    tables = _Tables(
        in_base, cand_call, cand_put, cand_future, expiry, max_age, future_inverse, cand_f, key_ptr, key_cands,
        fkey_ptr, fkey_cands, tuple(timelines), np.repeat(np.arange(n, dtype=np.int64), 2), text,
    )  # fmt: skip
    memo[memo_key] = tables
    return tables


@dataclass(frozen=True)
class _Scanned:
    """A batch scanned onto the carried cells: the emitted rows, the next state (episodes not yet folded)."""

    tables: _Tables
    emit_i: IntArray
    emit_f: FloatArray
    state: ParityState


def _quote_values(
    frame: pl.DataFrame, names: tuple[str, ...], known: BoolArray, rows: IntArray | None = None
) -> tuple[FloatArray, IntArray]:
    """``names`` then the row check reason as float columns, and the reasons (:func:`arbkit.align.check_quotes`),
    of ``rows`` (all where ``None``)."""
    n = frame.height if rows is None else rows.shape[0]
    values = np.empty((n, len(names) + 1))
    for c, name in enumerate(names):
        column = floats_of(frame, name)
        values[:, c] = column if rows is None else column[rows]
    flags = np.zeros(n, dtype=np.int64)
    if "flags" in frame.columns:
        flags = ints_of(frame, "flags") if rows is None else ints_of(frame, "flags")[rows]
    reason = _b_scan.reasons(values, flags, known, QuoteFlag.blocking())
    values[:, len(names)] = reason
    return values, reason.astype(np.int64)


def _scan(batch: Batch, state: ParityState, params: ParityParams, screen: bool) -> _Scanned:
    counts = dict(state.counts)
    registry = params.registry
    options, quotes = batch.option_quotes, batch.quotes
    o_ids, o_inv = pair_ids(options)
    q_ids, q_inv = pair_ids(quotes)
    memo = _memo(registry)
    o_flags = pair_flags(memo, "parity.flags", o_ids, lambda key: _pair_flags(key, registry))
    q_flags = pair_flags(memo, "parity.flags", q_ids, lambda key: _pair_flags(key, registry))
    o_kept, o_known = (o_flags & KEPT) != 0, (o_flags & KNOWN) != 0
    q_kept, q_known = (q_flags & FUTURE) != 0, (q_flags & KNOWN) != 0
    o_values, o_reason = _quote_values(options, _OPTION_VALUES, o_known[o_inv])
    o_keep = o_kept[o_inv]
    bump(counts, count_reasons(o_reason[o_keep].astype(np.uint8)))
    bump(counts, {"unused": int((~o_keep & (o_reason == 0)).sum())})
    bump(counts, {"unknown_instrument": int((~o_keep & (o_reason != 0)).sum())})
    q_rows = np.flatnonzero(q_kept[q_inv])
    f_values, f_reason = _quote_values(quotes, _FUTURE_VALUES, q_known[q_inv[q_rows]], q_rows)
    bump(counts, {f"future_{k}": v for k, v in count_reasons(f_reason.astype(np.uint8)).items()})
    work, tables, o_code, q_code = on_grid(
        state, (o_ids, o_kept), (q_ids, q_kept), lambda okeys, fkeys: _tables(okeys, fkeys, params)
    )
    # Future rows keep their place among all quote rows: the canonical order ranks quotes before options.
    q_clock = clock_of(quotes, params.clock)
    o_clock = clock_of(options, params.clock)
    q_all = np.full((quotes.height, len(_FUTURE_VALUES) + 1), np.nan)
    q_all[q_rows] = f_values
    order = canonical_order(q_clock, o_clock)
    cf = tables.cand_f
    n_emit, emit_i, emit_f = _b_scan.parity_scan(
        order, quotes.height, q_code[q_inv], q_clock, q_all, o_code[o_inv], o_clock, o_values,
        work.cells, work.cell_time, work.cell_seen, work.side_cells, work.side_time, work.side_seen,
        tables.key_ptr, tables.key_cands, tables.fkey_ptr, tables.fkey_cands, tables.cand_call, tables.cand_put,
        tables.cand_future, tables.in_base, tables.expiry, np.ascontiguousarray(cf[:, 0]), float(params.rate),
        float(params.dividend), screen, work.next_seq,
    )  # fmt: skip
    return _Scanned(tables, emit_i[:n_emit], emit_f[:n_emit], dataclasses.replace(work, counts=counts))


_OPTION_VALUES = ("bid", "ask", "bid_size", "ask_size", "underlying_price")
_FUTURE_VALUES = ("bid", "ask", "bid_size", "ask_size")


def _events(scanned: _Scanned, params: ParityParams) -> tuple[Events, dict[str, int]]:
    """Exact evaluation of the emitted rows in compiled code: the active rows as events in row order and the
    suppressed counters."""
    tables = scanned.tables
    n, slot, seq, ts, values, suppressed = _b_scan.parity_events(
        scanned.emit_i, scanned.emit_f, tables.cand_call, tables.in_base, tables.cand_put, tables.expiry,
        tables.max_age, tables.future_inverse, tables.cand_f, float(params.rate), float(params.dividend),
        float(params.max_notional), float(params.min_profit),
    )  # fmt: skip
    counts = {"suppressed_flagged": int(suppressed[0]), "suppressed_stale": int(suppressed[1])}
    return (slot[:n], seq[:n], ts[:n], values[:n]), counts


def evaluate_parity(batch: Batch, state: ParityState, params: ParityParams) -> tuple[pl.DataFrame, ParityState]:
    """Evaluate every put-call parity candidate on every row of its timeline in ``batch`` (research; unscreened).

    Returns the active events (the event schema of :mod:`arbkit.detect._episodes`) and the advanced state
    (episodes not yet merged: :func:`step_parity` does that).
    """
    scanned = _scan(batch, state, params, screen=False)
    found, suppressed = _events(scanned, params)
    tables = scanned.tables
    events = event_rows(params.kind, tables.text, tables.timelines, sorted_events([found]))
    counts = dict(scanned.state.counts)
    bump(counts, suppressed)
    return events, dataclasses.replace(scanned.state, counts=dict(sorted(counts.items())))


def step_parity(batch: Batch, state: ParityState, params: ParityParams) -> tuple[pl.DataFrame, ParityState]:
    """One strategy step: scan the batch, evaluate the screened rows, fold events into episodes, emit the closed.

    Examples
    --------
    A call priced 100 USD above parity against the future: selling it (reversal) pays after fees.

    >>> import polars as pl
    >>> from arbkit.pipeline import Batch
    >>> T = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
    >>> opt = pl.DataFrame({
    ...     "ts_event": [T, T], "ts_recv": [T, T], "exchange": ["deribit"] * 2,
    ...     "symbol": ["BTC/USD:BTC-260327-100000-C", "BTC/USD:BTC-260327-100000-P"],
    ...     "underlying": ["BTC/USD"] * 2, "expiry": [1_774_598_400_000_000_000] * 2, "strike": [100000.0] * 2,
    ...     "option_type": ["C", "P"], "bid": [0.0530, 0.0490], "bid_size": [1.0, 1.0], "ask": [0.0540, 0.0500],
    ...     "ask_size": [1.0, 1.0], "underlying_price": [100000.0] * 2})
    >>> out, state = step_parity(Batch.of(option_quotes=opt), ParityState.empty(), ParityParams(rate=0.0))
    >>> finish_parity(state, ParityParams(rate=0.0)).select("symbol", "buy_exchange").rows()
    [('BTC/USD:BTC-260327-100000', 'deribit')]
    """
    if batch.quotes.height == 0 and batch.option_quotes.height == 0:
        return _EMPTY.clear(), state
    scanned = _scan(batch, state, params, screen=True)
    work = scanned.state
    counts = dict(work.counts)
    events = NO_EVENTS
    if scanned.emit_i.shape[0]:
        events, suppressed = _events(scanned, params)
        bump(counts, suppressed)
    tables = scanned.tables
    closed = fold_events(
        params.kind, tables.text, tables.slot_of_candidate, events, work.open_i, work.open_f, work.next_seq
    )
    return closed, dataclasses.replace(work, counts=dict(sorted(counts.items())))


def finish_parity(state: ParityState, params: ParityParams) -> pl.DataFrame:
    """The episodes still open at the end of a run (status ``"active"``)."""
    text = _tables(state.keys, state.side_keys, params).text
    return finish_slots(params.kind, text, state.open_i, state.open_f)


_EMPTY = schema.empty(schema.OPPORTUNITIES)
