"""Live feed path end to end on loopback: simulator -> connector (adapter parse) -> micro-batcher.

Five venues (binance, okx, bybit, coinbase, kraken), each on its own WebSocket connection.  The simulator runs in a
separate process (this box has 2 cores: one serves, one receives).  Seven phases, each against a fresh server:

1. **baseline**: the ``websockets`` library's own client receiving (``async for message in ws``), no parsing, no
   batching, from a server that sends messages the simulator's encoders produced before the clock started,
   framed and written in bulk (so the client, not the server, is measured).  The connector used this client
   before :mod:`live._ws`; it is the same-run baseline the other phases are compared with;
2. **raw**: :func:`live._ws.open_feed` receiving the same with ``recv_batch`` (frame splitting and a ``bytes``
   per message, no parsing);
3. **raw offsets**: the same with ``recv_raw`` (frame splitting only: the socket read and payload offsets, what
   compiled parsers read);
4. **simulator alone**: the real simulator replaying as fast as possible to ``recv_raw`` readers, so the sending
   side is measured by itself; the simulator process also reports its CPU time, and messages per CPU-second is
   the rate it would sustain on a core of its own (on a loaded 2-core box the wall-clock rate mostly measures the
   wait for a CPU);
5. **client**: connectors parse every message into rows and the micro-batcher cuts batches, pre-encoded server;
6. **pipeline**: the same client against the real simulator replaying as fast as possible (end to end; on 2
   cores the simulator shares the machine);
7. **latency**: the simulator path at a paced rate, with the simulator stamping each message's event time at send
   (texts rendered ahead with event-time placeholders that the framing pass overwrites with the send time; the
   messages of one write share it; a paced simulator writes each path at most once per millisecond); latency =
   batch flush time - event time.  By default at the throughput target's pace (200k msg/s) on the receiving
   loop the live commands use (:func:`live.runtime.run`: microsecond timers, start-up heap frozen), then at the
   same pace on asyncio's default loop (whole-millisecond epoll timers) as the same-run baseline, then at half
   the pipeline's own maximum (phase 6) where that is higher; ``--rate R`` runs one pace.  Binance/OKX/Bybit
   carry ms event times and Kraken µs, so their latencies are over-estimated by up to 1 ms (truncation); Coinbase
   ns.  The p99 is printed per venue too.  The simulator's and the client's CPU per message are printed: where
   either side needs more than its share of the box at the pace asked, the latency measured is that side's
   backlog.  On a loaded 2-core box this phase measures mostly the wait for a CPU: compare it only with a
   baseline run in the same minutes.

Peak memory is the receiving process's peak RSS.  Run ``.venv/bin/python benchmarks/bench_live_feed.py``
(``--quick`` for a short run; ``--latency-only`` for phase 7 alone, ``--rate 100000`` for one pace).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import polars as pl

from live.runtime import run

VENUES: dict[str, tuple[str, ...]] = {
    "binance": ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"),
    "okx": ("BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"),
    "bybit": ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"),
    "coinbase": ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"),
    "kraken": ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"),
}
# Binance USD-M (its bookTicker carries event times; spot's does not, so spot could not be timed).
MARKETS: dict[str, str | None] = {"binance": "linear", "okx": None, "bybit": None, "coinbase": None, "kraken": None}
STEP_NS = 100_000  # 0.1 ms between a symbol's updates in the data
VENUE_ENUM = pl.Enum(list(VENUES))
TARGET_RATE = 200_000.0  # the sustained-throughput target; latency is measured at this pace by default


def make_frame(n_per_symbol: int) -> pl.DataFrame:
    rng = np.random.default_rng(11)
    base = (time.time_ns() // 1_000_000) * 1_000_000
    parts = []
    for venue, symbols in VENUES.items():
        for k, symbol in enumerate(symbols):
            mid = 100.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 1e-4, n_per_symbol)))
            bid = np.round(mid * (1 - 1e-4), 2)
            ts = base + np.arange(n_per_symbol, dtype=np.int64) * STEP_NS
            parts.append(
                pl.DataFrame(
                    {
                        "ts_event": ts,
                        "ts_recv": ts,
                        "exchange": venue,
                        "symbol": symbol,
                        "bid": bid,
                        "bid_size": np.round(rng.uniform(0.001, 5, n_per_symbol), 4),
                        "ask": np.round(bid + 0.01, 2),  # on the tick grid, as a venue quotes
                        "ask_size": np.round(rng.uniform(0.001, 5, n_per_symbol), 4),
                    }
                )
            )
    return pl.concat(parts)


def path_of(venue: str) -> str:
    market = MARKETS[venue]
    return f"/{venue}" if market is None else f"/{venue}/{market}"


def _simulator_process(conn: Connection, n_per_symbol: int, speed: float, restamp: bool) -> None:
    from live.simulator import serve

    async def main() -> None:
        frame = make_frame(n_per_symbol)
        sim = await serve(frame, speed=speed, autostart=False, restamp_event_time=restamp, ping_interval=None)
        conn.send((sim.port, {p: sim.symbols(p) for p in sim.paths}))
        cpu = time.process_time()  # from here on: subscriptions (negligible) and the replay
        await sim.wait_done(timeout=600)
        waited = sum(stats.waited_s for stats in sim.stats().values())  # blocked on slow readers (summed over paths)
        conn.send((time.process_time() - cpu, time.time(), waited))  # replay CPU, when the last message went out
        await asyncio.to_thread(conn.poll, 600)  # until the parent has received everything
        await sim.close()

    run(main())


def _blast_process(conn: Connection, n_per_symbol: int, speed: float, restamp: bool) -> None:
    """A minimal server speaking the same protocols from messages encoded before the clock starts.

    The simulator encodes every message while replaying, so on 2 cores it, not the client, limits the raw rate.
    This server answers the subscribe request with the venue's ack (the simulator's encoders), then sends its
    pre-encoded messages as fast as the socket takes them, so the client side is what gets measured.
    """
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve

    from live import adapters
    from live.simulator import ENCODERS, SessionState, Tick
    from live.simulator._server import _frames

    async def main() -> None:
        frame = make_frame(n_per_symbol)
        start = asyncio.Event()
        payloads: dict[str, tuple[Any, list[bytes]]] = {}  # path -> (encoder, framed messages)
        symbols: dict[str, dict[str, str]] = {}
        for venue, unified in VENUES.items():
            adapter = adapters.get(venue, MARKETS[venue])
            encoder = ENCODERS[venue](adapter.market)
            state = SessionState(sequence=1)  # the subscribe ack goes first with Coinbase's sequence_num 0
            venue_symbols = {s: adapter.venue_symbol(s) for s in unified}
            part = frame.filter(pl.col("exchange") == venue).sort("ts_event", maintain_order=True)
            counters: dict[str, int] = {}
            messages = []
            for ts, _, _, symbol, bid, bid_size, ask, ask_size in part.rows():
                counters[symbol] = counters.get(symbol, 0) + 1
                tick = Tick(ts, symbol, venue_symbols[symbol], bid, bid_size, ask, ask_size, counters[symbol])
                encoder.prepare(tick)
                messages.append(str(encoder.encode(state, encoder.default_channel, tick)).encode())
            payloads[path_of(venue)] = (encoder, [_frames([m.decode()]) for m in messages])
            symbols[path_of(venue)] = venue_symbols

        async def handler(ws: ServerConnection) -> None:
            path = ws.request.path if ws.request is not None else ""
            if path == "/control":
                await ws.recv()
                start.set()
                await ws.send('{"ok":true}')
                return
            encoder, frames = payloads[path]
            request = await ws.recv()
            for reply in encoder.on_request(SessionState(), request, time.time_ns()).messages:
                await ws.send(reply)
            await start.wait()
            for i in range(0, len(frames), 256):  # framed before the clock started; written in bulk
                ws.transport.write(b"".join(frames[i : i + 256]))
                await ws.drain()
            await ws.wait_closed()

        async with ws_serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            conn.send((port, symbols))
            await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.Event().wait(), 300)  # the parent terminates this process

    run(main())


class Simulator:
    """A simulator (or the pre-encoded blast server) in a child process for one phase."""

    def __init__(self, n_per_symbol: int, speed: float = 0.0, restamp: bool = False, *, blast: bool = False) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        target = _blast_process if blast else _simulator_process
        self.proc = ctx.Process(target=target, args=(child, n_per_symbol, speed, restamp), daemon=True)
        self.proc.start()
        self.conn = parent
        if not parent.poll(120):
            raise RuntimeError("simulator did not start")
        self.port, self.paths = parent.recv()
        self.base = f"ws://127.0.0.1:{self.port}"
        self.blast = blast
        self.cpu_s = float("nan")  # the simulator process's CPU seconds for its replay (read at close)
        self.done_at = float("nan")  # wall-clock time (time.time) the simulator had sent everything
        self.waited_s = float("nan")  # seconds its paths waited for readers to drain their sockets

    async def start(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.base + "/control") as ctl:
            await ctl.send('{"op":"start"}')
            await ctl.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            if not self.blast and self.conn.poll(10):
                self.cpu_s, self.done_at, self.waited_s = self.conn.recv()
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


async def raw_baseline(n_per_symbol: int, blast: bool, *, library: bool = True, raw: bool = False) -> dict[str, float]:
    """Receive rate without parsing: the ``websockets`` client (``library``) or :func:`live._ws.open_feed`
    (``recv_raw`` when ``raw``, else ``recv_batch``); ``rate`` msg/s and the simulator's ``sim_cpu_s``."""
    from websockets.asyncio.client import connect

    from live import adapters
    from live._ws import open_feed
    from live.connector import DEFAULT_CHANNELS

    sim = Simulator(n_per_symbol, blast=blast)
    total = sum(len(s) for s in VENUES.values()) * n_per_symbol
    counts = {"n": 0}
    first: list[float] = []
    last = [0.0]
    done = asyncio.Event()

    async def reader(venue: str) -> None:
        adapter = adapters.get(venue, MARKETS[venue])
        symbols = sim.paths[path_of(venue)]
        request = adapter.subscribe_message(DEFAULT_CHANNELS[venue], list(symbols.values())).decode()
        if not library:
            conn = await open_feed(sim.base + path_of(venue), ping_interval=None)
            await conn.send(request)
            ready.append(venue)
            while True:
                batch = await (conn.recv_raw() if raw else conn.recv_batch())
                if not first:
                    first.append(time.perf_counter())
                counts["n"] += len(batch)
                if counts["n"] >= total:
                    last[0] = time.perf_counter()
                    done.set()
                    conn.transport.abort()
                    return
        async with connect(sim.base + path_of(venue), max_size=2**20, compression=None, max_queue=4096) as ws:
            await ws.send(request)
            ready.append(venue)
            async for _ in ws:
                if not first:
                    first.append(time.perf_counter())
                counts["n"] += 1
                if counts["n"] >= total:  # (a few Kraken heartbeats may count too: negligible)
                    last[0] = time.perf_counter()
                    done.set()
                    return

    ready: list[str] = []
    tasks = [asyncio.create_task(reader(v)) for v in VENUES]
    while len(ready) < len(VENUES):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # acks and greetings are in: count market data only
    counts["n"] = 0
    first.clear()
    await sim.start()
    await asyncio.wait_for(done.wait(), 300)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    sim.close()
    return {"rate": total / (last[0] - first[0]), "sim_cpu_s": sim.cpu_s, "messages": total}


