"""Round trip over real loopback WebSockets: frames -> simulator -> connector -> adapter -> batcher -> store.

The quotes read back from the store must equal the quotes the simulator was fed, venue by venue, value for value
(prices and sizes bit for bit; event times wherever the venue's message carries one).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import polars as pl
import pytest

from arbkit import schema
from arbkit.data.store import Store
from live.connector import ConnectorConfig
from live.record import RecordSummary, record
from live.simulator import serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# venue -> (market path or None, symbols); one path per market where the venue's symbol does not say it
VENUES: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("binance", None): ("BTC/USDT", "ETH/USDT"),
    ("binance", "linear"): ("BTC/USDT:USDT",),
    ("okx", None): ("BTC/USDT", "ETH/USDT:USDT", "BTC/USD:BTC"),
    ("bybit", None): ("BTC/USDT:USDT", "SOL/USDT:USDT"),
    ("coinbase", None): ("BTC/USD", "ETH/USD"),
    ("kraken", None): ("BTC/USD", "ETH/USD"),
    ("deribit", None): ("BTC/USD:BTC", "ETH/USD:ETH"),
}
# Binance spot bookTicker carries no event time: the adapter uses the receive time, so ts_event is not compared.
NO_EVENT_TIME = {("binance", "BTC/USDT"), ("binance", "ETH/USDT")}


def make_quotes(n_per_symbol: int, seed: int) -> pl.DataFrame:
    """Quotes at ms resolution (every venue's event-time resolution or finer), awkward decimals included."""
    rng = random.Random(seed)
    base = (time.time_ns() // 1_000_000) * 1_000_000
    rows = []
    for (venue, _market), symbols in VENUES.items():
        for symbol in symbols:
            mid = rng.uniform(0.5, 70_000.0)
            for i in range(n_per_symbol):
                mid *= 1 + rng.uniform(-1e-4, 1e-4)
                spread = mid * rng.uniform(1e-5, 1e-3)
                bid = round(mid - spread, rng.choice([1, 2, 4, 8]))
                ask = round(bid + spread + 10 ** -rng.choice([1, 2, 4]), 8)
                ts = base + (i * 3 + rng.randrange(3)) * 1_000_000
                rows.append(
                    (
                        ts,
                        ts,
                        venue,
                        symbol,
                        bid,
                        round(rng.uniform(0, 50), rng.choice([0, 3, 8])),
                        ask,
                        rng.choice([0.00001, 1e-8, 12.5, 3.0, 123456.789]),
                    )
                )
    frame = pl.DataFrame(
        rows, schema=["ts_event", "ts_recv", "exchange", "symbol", "bid", "bid_size", "ask", "ask_size"], orient="row"
    )
    return schema.validate(frame, schema.QUOTES)


async def roundtrip(quotes: pl.DataFrame, root: Path) -> RecordSummary:
    sim = await serve(quotes, speed=0)  # autostart: each path replays 100 ms after its subscription
    async with sim:
        feeds = [
            ConnectorConfig(venue, sim.url(venue, market), symbols, market=market)
            for (venue, market), symbols in VENUES.items()
        ]
        stop = asyncio.Event()

        async def stop_when_replayed() -> None:
            await sim.wait_done(timeout=30)
            await asyncio.sleep(0.5)  # let the last messages cross the socket
            stop.set()

        waiter = asyncio.create_task(stop_when_replayed())
        summary = await record(feeds, root, stop_event=stop)
        await waiter
        return summary


def test_every_venue_round_trips_exactly(tmp_path: Path) -> None:
    quotes = make_quotes(40, seed=7)
    summary = asyncio.run(roundtrip(quotes, tmp_path / "store"))
    got = Store(tmp_path / "store").scan("quotes").collect()

    for name, stats in summary.connectors.items():
        assert stats.parse_errors == 0, (name, stats.last_error)
        assert stats.disconnects == 0, name
    assert summary.rows["quotes"] == quotes.height

    key = ["exchange", "symbol", "bid", "bid_size", "ask", "ask_size", "flags"]
    want = quotes.select(key).sort(key)
    have = got.select(key).sort(key)
    assert have.equals(want), "prices, sizes or flags changed on the way"

    timed = ["exchange", "symbol", "ts_event", "bid", "ask"]
    no_time = pl.DataFrame(list(NO_EVENT_TIME), schema=["exchange", "symbol"], orient="row")
    want_t = quotes.join(no_time, on=["exchange", "symbol"], how="anti").select(timed).sort(timed)
    have_t = got.join(no_time, on=["exchange", "symbol"], how="anti").select(timed).sort(timed)
    assert have_t.equals(want_t), "event times changed on the way"

    # the store's day layout is the one the backtester reads: one partition per exchange for today
    assert sorted(got.get_column("exchange").unique().to_list()) == sorted({v for v, _ in VENUES})
    assert (got.get_column("ts_recv") >= got.get_column("ts_event").min()).all()


BOOK_FEEDS: dict[tuple[str, str | None], tuple[str, str, int, bool]] = {
    # (venue, market) -> (symbol, channel, depth, keeper emits the levels)
    ("okx", None): ("BTC/USDT", "books5", 5, False),
    ("binance", "linear"): ("ETH/USDT:USDT", "depth10", 10, False),
    ("bybit", None): ("BTC/USDT:USDT", "orderbook.50", 10, True),
}


def make_book(n_snapshots: int, seed: int) -> pl.DataFrame:
    """Books of ``depth`` levels per side, bids descending and asks ascending from level 0."""
    rng = random.Random(seed)
    base = (time.time_ns() // 1_000_000) * 1_000_000
    rows = []
    for (venue, _market), (symbol, _channel, depth, _keeper) in BOOK_FEEDS.items():
        mid = rng.uniform(10, 50_000)
        for i in range(n_snapshots):
            ts = base + i * 2_000_000
            mid *= 1 + rng.uniform(-1e-4, 1e-4)
            tick = 0.5
            best_bid = round(mid / tick) * tick
            for level in range(depth):
                size_b = round(rng.uniform(0.001, 9), 3)
                size_a = round(rng.uniform(0.001, 9), 3)
                rows.append((ts, ts, venue, symbol, "bid", level, best_bid - level * tick, size_b))
                rows.append((ts, ts, venue, symbol, "ask", level, best_bid + (level + 1) * tick, size_a))
    frame = pl.DataFrame(
        rows,
        schema=["ts_event", "ts_recv", "exchange", "symbol", "side", "level", "price", "size"],
        orient="row",
    )
    return schema.validate(frame, schema.BOOK)


def test_book_levels_round_trip_through_partial_depth_channels(tmp_path: Path) -> None:
    book = make_book(25, seed=3)

    async def main() -> RecordSummary:
        async with await serve({"book": book}, speed=0) as sim:
            feeds = []
            for (venue, market), (symbol, channel, depth, keeper) in BOOK_FEEDS.items():
                url = sim.url(venue, market) + ("/stream" if venue == "binance" else "")
                feeds.append(
                    ConnectorConfig(
                        venue,
                        url,
                        (symbol,),
                        market=market,
                        channel=channel,
                        book_depth=depth,
                        emit_book_levels=keeper,
                    )
                )
            stop = asyncio.Event()

            async def stop_when_replayed() -> None:
                await sim.wait_done(timeout=30)
                await asyncio.sleep(0.5)
                stop.set()

            waiter = asyncio.create_task(stop_when_replayed())
            summary = await record(feeds, tmp_path / "store", stop_event=stop)
            await waiter
            return summary

    summary = asyncio.run(main())
    for name, stats in summary.connectors.items():
        assert stats.parse_errors == 0, (name, stats.last_error)
    got = Store(tmp_path / "store").scan("book").collect()
    key = ["exchange", "symbol", "ts_event", "side", "level", "price", "size"]
    assert got.select(key).sort(key).equals(book.select(key).sort(key))
    # every snapshot also gave exactly one top-of-book quote: the level-0 prices
    quotes = Store(tmp_path / "store").scan("quotes").collect()
    assert quotes.height == book.filter(pl.col("level") == 0).height // 2
    assert (quotes.get_column("flags") == 0).all()


def test_record_for_a_duration_against_a_looping_simulator(tmp_path: Path) -> None:
    quotes = make_quotes(5, seed=1).filter(pl.col("exchange") == "okx")

    async def main() -> RecordSummary:
        async with await serve(quotes, speed=0, loop=True) as sim:
            feed = ConnectorConfig("okx", sim.url("okx"), VENUES[("okx", None)])
            return await record([feed], tmp_path / "store", duration_s=0.6)

    summary = asyncio.run(main())
    assert 0.5 <= summary.duration_s < 5
    stored = Store(tmp_path / "store").scan("quotes").collect()
    assert stored.height == summary.rows["quotes"] > quotes.height  # looped: more rows than one pass
    assert summary.to_dict()["connectors"]["okx"]["parse_errors"] == 0
    with pytest.raises(ValueError, match="never stop"):
        asyncio.run(record([], tmp_path / "other"))


# Funding feeds: (venue, market path) -> (symbol, channel, FUNDING columns the venue's message cannot carry).
# Binance USD-M markPriceUpdate and Bybit tickers publish no predicted rate; OKX funding-rate publishes no mark or
# index price.  Everything else (event time and next funding time at ms, rate, prices) must come back exactly.
FUNDING_FEEDS: dict[tuple[str, str | None], tuple[str, str, tuple[str, ...]]] = {
    ("binance", "linear"): ("BTC/USDT:USDT", "markPrice", ("predicted_rate",)),
    ("okx", None): ("ETH/USDT:USDT", "funding-rate", ("mark_price", "index_price")),
    ("bybit", None): ("SOL/USDT:USDT", "tickers", ("predicted_rate",)),
}
# Deribit option tickers carry every OPTION_QUOTES column (the option's terms are read off its name).
OPTIONS = ("BTC/USD:BTC-301227-100000-C", "ETH/USD:ETH-301227-2500-P")


def make_funding(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    base = (time.time_ns() // 1_000_000) * 1_000_000
    rows = []
    for _venue_market, (symbol, _channel, _absent) in FUNDING_FEEDS.items():
        venue = _venue_market[0]
        mark = rng.uniform(1, 60_000)
        for i in range(n):
            ts = base + (i * 3 + rng.randrange(3)) * 1_000_000
            mark = round(mark * (1 + rng.uniform(-1e-4, 1e-4)), rng.choice([1, 2, 4]))
            index = round(mark * (1 + rng.uniform(-1e-4, 1e-4)), rng.choice([1, 2, 4]))
            rate = round(rng.uniform(-0.003, 0.003), rng.choice([6, 8]))
            predicted = round(rng.uniform(-0.003, 0.003), 8)
            next_time = (base // 3_600_000_000_000 + 8) * 3_600_000_000_000 + rng.randrange(1000) * 1_000_000
            rows.append((ts, ts, venue, symbol, rate, predicted, next_time, mark, index, 0))
    frame = pl.DataFrame(rows, schema=list(schema.FUNDING.polars), orient="row")
    return schema.validate(frame, schema.FUNDING)


def iv(rng: random.Random) -> float:
    """An implied vol as Deribit publishes it: percent with two decimals (51.23 -> 0.5123).

    IVs travel in percent, so a fraction is carried exactly when it is some float divided by 100; a value at
    full float precision (which no venue publishes) may come back 1 ulp away.
    """
    return round(rng.uniform(20.0, 150.0), 2) / 100.0


def make_options(n: int, seed: int) -> pl.DataFrame:
    from live import adapters

    deribit = adapters.get("deribit")
    rng = random.Random(seed)
    base = (time.time_ns() // 1_000_000) * 1_000_000
    rows = []
    for symbol in OPTIONS:
        underlying, expiry, strike, option_type = deribit.option_terms(symbol)
        for i in range(n):
            ts = base + (i * 3 + rng.randrange(3)) * 1_000_000
            bid = round(rng.uniform(0.001, 0.2), 4) if rng.random() > 0.1 else None  # absent sides too
            ask = round((bid or 0.001) + rng.uniform(0.0001, 0.01), 4) if rng.random() > 0.1 else None
            rows.append(
                (
                    ts,
                    ts,
                    "deribit",
                    symbol,
                    underlying,
                    expiry,
                    strike,
                    option_type,
                    bid,
                    round(rng.uniform(0.1, 50), 1) if bid is not None else None,
                    ask,
                    round(rng.uniform(0.1, 50), 1) if ask is not None else None,
                    iv(rng) if bid is not None else None,
                    iv(rng) if ask is not None else None,
                    round(rng.uniform(0.001, 0.2), 4),
                    iv(rng),
                    round(rng.uniform(1_000, 90_000), 2),
                    0,
                )
            )
    frame = pl.DataFrame(rows, schema=list(schema.OPTION_QUOTES.polars), orient="row")
    return schema.validate(frame, schema.OPTION_QUOTES)


def test_funding_and_option_quotes_round_trip(tmp_path: Path) -> None:
    funding = make_funding(30, seed=5)
    options = make_options(30, seed=6)

    async def main() -> RecordSummary:
        async with await serve({"funding": funding, "option_quotes": options}, speed=0) as sim:
            feeds = [
                ConnectorConfig(venue, sim.url(venue, market), (symbol,), market=market, channel=channel)
                for (venue, market), (symbol, channel, _absent) in FUNDING_FEEDS.items()
            ]
            feeds.append(ConnectorConfig("deribit", sim.url("deribit"), OPTIONS, channel="ticker"))
            stop = asyncio.Event()

            async def stop_when_replayed() -> None:
                await sim.wait_done(timeout=30)
                await asyncio.sleep(0.5)
                stop.set()

            waiter = asyncio.create_task(stop_when_replayed())
            summary = await record(feeds, tmp_path / "store", stop_event=stop)
            await waiter
            return summary

    summary = asyncio.run(main())
    for name, stats in summary.connectors.items():
        assert stats.parse_errors == 0, (name, stats.last_error)
    assert summary.rows["funding"] == funding.height
    assert summary.rows["option_quotes"] == options.height

    store = Store(tmp_path / "store")
    got_funding = store.scan("funding").collect()
    columns = [c for c in schema.FUNDING.polars if c != "ts_recv"]
    for (venue, _market), (symbol, _channel, absent) in FUNDING_FEEDS.items():
        mine = (pl.col("exchange") == venue) & (pl.col("symbol") == symbol)
        want = funding.filter(mine).with_columns([pl.lit(None, schema.FUNDING.polars[c]).alias(c) for c in absent])
        have = got_funding.filter(mine)
        assert have.select(absent).null_count().sum_horizontal().item() == have.height * len(absent)
        assert (
            have.select(columns)
            .sort(columns, nulls_last=True)
            .equals(want.select(columns).sort(columns, nulls_last=True))
        ), venue

    got_options = store.scan("option_quotes").collect()
    columns = [c for c in schema.OPTION_QUOTES.polars if c != "ts_recv"]
    assert (
        got_options.select(columns)
        .sort(columns, nulls_last=True)
        .equals(options.select(columns).sort(columns, nulls_last=True))
    ), "option quotes changed on the way"
