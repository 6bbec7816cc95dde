"""The exchange simulator's WebSocket server: replays quotes per venue path, with fault injection.

Two replay paths, one output.  While every subscription on a path is to a top-of-book channel that needs no
book state (:attr:`Encoder.rendered_channels`: Binance ``bookTicker``, OKX ``bbo-tbt``/``tickers``, Bybit
``orderbook.1``, Coinbase and Kraken ``ticker``, Deribit ``ticker``/``quote``), quote rows go out on the *fast
path*: the encoder renders a chunk of rows per channel at once with Polars string expressions
(:meth:`Encoder.render_texts`, about 1 µs per message instead of ~25 µs for a tick object, ``repr`` formatting
and an f-string per message), packs them from the column's Arrow buffers into one byte buffer per chunk, and
frames a run of rows for each session in one compiled pass (:mod:`live.simulator._framing`: the session's
subscribed symbols picked by code, Coinbase's per-connection ``sequence_num`` written in place of a mark; about
0.2 µs per message in all, where routing, ``emit`` and framing cost ~2 µs in Python).  What the kernel does not
do (a first Coinbase/Kraken message per symbol, which is the per-message snapshot; Binance's combined-stream
wrapper) goes through :meth:`Encoder.emit` per message for that session only.  Once a path has a subscriber on
a book channel (checksummed or diff books), rows go message by message through :meth:`Encoder.prepare` and
:meth:`Encoder.encode` as before; the book state the fast path skipped is replayed first (:meth:`_Feed.catch_up`),
as it is before a REST depth snapshot or a late joiner's snapshot.

Restamping (event time = send time, for latency benchmarks) keeps the fast path: the texts are rendered ahead
with each event-time field as a fixed-width placeholder (``Encoder.render_texts(..., stamped=True)``), and the
compiled framing writes the send time's texts over them (:func:`event_stamp`, :class:`Stamp`).  The clock is read
once per run of rows framed together, so the messages of a run share one event time: the time its frames were
built, a few microseconds before the write that sends them.  A paced replay (``speed > 0``) frames only rows whose
data time is due, so a run is what became due since the last turn.  Unit tests hold the rendered texts equal to
:meth:`Encoder.encode`'s (stamped ones given the same event time) and the compiled frames equal to per-message
framing, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from arbkit import schema
from arbkit.instruments import default_registry
from live.runtime import run
from live.simulator._encoders import (
    ENCODERS,
    BookSnapshot,
    Encoder,
    FundingTick,
    OptionTick,
    SessionState,
    Tick,
    event_stamp,
    format_number,
    with_number_texts,
)
from live.simulator._framing import Packed, Stamp, frames, pack_columns

__all__ = ["FAULTS", "FeedStats", "SimulatorHandle", "run_simulator", "serve"]

_log = logging.getLogger("live.simulator")
_HIGH_WATER = 1 << 20  # bytes queued on a socket before the replay waits for the client to read
_RUN = 256  # most quote rows sent per event-loop turn (faults and control requests act between turns)
#: A paced replay wakes at most once per this many seconds per path and sends what became due since, together: one
#: write per path per millisecond, whatever the event loop's timer resolution (epoll's is 1 ms; live.runtime's loop
#: keeps microseconds, which would otherwise turn the replay into one write per row).
_PACE_S = 0.001
_CHUNK = 4096  # quote rows rendered per channel at once on the fast path

#: Faults :meth:`SimulatorHandle.inject` (and the ``/control`` path) understand.
FAULTS: tuple[str, ...] = ("drop", "skip_seq", "corrupt_checksum", "delay", "malformed", "stall", "resume", "shutdown")

Source = str | Path | pl.DataFrame | Mapping[str, pl.DataFrame]


@dataclass(slots=True)
class FeedStats:
    """Counters of one venue path."""

    messages: int = 0  # market-data messages sent (all sessions)
    ticks: int = 0  # quote rows replayed
    books: int = 0  # book snapshots replayed
    funding: int = 0  # funding rows replayed
    options: int = 0  # option quotes replayed
    skipped: int = 0  # ticks consumed without sending (skip_seq)
    corrupted: int = 0  # book messages sent with a wrong checksum
    malformed: int = 0
    connections: int = 0
    requests: int = 0
    rest_snapshots: int = 0  # REST depth snapshots served (Binance diff-stream sync)
    drops: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    waits: int = 0  # times the replay waited for a client to read (its socket buffer above the high-water mark)
    waited_s: float = 0.0  # seconds of those waits: the replay's lateness that the clients caused


@dataclass(eq=False, slots=True)
class _Session:
    ws: ServerConnection
    state: SessionState
    last_heartbeat: float = 0.0
    closing: bool = False
    out: list[str] = field(default_factory=list)  # replayed messages encoded, not yet framed
    framed: list[bytes | memoryview] = field(default_factory=list)  # frames not yet written, in order
    # the fast path's routing, valid while the feed's subscriptions are at ``version``: which (rendered channel,
    # venue symbol code) pairs this session takes (None: none), and whether all of them had their snapshot
    version: int = -1
    wanted: npt.NDArray[np.uint8] | None = None
    synced_version: int = -1

    def frame_texts(self) -> None:
        """Frame the encoded messages waiting in ``out`` behind what is already framed."""
        if self.out:
            self.framed.append(frames(self.out))
            self.out = []


def _frames(messages: list[str]) -> bytes:
    """Unmasked, unfragmented RFC 6455 text frames of ``messages``, back to back (server-to-client framing)."""
    return frames(messages)


async def _write_out(feed: _Feed) -> None:
    """Write every session's framed replay messages in one ``transport.write`` each, then wait while the
    socket's buffer is above its high-water mark.

    The replay loop encodes messages between event-loop turns and this writes them before the loop awaits
    anything, so they go out in order with whatever else the connection sends (acks, heartbeats, fault
    messages).  The frames are the ones ``websockets`` itself would send (server frames are not masked, no
    extension is negotiated); the library still owns the connection state, so nothing is written once it is
    closing.
    """
    if not feed.buffered:
        return
    feed.buffered = 0
    blocked = []
    for session in list(feed.sessions):
        session.frame_texts()
        framed = session.framed
        if not framed:
            continue
        session.framed = []
        ws = session.ws
        if ws.protocol.state is not State.OPEN:
            if ws.protocol.state is State.CLOSED:
                feed.remove(session)
            continue
        # a fresh buffer per write: the transport may keep a view of it until sent
        ws.transport.write(framed[0] if len(framed) == 1 else b"".join(framed))
        if ws.transport.get_write_buffer_size() > _HIGH_WATER:
            blocked.append(ws)
    if blocked:
        start = time.monotonic()
        for ws in blocked:
            with contextlib.suppress(Exception):
                await ws.drain()
        feed.stats.waits += 1
        feed.stats.waited_s += time.monotonic() - start


def _market_of(venue: str, symbol: str) -> tuple[str | None, str, str]:
    """(path market or None for the default path, adapter market, venue symbol) of a unified symbol."""
    try:
        from live import adapters

        default = adapters.get(venue)
        candidates = [None, *[m for m in type(default).markets if m != default.market]]
        for market in candidates:
            adapter = adapters.get(venue, market)
            try:
                return (None if market is None else adapter.market), adapter.market, adapter.venue_symbol(symbol)
            except adapters.ParseError:
                continue
    except (ImportError, ValueError, AttributeError, NotImplementedError):
        pass
    return None, "default", default_registry().get(venue, symbol).venue_symbol


class _Feed:
    """One venue path (venue + market): its replay data, sessions, subscriptions and fault switches."""

    def __init__(
        self,
        venue: str,
        market: str | None,
        wire_market: str,
        frame: pl.DataFrame,
        venue_symbols: dict[str, str],
        book: pl.DataFrame | None = None,
        funding: pl.DataFrame | None = None,
        options: pl.DataFrame | None = None,
    ) -> None:
        self.venue = venue
        self.market = market
        self.encoder: Encoder = ENCODERS[venue](wire_market)
        self.path = f"/{venue}" if market is None else f"/{venue}/{market}"
        self.stats = FeedStats()
        self.sessions: set[_Session] = set()
        self.index: dict[tuple[str, str], set[_Session]] = {}
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.venue_symbols = venue_symbols
        cols = frame.select("ts_event", "symbol", "bid", "bid_size", "ask", "ask_size", "seq").with_columns(
            venue_symbol=pl.col("symbol").replace_strict(venue_symbols, return_dtype=pl.String),
            # a row without a seq gets its symbol's running count of such rows, continued on every loop pass
            seq_rank=pl.col("seq").is_null().cum_sum().over("symbol").cast(pl.Int64),
            seq_missing=pl.col("seq").is_null().sum().over("symbol").cast(pl.Int64),
        )
        self.ts: list[int] = cols.get_column("ts_event").to_list()
        self.symbols: list[str] = cols.get_column("symbol").to_list()
        self.vsyms: list[str] = cols.get_column("venue_symbol").to_list()
        self.bids: list[float | None] = cols.get_column("bid").to_list()
        self.bid_sizes: list[float | None] = cols.get_column("bid_size").to_list()
        self.asks: list[float | None] = cols.get_column("ask").to_list()
        self.ask_sizes: list[float | None] = cols.get_column("ask_size").to_list()
        self.seqs: list[int | None] = cols.get_column("seq").to_list()
        self.seq_rank: list[int] = cols.get_column("seq_rank").to_list()
        self.seq_missing: dict[str, int] = dict(cols.select("symbol", "seq_missing").unique().rows())
        self.render_rows = with_number_texts(cols)  # the fast path's input (Encoder.render)
        self.first_lap_rows = self._with_seq(self.render_rows, 0)  # seq filled in once for the first pass
        texts = self.render_rows.select(pl.col("^.*_text$").fill_null(""))
        self.texts: list[tuple[str, str, str, str]] = texts.rows()  # Tick texts per quote row
        self.rows_of: dict[str, list[int]] = {}  # quote rows per venue symbol, for late joiners' snapshots
        for i, vsym in enumerate(self.vsyms):
            self.rows_of.setdefault(vsym, []).append(i)
        self.code_of = {vsym: k for k, vsym in enumerate(self.rows_of)}  # venue symbol -> small code
        self.codes = np.fromiter((self.code_of[v] for v in self.vsyms), np.int32, len(self.vsyms))
        self.books = _book_snapshots(book, venue_symbols) if book is not None else []
        self.funding = _funding_ticks(funding, venue_symbols) if funding is not None else []
        self.options = _option_ticks(options, venue_symbols) if options is not None else []
        # one timeline: (event time, 0 = quote / 1 = book snapshot / 2 = funding / 3 = option quote, index),
        # quotes first on ties
        timeline = [(t, 0, i) for i, t in enumerate(self.ts)] + [(b.ts_event, 1, i) for i, b in enumerate(self.books)]
        timeline += [(f.ts_event, 2, i) for i, f in enumerate(self.funding)]
        timeline += [(o.ts_event, 3, i) for i, o in enumerate(self.options)]
        timeline.sort()
        self.timeline = timeline
        # for finding a run's end without a loop over rows: for each entry the first entry at or after it that is
        # not a quote, and the event times (bisected)
        kinds = np.fromiter((kind for _, kind, _ in timeline), np.int64, len(timeline))
        not_quote = np.append(np.flatnonzero(kinds), len(timeline))
        self.next_other: list[int] = not_quote[np.searchsorted(not_quote, np.arange(len(timeline) + 1))].tolist()
        self.timeline_times = [t for t, _, _ in timeline]  # bisected once per paced run (no NumPy call)
        self.span = (timeline[-1][0] - timeline[0][0] + 1_000_000) if timeline else 0  # event-time shift per lap
        self.restamp = False
        self.buffered = 0  # messages encoded into the sessions' ``out`` lists since the last write
        # Replay position: quote rows [0, next_row) of pass ``lap`` are sent.  The fast path renders stateless
        # channels and skips encoder.prepare(); ``prepared`` is how far the encoder's book state has been kept,
        # and catch_up() replays the rest before anything that reads that state.
        self.lap = 0
        self.next_row = 0
        self.prepared = (0, 0)
        self.fast = True  # no subscription to a channel that needs the encoder's book state
        self.active: tuple[str, ...] = ()  # rendered channels with subscribers
        self.cache: dict[str, tuple[tuple[int, int], pl.Series]] = {}  # channel -> ((lap, chunk start), texts)
        self.packs: tuple[tuple[int, int, tuple[str, ...]], Packed] | None = None  # the active channels' texts
        self.version = 0  # bumped on every subscription change (sessions' fast-path routing is cached per version)
        self.skip = 0
        self.corrupt = 0
        self.stalled_until: float | None = None  # monotonic seconds; inf = until resume
        self.paused_until: float | None = None

    def halted(self, now: float) -> bool:
        for attr in ("stalled_until", "paused_until"):
            until = getattr(self, attr)
            if until is not None:
                if now < until:
                    return True
                setattr(self, attr, None)
        return False

    def subscribe(self, session: _Session, pair: tuple[str, str]) -> None:
        session.state.subscriptions.add(pair)
        self.index.setdefault(pair, set()).add(session)
        self._routes_changed()

    def unsubscribe(self, session: _Session, pair: tuple[str, str]) -> None:
        session.state.subscriptions.discard(pair)
        session.state.synced.discard(pair)
        subs = self.index.get(pair)
        if subs is not None:
            subs.discard(session)
        self._routes_changed()

    def _routes_changed(self) -> None:
        self.version += 1
        live = {channel for (channel, vsym), subs in self.index.items() if subs and vsym in self.rows_of}
        rendered = self.encoder.rendered_channels
        self.fast = live <= set(rendered)
        self.active = tuple(channel for channel in rendered if channel in live)

    def seq_of(self, i: int, lap: int) -> int:
        seq = self.seqs[i]
        return seq if seq is not None else lap * self.seq_missing[self.symbols[i]] + self.seq_rank[i]

    def tick(self, i: int, lap: int, ts_event: int | None = None) -> Tick:
        """Quote row ``i`` of pass ``lap`` as a :class:`Tick` with its texts (the per-message path's input)."""
        ts = self.ts[i] + lap * self.span if ts_event is None else ts_event
        values = (self.bids[i], self.bid_sizes[i], self.asks[i], self.ask_sizes[i])
        return Tick(ts, self.symbols[i], self.vsyms[i], *values, self.seq_of(i, lap), *self.texts[i])

    def latest_tick(self, venue_symbol: str) -> Tick | None:
        """The last quote sent (or skipped) for ``venue_symbol``, for a late joiner's snapshot."""
        rows = self.rows_of.get(venue_symbol)
        if not rows:
            return None
        k = bisect_left(rows, self.next_row) - 1
        if k >= 0:
            lap, i = self.lap, rows[k]
        elif self.lap > 0:
            lap, i = self.lap - 1, rows[-1]
        else:
            return None
        return self.tick(i, lap, time.time_ns() if self.restamp else None)

    def catch_up(self) -> None:
        """Bring the encoder's book state up to the replay position (the fast path leaves it behind).

        Each row's prepare() depends only on the symbol's previous rows, so replaying them in order gives the
        state a per-message replay would have; passes before the last one are overwritten by it and skipped.
        """
        lap, row = self.prepared
        if lap < self.lap - 1:
            lap, row = self.lap - 1, 0
        n = len(self.ts)
        while (lap, row) < (self.lap, self.next_row):
            if row >= n:
                lap, row = lap + 1, 0
                continue
            self.encoder.prepare(self.tick(row, lap))
            row += 1
        self.prepared = (self.lap, self.next_row)

    def rendered(self, channel: str, i0: int) -> tuple[pl.Series, int]:
        """Messages of the quote rows of ``i0``'s chunk on ``channel``, and the chunk's first row.

        Rows are rendered a chunk at a time and kept until the replay moves past them; a restamped replay renders
        event-time placeholders (filled in at send time).
        """
        lap = self.lap
        start = i0 - i0 % _CHUNK
        cached = self.cache.get(channel)
        if cached is None or cached[0] != (lap, start):
            if lap:
                rows = self.render_rows.slice(start, _CHUNK).with_columns(pl.col("ts_event") + lap * self.span)
                rows = self._with_seq(rows, lap)
            else:
                rows = self.first_lap_rows.slice(start, _CHUNK)
            cached = ((lap, start), self.encoder.render_texts(channel, rows, stamped=self.restamp))
            self.cache[channel] = cached
        return cached[1], start

    def packed(self, i0: int) -> tuple[Packed, int]:
        """The rendered texts of every active channel for ``i0``'s chunk as one buffer, and the chunk's first row."""
        start = i0 - i0 % _CHUNK
        key = (self.lap, start, self.active)
        if self.packs is None or self.packs[0] != key:
            self.packs = (key, pack_columns([self.rendered(channel, i0)[0] for channel in self.active]))
        return self.packs[1], start

    def wanted(self, session: _Session) -> npt.NDArray[np.uint8] | None:
        """``[active channel, symbol code]`` pairs ``session`` subscribes to (None: none), cached per version."""
        if session.version != self.version:
            session.version = self.version
            wanted = np.zeros((len(self.active), len(self.code_of)), np.uint8)
            for channel, vsym in session.state.subscriptions:
                code = self.code_of.get(vsym)
                if code is not None and channel in self.active:
                    wanted[self.active.index(channel), code] = 1
            session.wanted = wanted if wanted.any() else None
        return session.wanted

    def synced(self, session: _Session) -> bool:
        """Whether every rendered pair ``session`` subscribes to had its first (snapshot) message."""
        if session.synced_version == self.version:
            return True
        state = session.state
        for pair in state.subscriptions:
            if pair not in state.synced and pair[0] in self.active and pair[1] in self.code_of:
                return False
        session.synced_version = self.version
        return True

    @staticmethod
    def _with_seq(rows: pl.DataFrame, lap: int) -> pl.DataFrame:
        return rows.with_columns(seq=pl.coalesce("seq", pl.col("seq_rank") + lap * pl.col("seq_missing")))

    def remove(self, session: _Session) -> None:
        self.sessions.discard(session)
        for pair in list(session.state.subscriptions):
            self.unsubscribe(session, pair)


class SimulatorHandle:
    """A running simulator: URLs, counters, fault injection, start and shutdown.

    Use it as an async context manager, or call :meth:`close`.
    """

    def __init__(
        self, server: Server, feeds: dict[str, _Feed], speed: float, loop: bool, autostart: bool, restamp: bool = False
    ) -> None:
        self._server = server
        self._restamp = restamp
        self._feeds = feeds
        self._speed = speed
        self._loop = loop
        self._autostart = autostart
        for feed in feeds.values():
            feed.restamp = restamp  # before any text is rendered: a restamped replay renders placeholders
        self._tasks: list[asyncio.Task[None]] = []
        sock = next(iter(server.sockets))
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]

    # -- addresses ------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def paths(self) -> list[str]:
        """Every served path, e.g. ``/binance``, ``/binance/linear``, ``/okx``."""
        return sorted(self._feeds)

    def url(self, venue: str, market: str | None = None) -> str:
        """The WebSocket URL of a venue (and market, for venues where a symbol does not name it)."""
        path = f"/{venue}" if market is None else f"/{venue}/{market}"
        if path not in self._feeds and market is not None and f"/{venue}" in self._feeds:
            feed = self._feeds[f"/{venue}"]
            if feed.market is None:
                path = f"/{venue}"
        return self.base_url + path

    def rest_url(self, venue: str, market: str | None = None) -> str:
        """The REST base URL of a venue path: Binance depth snapshots are ``GET <base>/api/v3/depth`` (spot) and
        ``GET <base>/fapi/v1/depth`` (USD-M), answered from the book the path's diff stream is sending."""
        return "http" + self.url(venue, market).removeprefix("ws")

    def stats(self) -> dict[str, FeedStats]:
        """Counters per path."""
        return {path: feed.stats for path, feed in self._feeds.items()}

    def symbols(self, path: str) -> dict[str, str]:
        """Unified symbol -> venue symbol served on ``path``."""
        return dict(self._feeds[path].venue_symbols)

    # -- control --------------------------------------------------------------------------------------------
    def start(self, path: str | None = None) -> None:
        """Start replaying (all paths, or one); a no-op for paths already started."""
        for p, feed in self._feeds.items():
            if path is None or p == path:
                feed.started.set()

    async def wait_done(self, timeout: float | None = None) -> None:
        """Wait until every started path has replayed all its data (never returns with ``loop=True``)."""
        await asyncio.wait_for(asyncio.gather(*(f.done.wait() for f in self._feeds.values())), timeout)

    async def inject(
        self,
        path: str,
        fault: str,
        *,
        count: int = 1,
        duration_s: float | None = None,
        grace_s: float = 1.0,
    ) -> None:
        """Inject a fault on a venue path (``/okx``, ``okx``, or ``/binance/linear``).

        Parameters
        ----------
        fault
            ``drop`` (abort every connection), ``skip_seq`` (the next ``count`` updates are consumed without being
            sent, so sequence ids jump), ``corrupt_checksum`` (the next ``count`` checksummed book messages carry a
            wrong checksum), ``delay`` (hold all data for ``duration_s``, then send the backlog), ``malformed``
            (send ``count`` broken JSON messages), ``stall`` (silence: no data, no heartbeats, connection open,
            for ``duration_s`` or until ``resume``), ``resume``, ``shutdown`` (send the venue's disconnect notice
            and close the connections ``grace_s`` later, as for a service upgrade or 24-hour limit).
        """
        feed = self._feed(path)
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        feed.stats.faults[fault] = feed.stats.faults.get(fault, 0) + 1
        now = time.monotonic()
        if fault == "drop":
            for session in list(feed.sessions):
                feed.stats.drops += 1
                session.ws.transport.abort()
        elif fault == "skip_seq":
            feed.skip += count
        elif fault == "corrupt_checksum":
            feed.corrupt += count
        elif fault == "delay":
            feed.paused_until = now + (duration_s if duration_s is not None else 1.0)
        elif fault == "stall":
            feed.stalled_until = now + duration_s if duration_s is not None else float("inf")
        elif fault == "resume":
            feed.stalled_until = None
            feed.paused_until = None
        elif fault == "malformed":
            for session in list(feed.sessions):
                for _ in range(count):
                    feed.stats.malformed += 1
                    with contextlib.suppress(ConnectionClosed):
                        await session.ws.send('{"arg":{"channel":"bbo-tbt","instId":')
        elif fault == "shutdown":
            notice = feed.encoder.shutdown_notice(time.time_ns())
            old = list(feed.sessions)
            for session in old:
                session.closing = True
                if notice is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await session.ws.send(notice)
            self._tasks.append(asyncio.create_task(_close_later(old, grace_s)))

    def _feed(self, path: str) -> _Feed:
        key = path if path.startswith("/") else f"/{path}"
        try:
            return self._feeds[key]
        except KeyError:
            raise ValueError(f"no simulator path {key!r} (serving: {', '.join(self._feeds)})") from None

    async def close(self) -> None:
        """Stop replay tasks and the server; connections are closed."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> SimulatorHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals ------------------------------------------------------------------------------------------
    def _launch(self) -> None:
        for feed in self._feeds.values():
            self._tasks.append(asyncio.create_task(self._replay(feed), name=f"sim-replay{feed.path}"))
            self._tasks.append(asyncio.create_task(self._heartbeats(feed), name=f"sim-heartbeat{feed.path}"))

    async def _replay(self, feed: _Feed) -> None:
        await feed.started.wait()
        timeline = feed.timeline
        n = len(timeline)
        speed = self._speed
        while True:
            offset = feed.lap * feed.span
            t0_wall = time.monotonic()
            t0_data = timeline[0][0] if n else 0
            feed.next_row = 0
            k = 0
            next_yield = 0
            while k < n:
                ts_data, kind, i = timeline[k]
                if speed > 0:
                    delay = t0_wall + (ts_data - t0_data) / 1e9 / speed - time.monotonic()
                    if delay > 0:
                        await _write_out(feed)
                        await asyncio.sleep(max(delay, _PACE_S))
                elif k >= next_yield:
                    await _write_out(feed)
                    await asyncio.sleep(0)
                    next_yield = k + _RUN
                if feed.buffered >= _RUN:
                    await _write_out(feed)
                while feed.halted(time.monotonic()):
                    await _write_out(feed)
                    await asyncio.sleep(0.005)
                if kind:
                    await _write_out(feed)  # what was encoded before goes first
                    if kind == 1:
                        await self._send_book(feed, feed.books[i], offset)
                    else:
                        await self._send_extra(feed, feed.funding[i] if kind == 2 else feed.options[i], offset)
                    k += 1
                elif feed.fast:
                    end = self._run_end(feed, k, t0_wall, t0_data)
                    self._send_rendered(feed, i, i + end - k)
                    k = end
                else:
                    feed.catch_up()
                    self._send_tick(feed, i)
                    k += 1
            await _write_out(feed)
            if not self._loop or n == 0:
                break
            feed.lap += 1
            feed.next_row = 0
        feed.done.set()

    def _run_end(self, feed: _Feed, k: int, t0_wall: float, t0_data: int) -> int:
        """End of the run of quote rows from timeline entry ``k`` sent in one go: consecutive quotes, due now,
        at most ``_RUN`` of them and within one render chunk."""
        timeline = feed.timeline
        i = timeline[k][2]
        end = min(len(timeline), k + _RUN, k + _CHUNK - i % _CHUNK, feed.next_other[k + 1])
        if self._speed > 0:
            due = t0_data + (time.monotonic() - t0_wall) * self._speed * 1e9
            end = min(end, bisect_right(feed.timeline_times, due, k, end))
        return max(end, k + 1)

    def _skip_ticks(self, feed: _Feed, i0: int, i1: int) -> int:
        """Consume up to ``feed.skip`` of quote rows ``[i0, i1)`` unsent (skip_seq); returns the first row to send."""
        skip = min(feed.skip, i1 - i0)
        feed.skip -= skip
        feed.stats.skipped += skip
        for vsym in feed.vsyms[i0 : i0 + skip]:
            for session in feed.sessions:  # a lost message still consumed a connection-wide number
                if any(pair[1] == vsym for pair in session.state.subscriptions):
                    session.state.sequence += 1
        return i0 + skip

    def _send_rendered(self, feed: _Feed, i0: int, i1: int) -> None:
        """Quote rows ``[i0, i1)`` to every subscriber on the fast path: rendered texts, finished per session."""
        feed.stats.ticks += i1 - i0
        feed.next_row = i1
        if feed.skip > 0:
            i0 = self._skip_ticks(feed, i0, i1)
        encoder = feed.encoder
        if not feed.active or i0 >= i1:
            return
        packed, base = feed.packed(i0)
        codes = feed.codes[base : base + packed.rows]
        stamp = event_stamp(time.time_ns()) if feed.restamp else None  # one send time for the run
        sent = 0
        for session in list(feed.sessions):
            wanted = feed.wanted(session)
            if wanted is None:
                continue
            state = session.state
            plan = encoder.emit_plan(state)
            if plan is None or (encoder.snapshot_first and not feed.synced(session)):
                sent += self._send_texts(feed, session, i0, i1, stamp)
                continue
            numbered = plan == "numbered"
            out, count, state.sequence = packed.frame(
                codes, wanted, i0 - base, i1 - base, state.sequence, numbered=numbered, stamp=stamp
            )
            if count:
                session.frame_texts()  # anything encoded before goes first
                session.framed.append(out.data)
                sent += count
        feed.buffered += sent
        feed.stats.messages += sent

    def _send_texts(self, feed: _Feed, session: _Session, i0: int, i1: int, stamp: Stamp | None) -> int:
        """Quote rows ``[i0, i1)`` to one session message by message: its first message per symbol (a snapshot
        on venues that send one) or a per-session finish the compiled framing does not do (Binance's combined
        stream wrapper).  ``stamp``: the send time of a restamped replay (its texts fill the placeholders)."""
        encoder = feed.encoder
        state = session.state
        subscriptions = state.subscriptions
        active = []
        for channel in feed.active:
            column, base = feed.rendered(channel, i0)
            active.append((channel, column.slice(i0 - base, i1 - i0).to_list(), i0))
        finish = encoder.emit if type(encoder).emit is not Encoder.emit else None
        first = encoder.snapshot_first
        out = session.out
        sent = 0
        for i in range(i0, i1):
            vsym = feed.vsyms[i]
            for channel, texts, base in active:
                pair = (channel, vsym)
                if pair not in subscriptions:
                    continue
                text = texts[i - base] if stamp is None else stamp.fill(texts[i - base])
                if first and pair not in state.synced:
                    msg = encoder.encode(state, channel, feed.tick(i, feed.lap, stamp.ns if stamp else None))
                elif finish is not None:
                    msg = finish(state, channel, vsym, text)
                else:
                    msg = text
                if msg is not None:
                    out.append(msg)
                    sent += 1
        return sent

    def _send_tick(self, feed: _Feed, i: int) -> None:
        """Quote row ``i`` message by message through the encoder (book channels, whose state prepare() keeps)."""
        encoder = feed.encoder
        tick = feed.tick(i, feed.lap, time.time_ns() if self._restamp else None)
        encoder.prepare(tick)
        feed.prepared = (feed.lap, i + 1)
        feed.next_row = i + 1
        feed.stats.ticks += 1
        if feed.skip > 0 and self._skip_ticks(feed, i, i + 1) > i:
            return
        self._encode_tick(feed, tick, encoder.channels)

    @staticmethod
    def _encode_tick(feed: _Feed, tick: Tick, channels: Sequence[str]) -> None:
        encoder = feed.encoder
        for channel in channels:
            subs = feed.index.get((channel, tick.venue_symbol))
            if not subs:
                continue
            corrupt = feed.corrupt > 0 and channel in encoder.book_channels
            if corrupt:
                feed.corrupt -= 1
                feed.stats.corrupted += 1
            for session in subs:
                msg = encoder.encode(session.state, channel, tick, corrupt=corrupt)
                if msg is None:
                    continue
                session.out.append(msg)
                feed.buffered += 1
                feed.stats.messages += 1

    async def _send_book(self, feed: _Feed, book: BookSnapshot, offset: int) -> None:
        if offset:
            book = BookSnapshot(book.ts_event + offset, book.symbol, book.venue_symbol, book.bids, book.asks, book.seq)
        feed.stats.books += 1
        for channel in feed.encoder.depth_channels:
            for session in list(feed.index.get((channel, book.venue_symbol), ())):
                msg = feed.encoder.encode_book(session.state, channel, book)
                if msg is None:
                    continue
                try:
                    await session.ws.send(msg)
                except ConnectionClosed:
                    feed.remove(session)
                    continue
                feed.stats.messages += 1

    async def _send_extra(self, feed: _Feed, row: FundingTick | OptionTick, offset: int) -> None:
        """Send a funding row or an option quote to the sessions subscribed to its channels."""
        encoder = feed.encoder
        if self._restamp:
            row = dataclasses.replace(row, ts_event=time.time_ns())
        elif offset:
            row = dataclasses.replace(row, ts_event=row.ts_event + offset)
        if isinstance(row, FundingTick):
            feed.stats.funding += 1
            channels = encoder.funding_channels
        else:
            feed.stats.options += 1
            channels = encoder.option_channels
        for channel in channels:
            for session in list(feed.index.get((channel, row.venue_symbol), ())):
                if isinstance(row, FundingTick):
                    msg = encoder.encode_funding(session.state, channel, row)
                else:
                    msg = encoder.encode_option(session.state, channel, row)
                if msg is None:
                    continue
                try:
                    await session.ws.send(msg)
                except ConnectionClosed:
                    feed.remove(session)
                    continue
                feed.stats.messages += 1

    async def _heartbeats(self, feed: _Feed) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if feed.halted(now):
                continue
            for session in list(feed.sessions):
                period = session.state.heartbeat_s
                if period is None or now - session.last_heartbeat < period:
                    continue
                msg = feed.encoder.heartbeat(session.state, time.time_ns())
                session.last_heartbeat = now
                if msg is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await session.ws.send(msg)

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?", 1)[0].rstrip("/") if ws.request is not None else ""
        if path == "/control":
            await self._control(ws)
            return
        combined = path.endswith("/stream")  # Binance combined-stream endpoint: payloads wrapped with their stream
        if combined:
            path = path.removesuffix("/stream")
        feed = self._feeds.get(path)
        if feed is None:
            await ws.close(4004, f"no venue at {path!r}; serving {', '.join(self._feeds)}")
            return
        session = _Session(ws, SessionState(combined=combined), time.monotonic())
        feed.sessions.add(session)
        feed.stats.connections += 1
        welcome = feed.encoder.welcome(time.time_ns())
        try:
            if welcome is not None:
                await ws.send(welcome)
            async for raw in ws:
                feed.stats.requests += 1
                reply = feed.encoder.on_request(session.state, raw, time.time_ns())
                for pair in reply.unsubscribed:
                    feed.unsubscribe(session, pair)
                for pair in reply.subscribed:
                    feed.subscribe(session, pair)
                for msg in reply.messages:
                    await ws.send(msg)
                if not feed.fast:
                    feed.catch_up()  # a book channel's snapshot reads the encoder's book state
                for channel, venue_symbol in reply.subscribed:  # late joiners get the current top of book
                    if channel in feed.encoder.diff_channels:
                        continue  # diff streams push no snapshot: the client syncs from the REST one
                    tick = feed.latest_tick(venue_symbol)
                    if tick is not None:
                        snapshot = feed.encoder.encode(session.state, channel, tick)
                        if snapshot is not None:
                            await ws.send(snapshot)
                if reply.subscribed and self._autostart and not feed.started.is_set():
                    self._tasks.append(asyncio.create_task(_start_soon(feed)))
        except ConnectionClosed:
            pass
        finally:
            feed.remove(session)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP on the WebSocket port: the Binance REST depth snapshot; ``None`` lets the upgrade proceed."""
        path, _, query = request.path.partition("?")
        for suffix in _REST_DEPTH:
            if path.endswith(suffix):
                break
        else:
            return None
        feed = self._feeds.get(path.removesuffix(suffix).rstrip("/") or "/binance")
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        rest_depth = getattr(feed.encoder, "rest_depth", None) if feed is not None else None
        venue_symbol = params.get("symbol", "")
        if feed is None or rest_depth is None:
            return _http_response(404, b'{"code":-1,"msg":"Not found"}')
        unified = {v: k for k, v in feed.venue_symbols.items()}.get(venue_symbol)
        if unified is None:
            return _http_response(400, b'{"code":-1121,"msg":"Invalid symbol."}')
        try:
            limit = int(params.get("limit", "100"))
        except ValueError:
            return _http_response(400, b'{"code":-1100,"msg":"Illegal characters found in parameter \'limit\'."}')
        feed.stats.rest_snapshots += 1
        feed.catch_up()
        return _http_response(200, rest_depth(venue_symbol, unified, max(1, min(limit, 5000))))

    async def _control(self, ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                try:
                    msg = orjson.loads(raw)
                    op = msg.get("op", "fault")
                    if op == "start":
                        self.start(msg.get("path"))
                        out: dict[str, Any] = {"ok": True}
                    elif op == "stats":
                        out = {"ok": True, "stats": {p: _stats_dict(s) for p, s in self.stats().items()}}
                    else:
                        await self.inject(
                            str(msg["path"]),
                            str(msg["fault"]),
                            count=int(msg.get("count", 1)),
                            duration_s=msg.get("duration_s"),
                            grace_s=float(msg.get("grace_s", 1.0)),
                        )
                        out = {"ok": True}
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                    out = {"ok": False, "error": str(exc)}
                await ws.send(orjson.dumps(out).decode())
        except ConnectionClosed:
            pass


_REST_DEPTH = ("/api/v3/depth", "/fapi/v1/depth")


def _http_response(status: int, body: bytes) -> Response:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    headers["Connection"] = "close"
    return Response(status, reason, headers, body)


def _stats_dict(stats: FeedStats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in FeedStats.__slots__}  # type: ignore[attr-defined]


async def _start_soon(feed: _Feed) -> None:
    await asyncio.sleep(0.1)  # let a client's remaining subscribe requests arrive first
    feed.started.set()


async def _close_later(sessions: list[_Session], grace_s: float) -> None:
    await asyncio.sleep(grace_s)
    for session in sessions:
        with contextlib.suppress(Exception):
            await session.ws.close(1001, "service restart")


_EXTRA_TABLES = {"book": schema.BOOK, "funding": schema.FUNDING, "option_quotes": schema.OPTION_QUOTES}


def _load(source: Source, venues: Sequence[str] | None) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """(quotes, {"book" / "funding" / "option_quotes": frame} for those present and non-empty) from a store root,
    a QUOTES frame or a mapping of frames."""
    extra: dict[str, pl.DataFrame] = {}
    if isinstance(source, str | Path):
        from arbkit.data.store import Store

        store = Store(source)
        exchanges = list(venues) if venues else None
        tables = store.tables()
        frame = (
            store.scan("quotes", exchange=exchanges).collect() if "quotes" in tables else schema.empty(schema.QUOTES)
        )
        for name in _EXTRA_TABLES:
            if name in tables:
                extra[name] = store.scan(name, exchange=exchanges).collect()
    elif isinstance(source, pl.DataFrame):
        frame = source
    else:
        frame = source["quotes"] if "quotes" in source else schema.empty(schema.QUOTES)
        extra = {name: source[name] for name in _EXTRA_TABLES if name in source}
    frame = schema.validate(frame, schema.QUOTES)
    extra = {name: schema.validate(f, _EXTRA_TABLES[name]) for name, f in extra.items()}
    if venues:
        frame = frame.filter(pl.col("exchange").is_in(list(venues)))
        extra = {name: f.filter(pl.col("exchange").is_in(list(venues))) for name, f in extra.items()}
    extra = {name: f for name, f in extra.items() if f.height}
    exchanges_seen = set(frame.get_column("exchange").unique().to_list())
    for f in extra.values():
        exchanges_seen |= set(f.get_column("exchange").unique().to_list())
    unknown = sorted(exchanges_seen - set(ENCODERS))
    if unknown:
        raise ValueError(f"the simulator does not speak {unknown} (known: {', '.join(ENCODERS)})")
    frame = frame.with_row_index("__row").sort(["ts_event", "__row"]).drop("__row")
    return frame, extra


def _funding_ticks(frame: pl.DataFrame, venue_symbols: dict[str, str]) -> list[FundingTick]:
    cols = ("ts_event", "symbol", "funding_rate", "predicted_rate", "next_funding_time", "mark_price", "index_price")
    rows = frame.filter(pl.col("symbol").is_in(list(venue_symbols))).select(cols).rows()
    return [FundingTick(ts, sym, venue_symbols[sym], *rest) for ts, sym, *rest in rows]


def _option_ticks(frame: pl.DataFrame, venue_symbols: dict[str, str]) -> list[OptionTick]:
    cols = (
        "ts_event",
        "symbol",
        "bid",
        "bid_size",
        "ask",
        "ask_size",
        "bid_iv",
        "ask_iv",
        "mark_price",
        "mark_iv",
        "underlying_price",
    )
    rows = frame.filter(pl.col("symbol").is_in(list(venue_symbols))).select(cols).rows()
    return [OptionTick(ts, sym, venue_symbols[sym], *rest) for ts, sym, *rest in rows]


def _book_snapshots(book: pl.DataFrame, venue_symbols: dict[str, str]) -> list[BookSnapshot]:
    """Group BOOK rows into snapshots: one per (symbol, ts_event, ts_recv), levels best first."""
    rows = (
        book.filter(pl.col("symbol").is_in(list(venue_symbols)))
        .with_row_index("__row")
        .sort(["ts_event", "symbol", "ts_recv", "side", "level", "__row"])
        .select("ts_event", "ts_recv", "symbol", "side", "level", "price", "size", "seq")
        .rows()
    )
    out: list[BookSnapshot] = []
    key = None
    counters: dict[str, int] = {}
    for ts_event, ts_recv, symbol, side, _level, price, size, seq in rows:
        if (symbol, ts_event, ts_recv) != key:
            key = (symbol, ts_event, ts_recv)
            if seq is None:
                seq = counters.get(symbol, 0) + 1
                counters[symbol] = seq
            out.append(BookSnapshot(ts_event, symbol, venue_symbols[symbol], [], [], seq))
        level = (format_number(price), format_number(size))
        (out[-1].bids if side == "bid" else out[-1].asks).append(level)
    return out


async def serve(
    source: Source,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float = 1.0,
    venues: Sequence[str] | None = None,
    *,
    autostart: bool = True,
    loop: bool = False,
    ping_interval: float | None = 20.0,
    restamp_event_time: bool = False,
) -> SimulatorHandle:
    """Serve each venue's public stream protocol on loopback, replaying ``source``'s quotes.

    Parameters
    ----------
    source
        A Parquet store root (its ``quotes`` and, when present, ``book``, ``funding`` and ``option_quotes`` tables
        are read), a ``QUOTES`` frame, or a mapping with ``"quotes"`` and optionally ``"book"``, ``"funding"`` and
        ``"option_quotes"`` frames.  Book levels are replayed as snapshots on the venues' partial-depth channels:
        Binance ``depth5/10/20`` (on ``.../stream``, the combined-stream endpoint, since a spot partial book names
        no symbol), OKX ``books5``, Bybit ``orderbook.50``.  Quotes also drive one-level books on the diff and
        checksummed channels (Binance ``depth@100ms`` with its REST snapshot, OKX ``books``, Kraken ``book``).
        Funding rows go out on Binance USD-M ``markPrice`` (``markPriceUpdate``), Bybit ``tickers`` and OKX
        ``funding-rate``; option quotes on Deribit ``ticker.<option>.100ms``.
    host, port
        Where to listen; port 0 picks a free port (see :attr:`SimulatorHandle.port`).
    speed
        Replay speed: 1.0 is real time (by ``ts_event``), 10.0 ten times faster, 0 as fast as possible.
    venues
        Restrict to these venues (CCXT ids); all venues in the data by default.
    autostart
        Start a path's replay 100 ms after its first subscription; otherwise call :meth:`SimulatorHandle.start`.
    loop
        Replay forever, shifting event times by the data's span on each pass (the demo's default feed).
    ping_interval
        WebSocket-level ping period in seconds (``None`` disables them).
    restamp_event_time
        Send the wall-clock send time as each message's event time (benchmarks measure send-to-flush latency
        from it), instead of the data's ``ts_event``.  The clock is read once per run of rows framed together
        (what became due since the replay's last turn, at most a few hundred rows), so those messages share it.

    Returns
    -------
    SimulatorHandle
        Paths are ``/<venue>`` for a venue's default market and ``/<venue>/<market>`` where the venue's symbol
        does not say the market (Binance ``/binance`` spot and ``/binance/linear`` USD-M; Bybit ``/bybit`` linear
        and ``/bybit/spot``).  ``/control`` accepts JSON control messages (``{"op": "start"}``,
        ``{"op": "stats"}``, ``{"path": "/okx", "fault": "drop"}``).

    Examples
    --------
    >>> import asyncio, polars as pl
    >>> quotes = pl.DataFrame({"ts_event": [1_700_000_000_000_000_000], "ts_recv": [1_700_000_000_000_000_000],
    ...     "exchange": ["okx"], "symbol": ["BTC/USDT"], "bid": [100.0], "bid_size": [1.0], "ask": [101.0],
    ...     "ask_size": [2.0]})
    >>> async def main():
    ...     async with await serve(quotes, speed=0) as sim:
    ...         return sim.paths
    >>> asyncio.run(main())
    ['/okx']
    """
    frame, extra = _load(source, venues)
    feeds: dict[str, _Feed] = {}
    groups: dict[tuple[str, str | None, str], list[str]] = {}
    venue_symbols: dict[tuple[str, str | None, str], dict[str, str]] = {}
    keys = pl.concat([frame.select("exchange", "symbol"), *(f.select("exchange", "symbol") for f in extra.values())])
    for venue, symbol in keys.unique().sort(["exchange", "symbol"]).rows():
        market, wire_market, venue_symbol = _market_of(venue, symbol)
        groups.setdefault((venue, market, wire_market), []).append(symbol)
        venue_symbols.setdefault((venue, market, wire_market), {})[symbol] = venue_symbol
    for (venue, market, wire_market), symbols in groups.items():
        mine = (pl.col("exchange") == venue) & pl.col("symbol").is_in(symbols)
        parts = {name: f.filter(mine) for name, f in extra.items()}
        feed = _Feed(
            venue,
            market,
            wire_market,
            frame.filter(mine),
            venue_symbols[(venue, market, wire_market)],
            parts.get("book"),
            parts.get("funding"),
            parts.get("option_quotes"),
        )
        feeds[feed.path] = feed
    handle_ref: list[SimulatorHandle] = []

    async def handler(ws: ServerConnection) -> None:
        await handle_ref[0]._handle(ws)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        return handle_ref[0]._http(connection, request)

    server = await ws_serve(
        handler,
        host,
        port,
        ping_interval=ping_interval,
        max_size=2**20,
        compression=None,
        process_request=process_request,
    )
    handle = SimulatorHandle(server, feeds, speed, loop, autostart, restamp_event_time)
    handle_ref.append(handle)
    handle._launch()
    return handle


def run_simulator(
    source: Source,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float = 1.0,
    venues: Sequence[str] | None = None,
    *,
    loop: bool = True,
    duration_s: float | None = None,
    on_ready: Callable[[SimulatorHandle], None] | None = None,
) -> dict[str, FeedStats]:
    """Blocking :func:`serve` for the CLI (``arbkit simulate``): runs until interrupted or ``duration_s`` passes.

    ``on_ready(handle)`` is called once listening (the CLI prints the URLs from it).  Returns the counters.
    """

    async def main() -> dict[str, FeedStats]:
        async with await serve(source, host, port, speed, venues, loop=loop) as handle:
            if on_ready is not None:
                on_ready(handle)
            try:
                if duration_s is not None:
                    await asyncio.sleep(duration_s)
                elif loop:
                    await asyncio.Event().wait()
                else:
                    await handle.wait_done()
            except asyncio.CancelledError:
                pass
            return handle.stats()

    try:
        return run(main())  # microsecond timers: the replay's pacing keeps to its clock
    except KeyboardInterrupt:
        return {}
