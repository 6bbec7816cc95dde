"""Seeded synthetic market with injected arbitrage and ground-truth labels.

The market
----------
Correlated latent USD prices (one-factor correlation, stochastic volatility clipped to [0.5, 2] times each asset's
level, bounded jumps) drive every quote.  Each venue quotes each instrument around the latent price with its own
lead-lag of the diffusive part (jumps hit all venues at the same event time), half-spread, sizes (lognormal
notional, on the registry's lot grid), prices on the registry's tick grid (bid floored, ask ceiled), and update
times on a jittered grid of mean gap ``1 / rate`` (never longer than 0.4 of the venue's ``max_age``, so a live
quote is always fresh).  ``ts_recv = ts_event + latency * U(0.8, 1.6)`` (registry profile latency), strictly
increasing per venue-instrument.  USDT is worth exactly 1 USD.

Universe (default venues): spot ``X/USDT`` on binance, okx, bybit, coinbase and kraken; crosses ``X/BTC`` and
linear perpetuals ``X/USDT:USDT`` on binance, okx and bybit (a cross is listed only where the registry tick is at
most 5 bp of its price); on deribit the inverse perpetual ``X/USD:X``, three dated futures ``X/USD:X-YYMMDD``
(Fridays after the generated period) and an option chain of 7 strikes x 3 expiries x call/put for BTC and ETH.
Option bid/ask are in the premium currency (the base), ``underlying_price`` is the index in USD.  Futures trade
at ``index * exp(rate_r * T)``, options at Black-76 on that forward with a smile, discounted at ``rate_r``, so
put-call parity holds at fair value.  Trades print at the as-of best bid/ask (``rate / 4`` per second); ``book``
carries 5 levels per side for a few instruments.  Perpetual funding rows (table ``funding``) come every 5 s.

No arbitrage outside episodes
-----------------------------
Half-spreads are ``multiplier(venue) * max(2 bp, 3 * sigma_max * sqrt(W))`` where ``W`` is the worst staleness
window between two quotes (largest gap, lag and latency), jumps are at most ``0.4 * (10 bp + 2 h0)`` and perp
premiums and funding stay within 1.5 bp: any two usable quotes (age within the venue's ``max_age``, no blocking
flag) are then within fees of each other for every relationship below, up to an ~8 sigma event.

Injected episodes (table ``labels``)
------------------------------------
Episodes never overlap.  A live episode shifts the quotes of one to three venue-instruments (every row with
``ts_event`` in the window, both sides) for 50 ms - 30 s, with forced updates at the start, at 1/4, 1/2, 3/4 and
at the end.  ``ts_start`` is the receive time of the first shifted row (the last leg to arrive), ``ts_end`` the
receive time of the first restored row (the first leg to restore): the episode is ``[ts_start, ts_end)`` in the
``ts_recv`` clock.  Each leg's shift alone stays within 85% of its budget against every other relationship it
belongs to (the same symbol on other venues, spot-perp, spot-future and perp-perp basis pairs, triangular
cycles), so partial states and neighbours never show an unlabelled opportunity: a cross-exchange episode moves
the sell venue up and the buy venue down, and between two perpetuals its edge stays below the perp-perp basis
threshold (fees paid twice).  Edges are at least ``0.6 * h0`` (the asset's base half-spread, several times the
quote noise) above or below zero, so an episode keeps its class on every row.  ``expected_profit`` is evaluated
from the as-of quotes (latest ``ts_recv <= ts_start``) with the formulas below; ``above_fees =
expected_profit > 0``.

*Stale* episodes (``stale=True``, cross-exchange): one venue-instrument stops updating (no rows) while the latent
price drifts linearly (3-15 s) after its quote is already older than its ``max_age``; the label starts once the
drift is complete and ends at the frozen quote's next row.  A detector honouring ``max_age`` reports nothing.
Plain outages (no label) freeze a random venue-instrument for 1.5-4 ``max_age``.

Formulas (per unit of base; ``f`` = taker fee of each leg's instrument from the registry, fraction of notional)
-----------------------------------------------------------------------------------------------------------
* ``cross_exchange`` (buy on A, sell on B, symbol S): ``(bid_B - ask_A) - f_A*ask_A - f_B*bid_B``;
  ``size = min(ask_size_A, bid_size_B)``; legs ``[(A,S,buy,ask_A,size), (B,S,sell,bid_B,size)]``.
* ``triangular`` (one venue; symbol = the cross ``X/BTC``): buy cycle USDT->BTC->X->USDT
  ``bid_XU / (ask_BU * ask_XB)``, sell cycle USDT->X->BTC->USDT ``bid_XB * bid_BU / ask_XU``; profit per unit of
  USDT = rate product ``* (1-f1)(1-f2)(1-f3) - 1``.  ``size`` = the USDT notional the displayed sizes allow
  (gross of fees); legs in cycle order, leg sizes in each pair's base (gross); ``expected_profit`` in USDT.
* ``basis`` (spot ``X/USDT`` on A, linear perp ``X/USDT:USDT`` on B, symbol ``"X/USDT vs X/USDT:USDT"``): cash
  and carry ``(bid_P - ask_S) - 2*(f_S*ask_S + f_P*bid_P) + rate*mark``; reverse
  ``(bid_S - ask_P) - 2*(f_S*bid_S + f_P*ask_P) - rate*mark - borrow_rate*tau*bid_S`` with ``rate`` the perp's
  predicted funding rate and ``mark`` its mark price from the latest ``funding`` row, ``tau`` the years to its next
  funding time; ``borrow_rate`` is 0 by default (:class:`MarketSpec`).
* ``parity`` (deribit, symbol ``"X/USD:X-YYMMDD-STRIKE"``): option prices times their own row's
  ``underlying_price``; reversal ``C_bid - P_ask - (F_ask - K)*exp(-r*T)``, conversion
  ``P_bid - C_ask - (K - F_bid)*exp(-r*T)``, minus ``min(f_opt*underlying, fee_cap*premium_usd)`` per option leg
  and ``f_fut*F`` for the future; ``T`` = years of 365 days from ``ts_start`` to expiry (08:00 UTC); ``size`` in
  base units = min(option sizes, future contracts * contract_size / F).

Examples
--------
>>> spec = MarketSpec(days=2 / 1440, assets=("BTC", "ETH"), venues=("binance", "okx"))
>>> tables = {}
>>> for name, chunk in generate(spec):
...     tables[name] = tables.get(name, 0) + chunk.height
>>> sorted(tables)
['book', 'funding', 'labels', 'quotes', 'trades']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from arbkit.data._gen_chunk import Knobs, build_chunk
from arbkit.data._gen_market import NS, build_universe, initial_state
from arbkit.instruments import VENUES, Registry, default_registry
from arbkit.schema import TABLES, validate

__all__ = ["GENERATOR_VERSION", "GenerateSummary", "MarketSpec", "generate", "generate_to_store"]

#: Bumped whenever the same spec would produce different data.
GENERATOR_VERSION = "1"

_DEFAULT_VENUES = ("binance", "okx", "bybit", "coinbase", "kraken", "deribit")


@dataclass(frozen=True)
class MarketSpec:
    """What to generate; every field has a default and is validated (``ValueError`` names the field).

    Parameters
    ----------
    seed
        Seed of every random draw: the same spec gives byte-identical tables.
    start
        First day (00:00 UTC); 2025-06-02 is a Monday.
    days
        Length of the market in days (fractions allowed); the default is one hour.
    venues, assets
        CCXT venue ids and base assets; unknown assets get a price level and volatility derived from the name.
    rate
        Quote updates per second per venue-instrument (options update at the same mean rate).
    options
        Whether deribit lists the BTC/ETH option chain.
    rate_r
        Continuous risk-free rate: futures basis and option discounting.
    borrow_rate
        Annual cost of borrowing spot for reverse basis trades (used in labels only).
    chunk_minutes
        Market time per yielded chunk (memory bound).
    episodes_per_hour, outages_per_hour, jumps_per_hour
        Injected episodes, plain outages (market-wide), jumps (per asset).
    stale_fraction, below_fee_fraction
        Shares of episodes that are stale, and that are below fees.
    trades
        Whether to print trades (``rate / 4`` per second per venue-instrument) at the as-of best bid/ask.
    book, book_levels
        Venue-instruments that also get ``book_levels`` levels per side (table ``book``) on every quote update;
        entries that are not generated (venue or asset not selected) are ignored.
    """

    seed: int = 7
    start: dt.date = dt.date(2025, 6, 2)
    days: float = 1.0 / 24.0
    venues: tuple[str, ...] = _DEFAULT_VENUES
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    rate: float = 2.0
    options: bool = True
    rate_r: float = 0.05
    borrow_rate: float = 0.0
    chunk_minutes: float = 10.0
    episodes_per_hour: float = 60.0
    outages_per_hour: float = 6.0
    jumps_per_hour: float = 6.0
    stale_fraction: float = 0.15
    below_fee_fraction: float = 0.35
    trades: bool = True
    book: tuple[tuple[str, str], ...] = (("binance", "BTC/USDT"), ("okx", "BTC/USDT:USDT"))
    book_levels: int = 5

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"MarketSpec.{name}: {why} (got {getattr(self, name)!r})")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "int") and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise bad(f.name, "must be a number")
            if f.type == "bool" and not isinstance(value, bool):
                raise bad(f.name, "must be true or false")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be a non-negative integer")
        if not isinstance(self.start, dt.date):
            raise bad("start", "must be a datetime.date")
        if not (0 < self.days <= 366):
            raise bad("days", "must be in (0, 366]")
        if not self.venues or len(set(self.venues)) != len(self.venues):
            raise bad("venues", "must be a non-empty tuple of distinct venue ids")
        for v in self.venues:
            if v not in VENUES:
                raise bad("venues", f"unknown venue {v!r} (known: {', '.join(VENUES)})")
        if not self.assets or len(set(self.assets)) != len(self.assets):
            raise bad("assets", "must be a non-empty tuple of distinct asset names")
        for a in self.assets:
            if not (isinstance(a, str) and a.isalnum() and a.isupper() and len(a) <= 15) or a in ("USDT", "USD"):
                raise bad("assets", f"bad asset name {a!r} (upper-case letters/digits, not a quote currency)")
        if not (0.05 <= self.rate <= 1000):
            raise bad("rate", "must be in [0.05, 1000] updates per second")
        if not (math.isfinite(self.rate_r) and -0.5 < self.rate_r < 1.0):
            raise bad("rate_r", "must be a finite rate in (-0.5, 1)")
        if not (0 <= self.borrow_rate < 1.0):
            raise bad("borrow_rate", "must be in [0, 1)")
        if not (0.5 <= self.chunk_minutes <= 120):
            raise bad("chunk_minutes", "must be in [0.5, 120]")
        for name in ("episodes_per_hour", "outages_per_hour", "jumps_per_hour"):
            if not (0 <= getattr(self, name) <= 3600):
                raise bad(name, "must be in [0, 3600]")
        if not (0 <= self.book_levels <= 50):
            raise bad("book_levels", "must be in [0, 50]")
        for entry in self.book:
            if not (isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
                raise bad("book", f"entries are (venue, symbol) pairs, got {entry!r}")
        for name in ("stale_fraction", "below_fee_fraction"):
            if not (0 <= getattr(self, name) <= 1):
                raise bad(name, "must be in [0, 1]")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarketSpec:
        """The inverse of :meth:`to_dict` (a configuration section, a store's ``meta``): lists become tuples, an
        ISO date string becomes ``start``, and an unknown key is a ``ValueError`` naming it (a typo never silently
        falls back to a default).

        Examples
        --------
        >>> MarketSpec.from_dict({"days": 0.5, "venues": ["okx"]}).venues
        ('okx',)
        >>> MarketSpec.from_dict({"dayz": 0.5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: MarketSpec: unknown key(s) ['dayz'] (known: seed, start, days, venues, ...)
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"MarketSpec: unknown key(s) {unknown} (known: {', '.join(names)})")
        values = dict(data)
        if isinstance(values.get("start"), str):
            try:
                values["start"] = dt.date.fromisoformat(values["start"])
            except ValueError:
                raise ValueError(f"MarketSpec.start: not an ISO date (got {values['start']!r})") from None
        for name in ("venues", "assets"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        if isinstance(values.get("book"), list):
            values["book"] = tuple(tuple(b) if isinstance(b, list) else b for b in values["book"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["start"] = self.start.isoformat()
        out["venues"] = list(self.venues)
        out["assets"] = list(self.assets)
        out["book"] = [list(b) for b in self.book]
        return out


@dataclass(frozen=True)
class GenerateSummary:
    """Rows written per table, the labels by kind and the market's time span."""

    rows: dict[str, int]
    labels_by_kind: dict[str, int]
    start_ns: int
    end_ns: int
    spec: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _span(spec: MarketSpec) -> tuple[int, int]:
    start = int(dt.datetime(spec.start.year, spec.start.month, spec.start.day, tzinfo=dt.UTC).timestamp()) * NS
    return start, start + round(spec.days * 86400 * NS)


def generate(spec: MarketSpec, registry: Registry | None = None) -> Iterator[tuple[str, pl.DataFrame]]:
    """Yield ``(table_name, chunk)`` in time order, ``spec.chunk_minutes`` of market per chunk.

    Table names are ``quotes``, ``book``, ``trades``, ``option_quotes``, ``funding`` and ``labels``; each chunk is
    validated against :mod:`arbkit.schema` and sorted by ``ts_recv`` (labels by ``ts_start``).  Empty chunks are
    skipped; a spec whose venues list none of its assets yields nothing.  Memory is bounded by one chunk.

    Examples
    --------
    >>> spec = MarketSpec(days=1 / 1440, assets=("ETH",), venues=("okx", "bybit"), episodes_per_hour=0)
    >>> name, quotes = next(generate(spec))
    >>> name, quotes.columns[:4], (quotes["bid"] < quotes["ask"]).all()
    ('quotes', ['ts_event', 'ts_recv', 'exchange', 'symbol'], True)
    """
    reg = registry if registry is not None else default_registry()
    for v in spec.venues:
        reg.profile(v)
    universe = build_universe(
        reg, spec.venues, spec.assets, spec.rate, spec.start, spec.days, spec.options, spec.rate_r
    )
    if not universe.vis and not universe.options:
        return  # nothing listed (e.g. deribit alone, which lists only BTC and ETH): no rows, not an error
    state = initial_state(universe, len(universe.options))
    knobs = Knobs(
        seed=spec.seed,
        rate=spec.rate,
        episodes_per_hour=spec.episodes_per_hour,
        outages_per_hour=spec.outages_per_hour,
        jumps_per_hour=spec.jumps_per_hour,
        stale_fraction=spec.stale_fraction,
        below_fee_fraction=spec.below_fee_fraction,
        borrow_rate=spec.borrow_rate,
        trade_rate=spec.rate / 4.0 if spec.trades else 0.0,
        book=tuple(entry for entry in spec.book if entry in universe.by_key),  # others are not generated: ignored
        book_levels=spec.book_levels,
    )
    start, end = _span(spec)
    step = int(spec.chunk_minutes * 60 * NS)
    for index, t0 in enumerate(range(start, end, step)):
        t1 = min(t0 + step, end)
        tables = build_chunk(universe, state, t0, t1, knobs, index)
        for name in ("quotes", "book", "trades", "option_quotes", "funding", "labels"):
            frame = tables.get(name)
            if frame is None or frame.height == 0:
                continue
            table = TABLES[name]
            order = ["ts_start", "episode_id"] if name == "labels" else ["ts_recv", "exchange", "symbol"]
            if name == "book":
                order = [*order, "side", "level"]
            yield name, validate(frame, table).sort(order)


def generate_to_store(root: Path, spec: MarketSpec, progress: Callable[[float], None] | None = None) -> GenerateSummary:
    """Generate ``spec`` into the Parquet store at ``root`` and write ``root/meta.json``.

    ``progress`` receives the fraction of market time done (0..1) after each chunk.  ``meta.json`` holds the spec,
    ``rate_r`` and the generator version, so detectors can be run with the same risk-free rate.
    """
    from arbkit.data.store import Store

    root = Path(root)
    store = Store(root)
    rows: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    start, end = _span(spec)
    for name, frame in generate(spec):
        store.append(name, frame)
        rows[name] = rows.get(name, 0) + frame.height
        if name == "labels":
            for kind, count in frame.group_by("kind").len().iter_rows():
                by_kind[str(kind)] = by_kind.get(str(kind), 0) + int(count)
        if progress is not None and name == "quotes":
            last = int(frame.get_column("ts_event").to_numpy().max())
            progress(min(1.0, (last - start) / max(end - start, 1)))
    if progress is not None:
        progress(1.0)
    meta = {
        "generator": "arbkit.data.generate",
        "version": GENERATOR_VERSION,
        "spec": spec.to_dict(),
        "rate_r": spec.rate_r,
        "borrow_rate": spec.borrow_rate,
        "rows": rows,
        "labels_by_kind": by_kind,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return GenerateSummary(rows=rows, labels_by_kind=by_kind, start_ns=start, end_ns=end, spec=spec.to_dict())
