"""Per-day market data for the fill model: quotes (options mapped onto quote columns), funding and USD marks.

Why per day: a market view over months of quotes would not fit in memory, while one day (plus the tail that
holding-type signals need to close) does.  The USD marks follow the fill model's convention (the latest mid of
``ASSET/USDT``, ``/USD`` or ``/USDC`` on any venue), so a theoretical profit and a realized PnL are measured in
the same unit at the same instants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.data.store import Store
from arbkit.execution import MarketView

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NS_PER_DAY = 86_400 * 1_000_000_000
PEGGED = {"USDT": 1.0, "USD": 1.0, "USDC": 1.0}


def day_bounds(day: dt.date) -> tuple[int, int]:
    """Half-open ``[start, end)`` of a UTC day in ns."""
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    return start, start + NS_PER_DAY


def day_of(ns: int) -> dt.date:
    """The UTC date of a ns timestamp."""
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC).date()


def _quote_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select([pl.col(c) if c in frame.columns else pl.lit(None).alias(c) for c in schema.QUOTES.names])


@dataclass(frozen=True)
class DayMarket:
    """What the fill model needs for one day: the as-of view, funding rows and USD marks per asset."""

    view: MarketView
    funding: pl.DataFrame | None
    marks: dict[str, tuple[I64, F64]]
    clock: str = "ts_event"
    symbols: list[str] | None = None  # what was read (None: everything)
    others: dict[str, MarketView] = field(default_factory=dict)  # the same quotes indexed by other clocks

    def view_for(self, clock: str) -> MarketView:
        """The as-of view on ``clock`` (the fill clock's view, or one of ``others``)."""
        if clock == self.clock:
            return self.view
        try:
            return self.others[clock]
        except KeyError:
            raise KeyError(f"the day's market was not indexed by {clock!r}") from None

    def mark(self, asset: str, t: int) -> float:
        """USD value of one unit of ``asset`` at ``t`` (NaN when no quote precedes ``t``)."""
        if asset in PEGGED:
            return PEGGED[asset]
        series = self.marks.get(asset)
        if series is None:
            return float("nan")
        times, mids = series
        i = int(np.searchsorted(times, t, side="right")) - 1
        return float(mids[i]) if i >= 0 else (float(mids[0]) if mids.size else float("nan"))


def usd_marks(view: MarketView) -> dict[str, tuple[I64, F64]]:
    """Mid series per asset from its USD-quoted spot books, merged across venues in time order."""
    parts: dict[str, list[tuple[I64, F64]]] = {}
    for (_exchange, symbol), (lo, hi) in view.keys.items():
        if "/" not in symbol or ":" in symbol:
            continue
        base, quote = symbol.split("/", 1)
        if quote not in PEGGED:
            continue
        mid = (view.bid[lo:hi] + view.ask[lo:hi]) / 2.0
        ok = np.isfinite(mid)
        parts.setdefault(base, []).append((view.ts[lo:hi][ok], mid[ok]))
    marks: dict[str, tuple[I64, F64]] = {}
    for asset, series in parts.items():
        times = np.concatenate([s[0] for s in series])
        mids = np.concatenate([s[1] for s in series])
        order = np.argsort(times, kind="stable")
        marks[asset] = (times[order].astype(np.int64), mids[order].astype(np.float64))
    return marks


def market_symbols(symbols: Iterable[str], assets: Iterable[str]) -> list[str]:
    """``symbols`` plus the USD-quoted spot books that value ``assets`` (what a day's fills need to read).

    Examples
    --------
    >>> market_symbols(["ETH/BTC"], ["BTC", "USDT"])
    ['BTC/USD', 'BTC/USDC', 'BTC/USDT', 'ETH/BTC']
    """
    wanted = set(symbols)
    for asset in assets:
        if asset not in PEGGED:
            wanted |= {f"{asset}/{quote}" for quote in PEGGED}
    return sorted(wanted)


def in_windows(times: npt.ArrayLike, windows: Sequence[tuple[int, int]]) -> npt.NDArray[np.bool_]:
    """Mask of ``times`` inside any half-open window (windows may overlap and come in any order).

    Examples
    --------
    >>> in_windows([1, 5, 9, 12], [(8, 13), (0, 2), (10, 11)]).tolist()
    [True, False, True, True]
    """
    t = np.asarray(times, dtype=np.int64)
    if not windows:
        return np.zeros(t.shape[0], dtype=np.bool_)
    spans = sorted(windows)
    starts, ends = [spans[0][0]], [spans[0][1]]
    for a, b in spans[1:]:
        if a <= ends[-1]:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    idx = np.searchsorted(np.array(starts, dtype=np.int64), t, side="right") - 1
    return np.asarray((idx >= 0) & (t < np.array(ends, dtype=np.int64)[np.clip(idx, 0, None)]), dtype=np.bool_)


def load_day_market(
    store: Store,
    lo: int,
    hi: int,
    clock: str,
    symbols: Sequence[str] | None = None,
    other_clocks: Sequence[str] = (),
    windows: Sequence[tuple[int, int]] | None = None,
) -> DayMarket:
    """Quotes, option quotes (as quote rows) and funding received in ``[lo, hi)``, indexed with ``clock``.

    ``other_clocks`` adds views of the same rows on other clocks (read once, indexed twice).  ``windows``
    (half-open ``ts_recv`` ranges) keeps only the quotes received inside them before indexing: signals are sparse,
    so sorting and indexing only the minutes around them is far cheaper than the whole day.

    ``symbols`` restricts the read to those instruments (row groups of others are skipped); option quotes are
    read only when an option symbol is wanted.
    """
    tables = set(store.tables())
    frames = []
    wanted = list(symbols) if symbols is not None else None
    if "quotes" in tables:
        frames.append(_quote_columns(store.scan("quotes", start=lo, end=hi, symbol=wanted).collect()))
    options_wanted = wanted is None or any(s.count("-") >= 3 for s in wanted)
    if "option_quotes" in tables and options_wanted:
        options = store.scan("option_quotes", start=lo, end=hi, symbol=wanted).collect()
        if options.height:
            frames.append(_quote_columns(options).cast(schema.QUOTES.polars))  # type: ignore[arg-type]
    quotes = pl.concat(frames, how="vertical_relaxed") if frames else schema.empty(schema.QUOTES)
    if windows is not None:
        quotes = quotes.filter(pl.Series(in_windows(quotes.get_column("ts_recv").to_numpy(), windows)))
    funding = None
    if "funding" in tables:
        perps = [s for s in wanted if ":" in s and s.count("-") == 0] if wanted is not None else None
        if perps is None or perps:
            funding = store.scan("funding", start=lo, end=hi, symbol=perps).collect()
    view = MarketView.from_quotes(quotes, clock)
    kept = funding if funding is not None and funding.height else None
    others = {c: MarketView.from_quotes(quotes, c) for c in other_clocks if c != clock}
    return DayMarket(view, kept, usd_marks(view), clock, wanted, others)