async def pipeline(
    n_per_symbol: int, speed: float, restamp: bool, batch_rows: int, delay_ms: float, *, blast: bool = False
) -> dict[str, Any]:
    from live.batcher import BatcherConfig, FeedItem, MicroBatcher, drive
    from live.connector import Connector, ConnectorConfig

    sim = Simulator(n_per_symbol, speed=speed, restamp=restamp, blast=blast)
    total = sum(len(s) for s in VENUES.values()) * n_per_symbol
    queue: asyncio.Queue[FeedItem] = asyncio.Queue()
    connectors = [
        Connector(
            ConnectorConfig(
                venue,
                sim.base + path_of(venue),
                tuple(VENUES[venue]),
                market=MARKETS[venue],
                ping_interval_s=None,
                stale_after_s=60,
            ),
            queue,
        )
        for venue in VENUES
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in connectors]
    for c in connectors:
        await c.wait_subscribed(30)
    batcher = MicroBatcher(BatcherConfig(max_rows=batch_rows, max_delay_ns=int(delay_ms * 1e6), max_pending=1 << 30))
    latencies: list[np.ndarray] = []
    venues: list[np.ndarray] = []
    pl.Series(list(VENUES)).cast(VENUE_ENUM)  # the first cast sets Polars up (~40 ms): not inside the clock
    state = {"rows": 0, "t_last": 0.0}
    done = asyncio.Event()

    async def on_batch(batch: Any) -> None:
        now = time.time_ns()
        quotes = batch.quotes
        if restamp and quotes.height:
            latencies.append((now - quotes.get_column("ts_event").to_numpy()) / 1e6)
            # venue codes (uint8): keeping the string column would keep each batch's whole buffer alive
            venues.append(quotes.get_column("exchange").cast(VENUE_ENUM).to_physical().to_numpy())
        state["rows"] += quotes.height
        state["t_last"] = time.perf_counter()
        if state["rows"] >= total:
            done.set()

    drv_stop = asyncio.Event()
    driver = asyncio.create_task(drive(queue, batcher, on_batch, stop=drv_stop))
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    wall0 = time.time()
    cpu0 = time.process_time()
    await sim.start()
    await asyncio.wait_for(done.wait(), 600)
    elapsed = state["t_last"] - t0
    client_cpu_s = time.process_time() - cpu0
    drv_stop.set()
    stop.set()
    await driver
    await asyncio.gather(*tasks)
    sim.close()
    lat = np.concatenate(latencies) if latencies else np.array([np.nan])
    venue_of = np.concatenate(venues) if venues else np.array([], dtype=np.uint8)
    by_venue = {v: float(np.percentile(lat[venue_of == k], 99)) for k, v in enumerate(VENUES) if (venue_of == k).any()}
    return {
        "p99_by_venue": by_venue,
        "sim_cpu_s": sim.cpu_s,
        "client_cpu_s": client_cpu_s,
        "sim_done_s": sim.done_at - wall0,  # when the simulator had sent its last message, from the start
        "sim_waited_s": sim.waited_s,
        "elapsed_s": elapsed,  # when the batcher flushed the last row, from the start
        "messages": total,
        "rate": total / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(np.max(lat)),
        "batches": batcher.stats.batches,
        "parse_errors": sum(c.stats.parse_errors for c in connectors),
        "coalesced": batcher.stats.coalesced_total,
        "rows": state["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (about 20 s)")
    parser.add_argument("--messages", type=int, default=None, help="messages per phase (default 200k, quick 40k)")
    parser.add_argument("--rate", type=float, default=None, help="paced rate for the latency phase (msg/s)")
    parser.add_argument("--latency-only", action="store_true", help="only the latency phase")
    args = parser.parse_args()
    n_symbols = sum(len(s) for s in VENUES.values())
    messages = args.messages or (40_000 if args.quick else 200_000)
    n_per_symbol = max(1, messages // n_symbols)

    print(f"machine   {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (figures scale with it)")
    pipeline_rate = float("nan") if args.latency_only else throughput_phases(n_per_symbol)
    seconds = 2 if args.quick else 5
    if args.rate is not None:
        latency_phase(args.rate, messages, seconds)
    else:
        # at the throughput target's pace, on asyncio's default loop (whole-ms timers) as the same-run baseline
        latency_phase(TARGET_RATE, messages, seconds)
        latency_phase(TARGET_RATE, messages, seconds, baseline_loop=True)
        if 0.5 * pipeline_rate > TARGET_RATE:  # and under more load: half the pipeline's own maximum
            latency_phase(0.5 * pipeline_rate, messages, seconds)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory    peak RSS of the receiving process: {peak_mb:.0f} MiB")
    print(f"machine   load average {os.getloadavg()[0]:.1f} at end")
    print("targets   >= 200,000 msg/s sustained; p99 < 5 ms")


def latency_phase(rate: float, messages: int, seconds: float, *, baseline_loop: bool = False) -> None:
    """Phase 7 at ``rate`` msg/s for ``seconds`` of data (at least ``messages``), printed."""
    n_symbols = sum(len(s) for s in VENUES.values())
    data_rate = n_symbols * 1e9 / STEP_NS  # messages per second of data time
    n_msgs = max(n_symbols, int(max(messages, rate * seconds)))
    runner = asyncio.run if baseline_loop else run
    lat = runner(pipeline(max(1, n_msgs // n_symbols), rate / data_rate, True, 1024, 1.0))
    loop = "asyncio's default loop (baseline)" if baseline_loop else "live.runtime loop"
    print(
        f"latency   paced at {rate:,.0f} msg/s on {loop} (batch: 1024 rows or 1 ms): send->flush "
        f"p50 {lat['p50_ms']:.2f} ms  p99 {lat['p99_ms']:.2f} ms  max {lat['max_ms']:.2f} ms  "
        f"(sustained {lat['rate']:,.0f} msg/s)"
    )
    by_venue = "  ".join(f"{v} {p99:.2f}" for v, p99 in lat["p99_by_venue"].items())
    print(f"          p99 by venue (ms; binance/okx/bybit stamp whole ms, so up to 1 ms too high): {by_venue}")
    print(
        f"          CPU per message: simulator {lat['sim_cpu_s'] / lat['messages'] * 1e6:.2f} us "
        f"({lat['messages'] / lat['sim_cpu_s']:,.0f} msg per CPU-second), client (connectors + batcher) "
        f"{lat['client_cpu_s'] / lat['messages'] * 1e6:.2f} us ({lat['messages'] / lat['client_cpu_s']:,.0f} msg per "
        f"CPU-second); {lat['messages']:,} msgs, parse errors {lat['parse_errors']}"
    )
    print(
        f"          pace: the data asks {lat['messages'] / rate:.2f} s; the simulator sent its last message at "
        f"{lat['sim_done_s']:.2f} s (after waiting {lat['sim_waited_s']:.2f} s, summed over paths, for readers to "
        f"drain sockets above 1 MiB), the batcher flushed the last row at {lat['elapsed_s']:.2f} s"
    )


def throughput_phases(n_per_symbol: int) -> float:
    """Phases 1-6, printed; returns the pipeline's rate (the latency phase's default pace is half of it)."""
    raw = run(raw_baseline(n_per_symbol, blast=True))["rate"]
    print(f"baseline  websockets library client receive (pre-encoded server), 5 conns: {raw:>9,.0f} msg/s")
    own = run(raw_baseline(n_per_symbol, blast=True, library=False))["rate"]
    print(
        f"raw       live._ws recv_batch, frames split in bulk (same server):         {own:>9,.0f} msg/s  "
        f"x{own / raw:.2f} baseline"
    )
    offsets = run(raw_baseline(n_per_symbol, blast=True, library=False, raw=True))["rate"]
    print(
        f"raw offs  live._ws recv_raw, socket read + payload offsets (same server):  {offsets:>9,.0f} msg/s  "
        f"x{offsets / raw:.2f} baseline"
    )
    alone = run(raw_baseline(n_per_symbol, blast=False, library=False, raw=True))
    print(
        f"sim alone simulator -> recv_raw readers, as fast as possible:             {alone['rate']:>9,.0f} msg/s  "
        f"x{alone['rate'] / raw:.2f} baseline (simulator CPU {alone['sim_cpu_s']:.2f} s: "
        f"{alone['messages'] / alone['sim_cpu_s']:,.0f} msg per CPU-second)"
    )
    client = run(pipeline(n_per_symbol, 0.0, False, 4096, 5.0, blast=True))
    print(
        f"client    connector+adapter+batcher (pre-encoded server):                  {client['rate']:>9,.0f} msg/s  "
        f"x{client['rate'] / raw:.2f} baseline"
    )
    through = run(pipeline(n_per_symbol, 0.0, False, 4096, 5.0))
    print(
        f"pipeline  simulator -> connector+adapter+batcher, as fast as possible:    {through['rate']:>9,.0f} msg/s  "
        f"x{through['rate'] / raw:.2f} baseline ({through['messages']:,} msgs, {through['batches']} batches, "
        f"parse errors {through['parse_errors']}, rows {through['rows']:,}, simulator CPU {through['sim_cpu_s']:.2f} s)"
    )
    return float(through["rate"])


if __name__ == "__main__":
    main()
