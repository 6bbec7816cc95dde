"""Basis and funding detector: spot vs perpetual, spot vs dated future, perpetual vs perpetual across venues.

Candidates
----------
For every base asset, from the instruments seen so far (the registry resolves each ``(exchange, symbol)``):

* ``spot_perp``: spot ``X/USDT`` on venue A (``spot_quotes`` widens the quote currencies) and a perpetual on venue
  B (A == B allowed): linear ``X/USDT:USDT`` or inverse ``X/USD:X`` (Deribit), whose USD prices are converted to
  USDT with the peg ``usd_per_usdt`` (USD value of one USDT, default 1.0).
* ``spot_future``: the same spot and a dated future ``X/USD:X-YYMMDD`` / ``X/USDT:USDT-YYMMDD`` before expiry.
* ``perp_perp``: two perpetuals of the same base on different venues (funding differential).

Each candidate is evaluated in both directions; a direction's legs are ``buy`` at the ask and ``sell`` at the bid.

Profit per base unit (in USDT), the agreed label formulas (also :func:`arbkit.detect._b_kernels.two_leg_profit`)::

    bid_sell - ask_buy - 2 * (fee_buy * ask_buy + fee_sell * bid_sell) + carry

``carry`` by candidate and direction (``rate`` is the perpetual's predicted funding rate, else its current one,
from its latest FUNDING row; ``mark`` its mark price, else the quote mid; ``tau`` the time to its next funding in
years, ``T`` the time to the future's expiry; ``r`` the risk-free rate; ``b`` the annual borrow rate):

==========================  =============================================  ======================================
candidate                   buy spot / buy leg 1 (cash and carry)          sell spot / sell leg 1 (reverse)
==========================  =============================================  ======================================
spot_perp                   ``+rate * mark`` (the short perp receives it)  ``-rate * mark - b * tau * bid_spot``
spot_future                 ``-ask_spot * (exp(r T) - 1)`` (financing)     ``+bid_spot * (exp(r T) - 1) - b T bid_spot``
perp_perp (1 long, 2 short)  ``rate_2 * mark_2 - rate_1 * mark_1``          the opposite sign
==========================  =============================================  ======================================

A perpetual with no funding row yet carries no funding; its next funding time falls on the venue's funding grid
(every ``funding_interval_hours`` from 00:00 UTC).  The annualized basis of a row is reported by
:func:`evaluate_basis` (``annualized_basis``: ``(mid_2 / mid_1 - 1) / T`` for futures, the perp premium times the
funding periods per year for perpetuals, and ``annualized_funding``), since the OPPORTUNITIES schema is fixed.

Sizing: the displayed sizes of both legs in base units (linear: ``size * contract_size``; inverse:
``size * contract_size / price``, contract sizes in USD) and ``max_notional / ask_buy``; ``profit`` is per-unit
profit times that size.  A row is *active* when its profit exceeds ``min_profit`` and every leg (quotes and the
funding rows used) is usable: passed the row checks of :func:`arbkit.align.check_quotes`, carries no blocking
flag and is no older than its venue's ``max_age``.  A profitable row on an unusable leg is *suppressed* and
counted (``suppressed_flagged`` / ``suppressed_stale``); it ends the episode.

Timeline: a candidate's rows are every quote row of its legs (and funding row of its perpetual legs) once both
legs have been quoted; consecutive active rows of one direction merge into an episode (:mod:`._episodes`).

Speed: a step is one compiled pass over its rows (:mod:`._b_scan`) on dense carried cells (the latest quote and
funding row per instrument), which advances every candidate's row counter and screens out the rows where neither
direction can be profitable; only the remaining rows are evaluated exactly, by the compiled
:func:`arbkit.detect._b_scan.basis_events` (the formulas above; the research path :func:`evaluate_basis` runs the
same code), and their events are folded into the open episodes in compiled code.  Strings and frames are made only
for the episodes that close, so a live micro-batch costs in proportion to its own rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
from arbkit.instruments import InstrumentKind, Registry, UnknownInstrumentError, default_registry, expiry_ns
from arbkit.pipeline import Batch
from arbkit.schema import QuoteFlag

__all__ = ["BasisParams", "BasisState", "evaluate_basis", "finish_basis", "step_basis"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_NS_PER_YEAR = 365.0 * 24 * 3600 * 1e9
_NS_PER_HOUR = 3600 * 10**9
CANDIDATES = ("spot_perp", "spot_future", "perp_perp")


@dataclass(frozen=True)
class BasisParams:
    """Parameters of the basis detector (all rates are fractions; annual rates are continuously compounded).

    Attributes
    ----------
    registry
        Fees, contract sizes, funding intervals and venue max ages.
    clock
        ``"ts_recv"`` (default: what the engine knew) or ``"ts_event"``.
    max_notional
        Cap on the bought leg's notional, in USDT.
    min_profit
        A row is profitable when its profit at size exceeds this (USDT).
    borrow_rate
        Annual cost of borrowing the spot asset sold short (reverse trades).
    rate
        Risk-free rate used to finance a dated-future carry.
    usd_per_usdt
        Peg: USD value of one USDT, to compare USD-quoted inverse contracts with USDT markets.
    spot_quotes
        Quote currencies of the spot markets used as the cash leg.
    use_predicted_rate
        Use the FUNDING row's predicted rate when present (else always the current rate).
    candidates
        Which candidate families to evaluate (subset of ``spot_perp``, ``spot_future``, ``perp_perp``).
    kind
        The ``kind`` written to the opportunities.
    max_age_ms
        Override of the venues' max quote age (ms); ``None`` uses the registry profiles.
    """

    registry: Registry = field(default_factory=default_registry)
    clock: Clock = "ts_recv"
    max_notional: float = 1_000_000.0
    min_profit: float = 0.0
    borrow_rate: float = 0.10
    rate: float = 0.05
    usd_per_usdt: float = 1.0
    spot_quotes: tuple[str, ...] = ("USDT",)
    use_predicted_rate: bool = True
    candidates: tuple[str, ...] = CANDIDATES
    kind: str = "basis"
    max_age_ms: float | None = None


@dataclass(frozen=True, slots=True)
class _Info:
    role: str  # spot | perp | future
    base: str
    exchange: str
    to_usdt: float  # multiply a price by this to get USDT
    inverse: bool
    contract_size: float
    taker_fee: float
    expiry: int  # ns, futures only (0 otherwise)
    funding_hours: float


def _classify(exchange: str, symbol: str, params: BasisParams) -> _Info | None:
    try:
        inst = params.registry.get(exchange, symbol)
    except UnknownInstrumentError:
        return None
    info = inst.info
    kind = inst.kind
    if kind is InstrumentKind.SPOT:
        if info.quote not in params.spot_quotes:
            return None
        role = "spot"
    elif kind in (InstrumentKind.SWAP, InstrumentKind.FUTURE):
        role = "perp" if kind is InstrumentKind.SWAP else "future"
    else:
        return None
    if info.quote == "USDT":
        to_usdt = 1.0
    elif info.quote == "USD":
        to_usdt = 1.0 / params.usd_per_usdt
    else:
        return None
    if role != "spot" and not (info.linear or info.inverse):
        return None
    hours = inst.funding_interval_hours or params.registry.profile(exchange).funding_interval_hours
    return _Info(
        role=role,
        base=info.base,
        exchange=exchange,
        to_usdt=to_usdt,
        inverse=info.inverse,
        contract_size=inst.contract_size,
        taker_fee=inst.taker_fee,
        expiry=expiry_ns(info.expiry) if info.expiry is not None else 0,
        funding_hours=hours,
    )


def _pairs(
    keys: tuple[tuple[str, str], ...], infos: Mapping[tuple[str, str], _Info], params: BasisParams
) -> list[tuple[str, int, int]]:
    by_role: dict[tuple[str, str], list[int]] = {}
    for code, key in enumerate(keys):
        info = infos[key]
        by_role.setdefault((info.base, info.role), []).append(code)
    out: list[tuple[str, int, int]] = []
    bases = sorted({b for b, _ in by_role})
    for base in bases:
        spots = by_role.get((base, "spot"), [])
        perps = by_role.get((base, "perp"), [])
        futures = by_role.get((base, "future"), [])
        if "spot_perp" in params.candidates:
            out.extend(("spot_perp", s, p) for s in spots for p in perps)
        if "spot_future" in params.candidates:
            out.extend(("spot_future", s, f) for s in spots for f in futures)
        if "perp_perp" in params.candidates:
            out.extend(
                ("perp_perp", a, b)
                for i, a in enumerate(perps)
                for b in perps[i + 1 :]
                if infos[keys[a]].exchange != infos[keys[b]].exchange
            )
    return out


@dataclass(frozen=True)
class BasisState(CellState):
    """Everything a step carries (:class:`arbkit.detect._b_common.CellState`): ``keys`` are the instruments with
    quote rows (``cells``: ``bid, ask, bid_size, ask_size, flags, reason`` of the latest row), ``side_keys`` the
    perpetuals with funding rows (``side_cells``: ``rate, next_funding_time, mark, flags``); candidates in the
    order of :func:`_pairs`, slots ``2 * candidate + direction``.
    """

    COLUMNS = (6, 4)


_KEY_INFO = ("to_usdt", "fee", "contract_size", "latency_ms", "funding_hours")


@dataclass(frozen=True)
class _Tables:
    """Static tables of a key set: per key (``key_f`` columns :data:`_KEY_INFO`, ``period`` ns, ``max_age`` ns,
    ``is_perp``, ``inverse``, ``expiry``, ``funding_of``), per candidate (legs, family, the keys' CSR lists), per
    slot (strings)."""

    key_f: FloatArray
    period: IntArray
    max_age: IntArray
    is_perp: BoolArray
    inverse: BoolArray
    expiry: IntArray
    funding_of: IntArray
    quote_of: IntArray  # per funding key, the quote key (-1: none)
    cand_a: IntArray
    cand_b: IntArray
    family: IntArray
    key_ptr: IntArray
    key_cands: IntArray
    fkey_ptr: IntArray
    fkey_cands: IntArray
    timelines: tuple[str, ...]
    slot_of_candidate: IntArray  # candidate of every slot
    text: SlotText


def _tables(keys: tuple[tuple[str, str], ...], fkeys: tuple[tuple[str, str], ...], params: BasisParams) -> _Tables:
    memo = _memo(params.registry)
    memo_key = ("basis.tables", keys, fkeys, params.spot_quotes, params.usd_per_usdt, params.candidates,
                params.kind, params.max_age_ms)  # fmt: skip
    found = memo.get(memo_key)
    if found is not None:
        return cast(_Tables, found)
    infos = [_info(k, params) for k in keys]
    known = {k: i for k, i in zip(keys, infos, strict=True) if i is not None}
    venues = tuple(sorted({k[0] for k in keys}))
    age_of = dict(zip(venues, max_age_ns(venues, params.registry, params.max_age_ms).tolist(), strict=True))
    f_index = {k: i for i, k in enumerate(fkeys)}
    key_f = np.zeros((len(keys), len(_KEY_INFO)))
    period = np.zeros(len(keys), dtype=np.int64)
    max_age = np.zeros(len(keys), dtype=np.int64)
    is_perp = np.zeros(len(keys), dtype=np.bool_)
    inverse = np.zeros(len(keys), dtype=np.bool_)
    expiry = np.zeros(len(keys), dtype=np.int64)
    funding_of = np.full(len(keys), -1, dtype=np.int64)
    for code, (key, info) in enumerate(zip(keys, infos, strict=True)):
        if info is None:
            continue
        latency = params.registry.profile(info.exchange).latency_ms
        key_f[code] = (info.to_usdt, info.taker_fee, info.contract_size, latency, info.funding_hours)
        period[code] = round(info.funding_hours * _NS_PER_HOUR)
        max_age[code] = age_of[key[0]]
        is_perp[code] = info.role == "perp"
        inverse[code] = info.inverse
        expiry[code] = info.expiry
        if info.role == "perp":
            funding_of[code] = f_index.get(key, -1)
    quote_of = np.full(len(fkeys), -1, dtype=np.int64)
    quote_of[funding_of[funding_of >= 0]] = np.flatnonzero(funding_of >= 0)
    pairs = _pairs(keys, known, params)
    families = {name: i for i, name in enumerate(CANDIDATES)}
    cand_a = np.array([a for _, a, _ in pairs], dtype=np.int64)
    cand_b = np.array([b for _, _, b in pairs], dtype=np.int64)
    family = np.array([families[f] for f, _, _ in pairs], dtype=np.int64)
    key_ptr, key_cands = csr(len(keys), [(a, b) for _, a, b in pairs])
    fkey_ptr, fkey_cands = csr(len(fkeys), [(int(funding_of[a]), int(funding_of[b])) for _, a, b in pairs])
    timelines, key_text, symbol, buy_ex, sell_ex, legs = [], [], [], [], [], []
    for _, a, b in pairs:
        ka, kb = keys[a], keys[b]
        timeline = f"{params.kind}:{ka[0]}:{ka[1]}|{kb[0]}:{kb[1]}"
        timelines.append(timeline)
        for direction, buy, sell in ((0, ka, kb), (1, kb, ka)):
            key_text.append(f"{timeline}>{direction}")
            symbol.append(f"{ka[1]} vs {kb[1]}")
            buy_ex.append(buy[0])
            sell_ex.append(sell[0])
            legs.append(((buy[0], buy[1], "buy"), (sell[0], sell[1], "sell")))
    text = SlotText(tuple(key_text), tuple(symbol), tuple(buy_ex), tuple(sell_ex), tuple(legs))
    tables = _Tables(
        key_f, period, max_age, is_perp, inverse, expiry, funding_of, quote_of, cand_a, cand_b, family, key_ptr,
        key_cands,
        fkey_ptr, fkey_cands, tuple(timelines), np.repeat(np.arange(len(pairs), dtype=np.int64), 2), text,
    )  # fmt: skip
    memo[memo_key] = tables
    return tables


def _info(key: tuple[str, str], params: BasisParams) -> _Info | None:
    memo = _memo(params.registry)
    memo_key = ("basis.info", key, params.spot_quotes, params.usd_per_usdt)
    if memo_key not in memo:
        memo[memo_key] = _classify(key[0], key[1], params)
    return cast(_Info | None, memo[memo_key])


_NO_REASON = np.zeros(0, dtype=np.uint8)


def _pair_flags(key: tuple[str, str], params: BasisParams) -> int:
    """:data:`KEPT` (a basis leg), :data:`PERP` (a perpetual leg) and :data:`KNOWN` (in the registry) bits."""
    info = _info(key, params)
    bits = KNOWN if _known(params.registry, *key) else 0
    if info is not None:
        bits |= KEPT | (PERP if info.role == "perp" else 0)
    return bits


@dataclass(frozen=True)
class _Scanned:
    """A batch scanned onto the carried cells: the emitted rows, the next state (episodes not yet folded)."""

    tables: _Tables
    emit_i: IntArray
    emit_f: FloatArray
    state: BasisState


def _scan(batch: Batch, state: BasisState, params: BasisParams, screen: bool) -> _Scanned:
    counts = dict(state.counts)
    quotes, funding = batch.quotes, batch.funding
    q_ids, q_inv = pair_ids(quotes)
    f_ids, f_inv = pair_ids(funding)
    memo = _memo(params.registry)
    flag_key = ("basis.flags", params.spot_quotes, params.usd_per_usdt)
    q_flags = pair_flags(memo, flag_key, q_ids, lambda key: _pair_flags(key, params))
    f_flags = pair_flags(memo, flag_key, f_ids, lambda key: _pair_flags(key, params))
    q_kept = (q_flags & KEPT) != 0
    f_kept = (f_flags & PERP) != 0
    known = (q_flags & KNOWN) != 0
    q_values = np.empty((quotes.height, 6))
    for c, name in enumerate(("bid", "ask", "bid_size", "ask_size")):
        q_values[:, c] = floats_of(quotes, name) if quotes.height else 0.0
    flags = ints_of(quotes, "flags") if "flags" in quotes.columns and quotes.height else None
    flags = flags if flags is not None else np.zeros(quotes.height, dtype=np.int64)
    reason = _b_scan.reasons(q_values, flags, known[q_inv], QuoteFlag.blocking()) if quotes.height else _NO_REASON
    q_values[:, 4] = floats_of(quotes, "flags") if "flags" in quotes.columns and quotes.height else np.nan
    q_values[:, 5] = reason
    keep_rows = q_kept[q_inv] if quotes.height else np.zeros(0, np.bool_)
    f_keep_rows = f_kept[f_inv] if funding.height else np.zeros(0, np.bool_)
    bump(counts, count_reasons(reason))
    bump(counts, {"unused": int((~keep_rows & (reason == 0)).sum())})
    bump(counts, {"funding_unused": int((~f_keep_rows).sum())})
    work, tables, q_code, f_code = on_grid(
        state, (q_ids, q_kept), (f_ids, f_kept), lambda keys, fkeys: _tables(keys, fkeys, params)
    )
    f_values = np.empty((funding.height, 4))
    if funding.height:
        predicted, current = floats_of(funding, "predicted_rate"), floats_of(funding, "funding_rate")
        rate = np.where(np.isfinite(predicted), predicted, current) if params.use_predicted_rate else current
        f_values[:, 0] = rate
        f_values[:, 1] = floats_of(funding, "next_funding_time")
        f_values[:, 2] = floats_of(funding, "mark_price")
        f_values[:, 3] = floats_of(funding, "flags")
    q_clock = clock_of(quotes, params.clock) if quotes.height else np.zeros(0, np.int64)
    f_clock = clock_of(funding, params.clock) if funding.height else np.zeros(0, np.int64)
    order = canonical_order(q_clock, f_clock)  # clock, then table, then row
    n_emit, emit_i, emit_f = _b_scan.basis_scan(
        order, quotes.height, q_code[q_inv] if quotes.height else np.zeros(0, np.int64), q_clock, q_values,
        f_code[f_inv] if funding.height else np.zeros(0, np.int64), f_clock, f_values,
        work.cells, work.cell_time, work.cell_seen, work.side_cells, work.side_time, work.side_seen,
        tables.key_ptr, tables.key_cands, tables.fkey_ptr, tables.fkey_cands, tables.cand_a, tables.cand_b,
        tables.family, tables.funding_of, np.ascontiguousarray(tables.key_f[:, 0]),
        np.ascontiguousarray(tables.key_f[:, 1]), tables.period, tables.is_perp, tables.expiry,
        float(params.borrow_rate), float(params.rate), screen, work.next_seq, tables.quote_of,
        np.empty((len(work.keys), 4)),
    )  # fmt: skip
    return _Scanned(tables, emit_i[:n_emit], emit_f[:n_emit], dataclasses.replace(work, counts=counts))


#: Columns of the per-row detail of :func:`_b_scan.basis_events` (research path).
_DETAIL_F = ("profit_0", "size_0", "profit_1", "size_1", "annualized_basis", "annualized_funding", "usable")


def _evaluated(scanned: _Scanned, params: BasisParams, detail: bool) -> tuple[Events, dict[str, int], FloatArray]:
    """Exact evaluation of the emitted rows in compiled code: the active rows as events in row order, the
    suppressed counters and (``detail``) the per-row :data:`_DETAIL_F` values."""
    tables, emit_i = scanned.tables, scanned.emit_i
    rows = np.empty((emit_i.shape[0] if detail else 0, len(_DETAIL_F)))
    n, slot, seq, ts, values, suppressed = _b_scan.basis_events(
        emit_i, scanned.emit_f, tables.cand_a, tables.cand_b, tables.family, tables.key_f, tables.period,
        tables.max_age, tables.is_perp, tables.inverse, tables.expiry, float(params.borrow_rate), float(params.rate),
        float(params.max_notional), float(params.min_profit), int(QuoteFlag.blocking()), rows,
    )  # fmt: skip
    counts = {"suppressed_flagged": int(suppressed[0]), "suppressed_stale": int(suppressed[1])}
    return (slot[:n], seq[:n], ts[:n], values[:n]), counts, rows


def evaluate_basis(
    batch: Batch, state: BasisState, params: BasisParams
) -> tuple[pl.DataFrame, pl.DataFrame, BasisState]:
    """Evaluate every basis candidate on every row of its timeline in ``batch`` (research; unscreened).

    Returns
    -------
    tuple
        ``(events, rows, state)``: the active events (the event schema of :mod:`arbkit.detect._episodes`), a
        per-row detail frame (``candidate, timeline, ts, direction, profit, size, annualized_basis,
        annualized_funding, usable``) for research, and the state advanced over the batch (episodes not yet
        merged: :func:`step_basis` does that).
    """
    scanned = _scan(batch, state, params, screen=False)
    found, suppressed, rows = _evaluated(scanned, params, detail=True)
    tables = scanned.tables
    cand, seq, now = scanned.emit_i[:, 0], scanned.emit_i[:, 1], scanned.emit_i[:, 2]
    n = cand.shape[0]
    names = np.array(CANDIDATES, dtype=object)[tables.family[cand]] if n else np.zeros(0, dtype=object)
    timelines = np.array(tables.timelines, dtype=object)[cand] if n else np.zeros(0, dtype=object)
    detail = pl.DataFrame(
        {
            "candidate": np.concatenate([names, names]).tolist(),
            "timeline": np.concatenate([timelines, timelines]).tolist(),
            "ts": np.concatenate([now, now]),
            "direction": np.repeat(np.array([0, 1], dtype=np.int8), n),
            "profit": np.concatenate([rows[:, 0], rows[:, 2]]),
            "size": np.concatenate([rows[:, 1], rows[:, 3]]),
            "annualized_basis": np.tile(rows[:, 4], 2),
            "annualized_funding": np.tile(rows[:, 5], 2),
            "usable": np.tile(rows[:, 6] != 0.0, 2),
        },
        schema=_DETAIL_SCHEMA,
    )
    order = np.lexsort((np.concatenate([seq, seq]), detail["direction"].to_numpy(), np.tile(cand, 2)))
    detail = detail[order]
    events = event_rows(params.kind, tables.text, tables.timelines, sorted_events([found]))
    counts = dict(scanned.state.counts)
    bump(counts, suppressed)
    return events, detail, dataclasses.replace(scanned.state, counts=dict(sorted(counts.items())))


_DETAIL_SCHEMA = pl.Schema(
    {
        "candidate": pl.String,
        "timeline": pl.String,
        "ts": pl.Int64,
        "direction": pl.Int8,
        "profit": pl.Float64,
        "size": pl.Float64,
        "annualized_basis": pl.Float64,
        "annualized_funding": pl.Float64,
        "usable": pl.Boolean,
    }
)


def step_basis(batch: Batch, state: BasisState, params: BasisParams) -> tuple[pl.DataFrame, BasisState]:
    """One strategy step: scan the batch, evaluate the screened rows, fold events into episodes, emit the closed.

    Examples
    --------
    A spot ask below a perp bid by more than the fees, with positive funding on the short perp:

    >>> import polars as pl
    >>> from arbkit.pipeline import Batch
    >>> q = pl.DataFrame({"ts_event": [1, 2], "ts_recv": [1, 2], "exchange": ["binance", "okx"],
    ...                   "symbol": ["BTC/USDT", "BTC/USDT:USDT"], "bid": [99.9, 102.0], "bid_size": [1.0, 2.0],
    ...                   "ask": [100.0, 102.1], "ask_size": [1.0, 2.0]})
    >>> out, state = step_basis(Batch.of(quotes=q), BasisState.empty(), BasisParams())
    >>> out.height, finish_basis(state, BasisParams()).select("buy_exchange", "sell_exchange", "size").rows()
    (0, [('binance', 'okx', 1.0)])
    """
    if batch.quotes.height == 0 and batch.funding.height == 0:
        return _EMPTY.clear(), state
    scanned = _scan(batch, state, params, screen=True)
    work = scanned.state
    counts = dict(work.counts)
    events = NO_EVENTS
    if scanned.emit_i.shape[0]:
        events, suppressed, _ = _evaluated(scanned, params, detail=False)
        bump(counts, suppressed)
    tables = scanned.tables
    closed = fold_events(
        params.kind, tables.text, tables.slot_of_candidate, events, work.open_i, work.open_f, work.next_seq
    )
    return closed, dataclasses.replace(work, counts=dict(sorted(counts.items())))


def finish_basis(state: BasisState, params: BasisParams) -> pl.DataFrame:
    """The episodes still open at the end of a run (status ``"active"``)."""
    text = _tables(state.keys, state.side_keys, params).text
    return finish_slots(params.kind, text, state.open_i, state.open_f)


_EMPTY = schema.empty(schema.OPPORTUNITIES)
