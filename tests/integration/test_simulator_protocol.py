"""The simulator speaks each venue's public protocol: acks, layouts, pings, sequence ids and checksums.

A raw ``websockets`` client plays the venue's documented client side; expectations are written from the venues'
documentation (field names and order, ack shapes), and checksums are recomputed here with ``zlib``.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from live.simulator import SimulatorHandle, format_number, run_simulator, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def quotes(venue: str, symbol: str, n: int = 5, step_ms: int = 1) -> pl.DataFrame:
    base = (time.time_ns() // 1_000_000) * 1_000_000
    return pl.DataFrame(
        {
            "ts_event": [base + i * step_ms * 1_000_000 for i in range(n)],
            "ts_recv": [base + i * step_ms * 1_000_000 for i in range(n)],
            "exchange": [venue] * n,
            "symbol": [symbol] * n,
            "bid": [100.0 + i for i in range(n)],
            "bid_size": [1.5] * n,
            "ask": [100.5 + i for i in range(n)],
            "ask_size": [2.25] * n,
        }
    )


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    if raw == "pong":
        return raw
    return orjson.loads(raw)


def run(frame: pl.DataFrame, body: Callable[[SimulatorHandle], Awaitable[None]], speed: float = 0) -> None:
    async def main() -> None:
        async with await serve(frame, speed=speed, autostart=False) as sim:
            await asyncio.wait_for(body(sim), 20)

    asyncio.run(main())


@given(st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_number_round_trips_without_exponent(value: float) -> None:
    text = format_number(value)
    assert float(text) == value
    assert "e" not in text
    assert "E" not in text


def test_binance_spot_and_usdm_layouts() -> None:
    frame = pl.concat([quotes("binance", "BTC/USDT"), quotes("binance", "BTC/USDT:USDT")])

    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("binance")) as spot, connect(sim.url("binance", "linear")) as usdm:
            await spot.send('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}')
            assert await recv_json(spot) == {"result": None, "id": 7}
            await usdm.send('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":8}')
            assert await recv_json(usdm) == {"result": None, "id": 8}
            await spot.send('{"method":"LIST_SUBSCRIPTIONS","id":9}')
            assert await recv_json(spot) == {"result": ["btcusdt@bookTicker"], "id": 9}
            sim.start()
            first = await recv_json(spot)
            assert list(first) == ["u", "s", "b", "B", "a", "A"]
            assert (first["s"], first["b"], first["B"], first["a"], first["A"]) == (
                "BTCUSDT",
                "100",
                "1.5",
                "100.5",
                "2.25",
            )
            fut = await recv_json(usdm)
            assert list(fut) == ["e", "u", "E", "T", "s", "b", "B", "a", "A"]
            assert fut["e"] == "bookTicker"
            linear = frame.filter(pl.col("symbol") == "BTC/USDT:USDT")
            assert fut["E"] == linear["ts_event"][0] // 1_000_000

    run(frame, body)


def test_okx_acks_ping_and_bbo() -> None:
    frame = quotes("okx", "BTC/USDT:USDT")

    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("okx")) as ws:
            await ws.send("ping")
            assert await recv_json(ws) == "pong"
            await ws.send('{"id":"42","op":"subscribe","args":[{"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"}]}')
            ack = await recv_json(ws)
            assert ack["id"] == "42"
            assert ack["event"] == "subscribe"
            assert ack["arg"] == {"channel": "bbo-tbt", "instId": "BTC-USDT-SWAP"}
            await ws.send('{"op":"subscribe","args":[{"channel":"nope","instId":"BTC-USDT-SWAP"}]}')
            assert (await recv_json(ws))["event"] == "error"
            sim.start()
            msg = await recv_json(ws)
            data = msg["data"][0]
            assert msg["arg"] == {"channel": "bbo-tbt", "instId": "BTC-USDT-SWAP"}
            assert data["bids"] == [["100", "1.5", "0", "1"]]
            assert data["asks"] == [["100.5", "2.25", "0", "1"]]
            assert data["ts"] == str(frame["ts_event"][0] // 1_000_000)

    run(frame, body)


def okx_crc(bids: list[list[str]], asks: list[list[str]]) -> int:
    parts = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    value = zlib.crc32(":".join(parts).encode())
    return value - 2**32 if value >= 2**31 else value


def test_okx_books_chain_checksum_and_faults() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("okx")) as ws:
            await ws.send('{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}')
            await recv_json(ws)
            await sim.inject("okx", "corrupt_checksum")  # hits the first message sent: the snapshot
            sim.start()
            book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
            last_seq = None
            verdicts = []  # (chained, checksum ok) per message
            for n in range(40):
                if n == 5:
                    await sim.inject("okx", "skip_seq")
                msg = await recv_json(ws, timeout=2.0)
                data = msg["data"][0]
                if msg["action"] == "snapshot":
                    assert data["prevSeqId"] == -1
                    book = {"bids": {}, "asks": {}}
                    chained = True
                else:
                    chained = data["prevSeqId"] == last_seq
                for side in ("bids", "asks"):
                    for price, size, *_ in data[side]:
                        if size == "0":
                            book[side].pop(price, None)
                        else:
                            book[side][price] = size
                bids = sorted(([p, s] for p, s in book["bids"].items()), key=lambda x: -float(x[0]))
                asks = sorted(([p, s] for p, s in book["asks"].items()), key=lambda x: float(x[0]))
                verdicts.append((chained, okx_crc(bids, asks) == data["checksum"]))
                last_seq = data["seqId"]
                if not chained:
                    break
            # the snapshot carries the corrupted checksum; every update until the skipped one chains and checks;
            # the update after the skip names a prevSeqId the client never saw
            assert verdicts[0] == (True, False)
            assert all(v == (True, True) for v in verdicts[1:-1])
            assert verdicts[-1][0] is False
            assert len(verdicts) >= 6

    run(quotes("okx", "BTC/USDT", n=40, step_ms=25), body, speed=1.0)


def test_bybit_ping_and_orderbook1() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("bybit")) as ws:
            await ws.send('{"req_id":"p1","op":"ping"}')
            pong = await recv_json(ws)
            assert (pong["op"], pong["ret_msg"], pong["req_id"], pong["success"]) == ("ping", "pong", "p1", True)
            await ws.send('{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}')
            ack = await recv_json(ws)
            assert (ack["op"], ack["success"]) == ("subscribe", True)
            sim.start()
            msgs = [await recv_json(ws) for _ in range(3)]
            assert [m["topic"] for m in msgs] == ["orderbook.1.BTCUSDT"] * 3
            assert [m["data"]["u"] for m in msgs] == [1, 2, 3]  # update ids are contiguous per topic
            assert msgs[0]["data"]["b"] == [["100", "1.5"]]

    run(quotes("bybit", "BTC/USDT:USDT"), body)


def test_coinbase_subscriptions_sequence_and_heartbeats() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("coinbase")) as ws:
            await ws.send('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"ticker"}')
            ack = await recv_json(ws)
            assert ack["channel"] == "subscriptions"
            assert ack["events"] == [{"subscriptions": {"ticker": ["BTC-USD"]}}]
            sim.start()
            msgs = [await recv_json(ws) for _ in range(3)]
            assert [m["events"][0]["type"] for m in msgs] == ["snapshot", "update", "update"]
            assert [m["sequence_num"] for m in msgs] == [1, 2, 3]
            ticker = msgs[0]["events"][0]["tickers"][0]
            assert (ticker["best_bid"], ticker["best_bid_quantity"], ticker["best_ask"]) == ("100", "1.5", "100.5")
            await ws.send('{"type":"subscribe","channel":"heartbeats"}')
            seen = set()
            for _ in range(10):
                msg = await recv_json(ws, timeout=3)
                seen.add(msg["channel"])
                if "heartbeats" in seen:
                    break
            assert "heartbeats" in seen

    run(quotes("coinbase", "BTC/USD"), body)


def test_kraken_status_ack_ping_heartbeat() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("kraken")) as ws:
            status = await recv_json(ws)
            assert status["channel"] == "status"
            assert status["data"][0]["system"] == "online"
            await ws.send('{"method":"ping","req_id":5}')
            pong = await recv_json(ws)
            assert (pong["method"], pong["req_id"]) == ("pong", 5)
            await ws.send('{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"]},"req_id":6}')
            ack = await recv_json(ws)
            assert ack["success"] is True
            assert ack["result"]["symbol"] == "BTC/USD"
            assert {"time_in", "time_out"} <= set(ack)
            sim.start()
            msg = await recv_json(ws)
            assert (msg["channel"], msg["type"]) == ("ticker", "snapshot")
            assert msg["data"][0]["bid"] == 100.0  # v2 sends JSON numbers
            kinds = {(await recv_json(ws, timeout=3)).get("channel") for _ in range(5)}
            assert "heartbeat" in kinds

    run(quotes("kraken", "BTC/USD"), body)


def test_deribit_jsonrpc_heartbeat_and_ticker() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("deribit")) as ws:
            await ws.send('{"jsonrpc":"2.0","id":1,"method":"public/test","params":{}}')
            assert (await recv_json(ws))["result"] == {"version": "1.2.26"}
            await ws.send('{"jsonrpc":"2.0","id":2,"method":"public/set_heartbeat","params":{"interval":1}}')
            assert (await recv_json(ws))["result"] == "ok"
            channel = "ticker.BTC-PERPETUAL.100ms"
            await ws.send(
                orjson.dumps(
                    {"jsonrpc": "2.0", "id": 3, "method": "public/subscribe", "params": {"channels": [channel]}}
                ).decode()
            )
            assert (await recv_json(ws))["result"] == [channel]
            sim.start()
            msg = await recv_json(ws)
            assert msg["method"] == "subscription"
            assert msg["params"]["channel"] == channel
            assert msg["params"]["data"]["best_bid_price"] == 100.0
            methods = set()
            for _ in range(10):
                methods.add((await recv_json(ws, timeout=3)).get("method"))
                if "heartbeat" in methods:
                    break
            assert "heartbeat" in methods

    run(quotes("deribit", "BTC/USD:BTC"), body)


def test_unknown_path_is_refused_and_control_channel_answers() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.base_url + "/ftx") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4004
        async with connect(sim.base_url + "/control") as ctl:
            await ctl.send('{"path":"/okx","fault":"skip_seq","count":2}')
            assert await recv_json(ctl) == {"ok": True}
            await ctl.send('{"path":"/okx","fault":"bogus"}')
            assert (await recv_json(ctl))["ok"] is False
            await ctl.send('{"op":"stats"}')
            stats = await recv_json(ctl)
            assert (
                stats["stats"]["/okx"]["faults"] == {"skip_seq": 1, "bogus": 0}
                or stats["stats"]["/okx"]["faults"]["skip_seq"] == 1
            )

    run(quotes("okx", "BTC/USDT"), body)


def test_binance_combined_stream_wraps_payloads() -> None:
    async def body(sim: SimulatorHandle) -> None:
        async with connect(sim.url("binance") + "/stream") as ws:
            await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}')
            assert await recv_json(ws) == {"result": None, "id": 1}
            sim.start()
            msg = await recv_json(ws)
            assert list(msg) == ["stream", "data"]
            assert msg["stream"] == "btcusdt@bookTicker"
            assert list(msg["data"]) == ["u", "s", "b", "B", "a", "A"]

    run(quotes("binance", "BTC/USDT"), body)


def test_run_simulator_blocks_for_the_duration_and_reports() -> None:
    ready: list[str] = []
    stats = run_simulator(
        quotes("okx", "BTC/USDT"), speed=0, loop=False, duration_s=0.3, on_ready=lambda sim: ready.append(sim.base_url)
    )
    assert ready[0].startswith("ws://127.0.0.1:")
    assert set(stats) == {"/okx"}
