"""A restamped, paced replay (event time = send time, the latency benchmark's mode) over real sockets.

Texts are rendered ahead with event-time placeholders and stamped as they are framed; these tests hold that each
message's event time is its send time (after the start, before its receipt), that rows still go out when their
data time is due and not before (the stamps are spread as the data is, at the replay's speed), and that every
row arrives once, in order, with its own prices: on the compiled framing (Bybit, OKX, Binance USD-M, and Coinbase
and Kraken after their first, per-message snapshot) and on the per-message finish (Binance's combined stream).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest

from live import adapters
from live._ws import open_feed
from live.connector import DEFAULT_CHANNELS
from live.simulator import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

N_ROWS = 30
STEP_NS = 10_000_000  # a symbol's rows 10 ms apart; the two symbols' rows interleaved 5 ms apart
SPEED = 1.0


def _iso_ns(text: str) -> int:
    return int(np.datetime64(text.removesuffix("Z"), "ns").astype(np.int64))


# venue -> (market, symbols, path suffix, message -> (symbol, bid text, event time ns) or None, event-time resolution)
Extract = Callable[[Any], tuple[str, str, int] | None]


def _binance(m: Any) -> tuple[str, str, int] | None:
    d = m.get("data", m)
    return (d["s"], d["b"], d["E"] * 1_000_000) if d.get("e") == "bookTicker" else None


def _okx(m: Any) -> tuple[str, str, int] | None:
    if "data" not in m:
        return None
    d = m["data"][0]
    return m["arg"]["instId"], d["bids"][0][0], int(d["ts"]) * 1_000_000


def _bybit(m: Any) -> tuple[str, str, int] | None:
    return (m["data"]["s"], m["data"]["b"][0][0], m["ts"] * 1_000_000) if "topic" in m else None


def _coinbase(m: Any) -> tuple[str, str, int] | None:
    if m.get("channel") != "ticker":
        return None
    t = m["events"][0]["tickers"][0]
    return t["product_id"], t["best_bid"], _iso_ns(m["timestamp"])


def _kraken(m: Any) -> tuple[str, str, int] | None:
    if m.get("channel") != "ticker":
        return None
    d = m["data"][0]
    return d["symbol"], str(d["bid"]), _iso_ns(d["timestamp"])


CASES: dict[str, tuple[str | None, tuple[str, str], str, Extract, int]] = {
    "binance-linear": ("linear", ("BTC/USDT:USDT", "ETH/USDT:USDT"), "", _binance, 1_000_000),
    "binance-linear-combined": ("linear", ("BTC/USDT:USDT", "ETH/USDT:USDT"), "/stream", _binance, 1_000_000),
    "okx": (None, ("BTC/USDT", "ETH/USDT"), "", _okx, 1_000_000),
    "bybit": (None, ("BTC/USDT:USDT", "ETH/USDT:USDT"), "", _bybit, 1_000_000),
    "coinbase": (None, ("BTC/USD", "ETH/USD"), "", _coinbase, 1),
    "kraken": (None, ("BTC/USD", "ETH/USD"), "", _kraken, 1_000),
}


@pytest.mark.parametrize("case", list(CASES))
def test_restamped_paced_replay_stamps_send_times_and_keeps_the_pace(case: str) -> None:
    venue = case.split("-", maxsplit=1)[0]
    market, symbols, suffix, extract, resolution = CASES[case]
    adapter = adapters.get(venue, market)
    base = (time.time_ns() // 1_000_000) * 1_000_000
    frame = pl.concat(
        pl.DataFrame(
            {
                "ts_event": [base + i * STEP_NS + k * STEP_NS // 2 for i in range(N_ROWS)],
                "ts_recv": [base + i * STEP_NS + k * STEP_NS // 2 for i in range(N_ROWS)],
                "exchange": venue,
                "symbol": symbol,
                "bid": [100.0 + 10 * k + i * 0.25 for i in range(N_ROWS)],
                "bid_size": 1.5,
                "ask": [100.5 + 10 * k + i * 0.25 for i in range(N_ROWS)],
                "ask_size": 2.0,
            }
        )
        for k, symbol in enumerate(symbols)
    )
    vsyms = [adapter.venue_symbol(s) for s in symbols]

    async def main() -> tuple[int, list[tuple[str, str, int, int]]]:
        async with await serve(frame, speed=SPEED, autostart=False, restamp_event_time=True) as sim:
            conn = await open_feed(sim.url(venue, market) + suffix)
            if suffix:
                streams = [f"{v.lower()}@bookTicker" for v in vsyms]
                await conn.send(orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}).decode())
            else:
                await conn.send(adapter.subscribe_message(DEFAULT_CHANNELS[venue], vsyms).decode())
            await asyncio.sleep(0.2)
            started = time.time_ns()
            sim.start()
            got: list[tuple[str, str, int, int]] = []  # (symbol, bid, event time, receive time)
            while len(got) < 2 * N_ROWS:
                batch = await asyncio.wait_for(conn.recv_batch(), 10)
                now = time.time_ns()
                for raw in batch:
                    row = extract(orjson.loads(raw))
                    if row is not None:
                        got.append((*row, now))
            conn.transport.abort()
            return started, got

    started, got = asyncio.run(main())
    assert len(got) == 2 * N_ROWS
    for k, vsym in enumerate(vsyms):  # every row once, in order, with its prices
        bids = [float(bid) for sym, bid, _, _ in got if sym == vsym]
        assert bids == [100.0 + 10 * k + i * 0.25 for i in range(N_ROWS)]
    stamps = np.array([ts for _, _, ts, _ in got], np.int64)
    received = np.array([r for _, _, _, r in got], np.int64)
    assert (stamps >= started - resolution).all()  # stamped at send, not with the data's time
    assert (stamps <= received).all()
    # paced: the replay starts after ``started``, and row j (in data order, 5 ms apart) is not sent before its data
    # time is due, counted from then
    data_ns = np.arange(2 * N_ROWS, dtype=np.int64) * (STEP_NS // 2)
    early = started + data_ns / SPEED - resolution - stamps
    assert (early <= 0).all(), early / 1e6
