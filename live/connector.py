"""WebSocket client per venue: subscribe, keep alive, detect stalls, reconnect, and emit parsed rows.

A :class:`Connector` owns the connections to one venue (URL configurable: the real venue or the simulator).  It
sends the venue's subscribe requests (built by the venue adapter, split to respect per-request and
per-connection limits), parses every message with :mod:`live.adapters` (book channels go through
:class:`live.book.Books`), and puts ``(table, rows)`` items on an :class:`asyncio.Queue` for the micro-batcher
(:func:`live.batcher.drive`).

Failure handling, and what the counters in :class:`ConnectorStats` say about it:

* **Bad input** never kills a connection task: a message the adapter rejects is counted (``parse_errors``) and
  logged with the venue and a snippet (rate-limited).  A frame larger than ``max_frame_bytes`` closes the
  connection (WebSocket code 1009), is counted (``oversize``) and the connection is re-opened.
* **Drops** (``disconnects``): reconnect with jittered exponential backoff (``backoff_initial_s`` doubling up
  to ``backoff_max_s``, "full jitter": a uniform draw below the current ceiling, so a fleet of clients does not
  reconnect in lockstep); the backoff resets once data flows again.  The venue's last quotes are re-emitted at
  once with ``STALE | OUTAGE`` so detection stops using them.
* **Silent stalls** (``stalls``): the connection is open but nothing arrives.  After
  ``max(2 x expected_interval_s, 5 s)`` (``stale_after_s`` overrides it) the last quotes are re-emitted with
  ``STALE`` and the connection is recycled.
* **Announced disconnects** (``handovers``): OKX's ``notice`` 64008, Binance's ``serverShutdown``, and the
  24-hour connection limit (``max_connection_age_s``) open a second connection and subscribe it *before* the old
  one goes; the switch happens on the new connection's first data message, inside one event-loop step, so no
  message is lost (at most the new connection's first snapshot repeats the last quote).
* **Book integrity** (``resyncs``): when the book keeper reports a sequence gap or checksum mismatch, the
  affected symbol is unsubscribed and subscribed again so the venue sends a fresh snapshot.  Binance diff depth
  streams (``depth``, ``depth@100ms``) never push a snapshot: the keeper buffers the diffs and the connector
  fetches the REST snapshot (``GET /api/v3/depth`` spot, ``/fapi/v1/depth`` USD-M, from ``rest_url``) at start
  and after every gap (``snapshots``, ``snapshot_failures``).  Lost messages the keeper cannot see (Coinbase's
  connection-wide ``sequence_num`` jumping, a dropped connection) flag the connection's books ``RESYNCING``
  through :meth:`live.book.Books.messages_lost` until they are re-synced.
* **Keep-alive**: WebSocket ping frames (all venues) plus each venue's application ping (OKX ``ping``, Bybit
  ``{"op": "ping"}``, Kraken ``{"method": "ping"}``), Deribit's ``public/set_heartbeat`` with answers to its
  ``test_request``, and Coinbase's ``heartbeats`` channel.

Examples
--------
>>> config = ConnectorConfig("okx", "ws://127.0.0.1:9/okx", ("BTC/USDT",))
>>> config.channel_name, config.stale_after()
('bbo-tbt', 5.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from arbkit.schema import QuoteFlag
from live import adapters
from live._ws import FeedConnection, RawBatch, open_feed
from live.adapters import Adapter, QuoteRow, Rows
from live.adapters._columns import QuoteColumns
from live.batcher import FeedItem
from live.book import Books
from live.runtime import freeze_startup_heap

__all__ = [
    "DEFAULT_CHANNELS",
    "Connector",
    "ConnectorConfig",
    "ConnectorStats",
    "VenueLimits",
    "run_connectors",
]

_log = logging.getLogger("live.connector")
_SYMBOL, _SEQ = operator.itemgetter(3), operator.itemgetter(8)  # QUOTES row fields, read in C over a batch
_T = TypeVar("_T")

#: The top-of-book channel subscribed per venue unless the config names another.
DEFAULT_CHANNELS: dict[str, str] = {
    "binance": "bookTicker",
    "okx": "bbo-tbt",
    "bybit": "orderbook.1",
    "coinbase": "ticker",
    "kraken": "ticker",
    "deribit": "ticker",
}


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """Published per-connection limits: symbols per connection and per subscribe request, app ping period."""

    symbols_per_connection: int
    symbols_per_request: int
    app_ping_s: float | None


#: Limits per venue (public docs: Binance 1024 streams/connection; Bybit 10 args/request on spot; OKX and Bybit
#: close idle connections after 30 s without a ping; Kraken and Deribit as their docs recommend).
VENUE_LIMITS: dict[str, VenueLimits] = {
    "binance": VenueLimits(1024, 200, None),
    "okx": VenueLimits(240, 100, 20.0),
    "bybit": VenueLimits(200, 10, 20.0),
    "coinbase": VenueLimits(100, 100, None),
    "kraken": VenueLimits(200, 100, 20.0),
    "deribit": VenueLimits(500, 100, None),
}

_SHUTDOWN_MARKERS: dict[str, tuple[bytes, ...]] = {
    "okx": (b'"code":"64008"',),
    "binance": (b'"e":"serverShutdown"',),
}

# How market-data pushes start, per venue: such messages skip the control checks (acks, notices, heartbeats).
_DATA_PREFIXES: dict[str, tuple[bytes, ...]] = {
    "binance": (b'{"u":', b'{"e":"bookTicker"', b'{"e":"depthUpdate"', b'{"stream":'),
    "okx": (b'{"arg":',),
    "bybit": (b'{"topic":',),
    "coinbase": (b'{"channel":"ticker"', b'{"channel":"l2_data"'),
    "kraken": (b'{"channel":"ticker"', b'{"channel":"book"'),
    "deribit": (b'{"jsonrpc":"2.0","method":"subscription"',),
}

# Coinbase numbers every message of a connection (``sequence_num``): a jump means messages were lost.
_COINBASE_SEQUENCE = re.compile(rb'"sequence_num":(\d+)')

# Channels whose every data message is one self-contained top of book and nothing else: parsed by the adapter's
# fast path (``parse_quote_tuple``, one tuple, no Rows object).
_FAST_QUOTES: frozenset[tuple[str, str]] = frozenset({("binance", "bookTicker"), ("okx", "bbo-tbt")})

# Channels whose messages a socket read's worth at a time go through the adapter's batch entry point
# (``parse_quote_batch``): top-of-book only, one quote per message, no book keeper involved.
_BATCH_QUOTES: frozenset[tuple[str, str]] = frozenset(
    {("binance", "bookTicker"), ("okx", "bbo-tbt"), ("coinbase", "ticker"), ("kraken", "ticker")}
)

# Binance diff depth channels: synced from a REST snapshot, never by re-subscribing.
_BINANCE_DIFF = ("depth", "depth@100ms", "depth@1000ms")

_ACK_MARKERS: dict[str, tuple[bytes, ...]] = {
    "binance": (b'"result":null', b'"result":['),
    "okx": (b'"event":"subscribe"',),
    "bybit": (b'"op":"subscribe"',),
    "coinbase": (b'"channel":"subscriptions"',),
    "kraken": (b'"method":"subscribe"',),
    "deribit": (b'"result":[',),
}


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One venue's feed: where, what, and how patient to be.

    Parameters
    ----------
    venue
        CCXT exchange id.
    url
        WebSocket URL (the venue's public endpoint, or ``SimulatorHandle.url(venue, market)``).
    symbols
        Unified symbols to subscribe.
    market
        Adapter market where the venue's symbols do not say it (Binance ``spot``/``linear``, Bybit).
    channel
        Venue channel name; :data:`DEFAULT_CHANNELS` by default.
    expected_interval_s
        Typical gap between messages on a healthy feed; stalls are declared after
        ``max(2 x expected_interval_s, 5 s)`` unless ``stale_after_s`` is given.
    max_frame_bytes
        Frames above this close the connection (code 1009) instead of exhausting memory.
    max_connection_age_s
        Hand over to a fresh connection before this age (Binance drops connections at 24 hours).
    rest_url
        REST base URL for Binance diff-depth snapshots, required on those channels (the venue's host from
        configuration, or the simulator's ``SimulatorHandle.rest_url(venue, market)``); never defaulted, so no code
        path reaches a venue by accident.
    emit_book_levels
        Also emit the kept books' top ``book_depth`` levels as ``BOOK`` rows after each book update (partial-depth
        channels whose messages are self-contained books emit their levels through the adapter either way).
    """

    venue: str
    url: str
    symbols: tuple[str, ...]
    market: str | None = None
    channel: str | None = None
    expected_interval_s: float = 1.0
    stale_after_s: float | None = None
    max_frame_bytes: int = 1 << 20
    symbols_per_connection: int | None = None
    symbols_per_request: int | None = None
    app_ping_s: float | None = None
    ping_interval_s: float | None = 20.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 30.0
    open_timeout_s: float = 10.0
    max_connection_age_s: float | None = 23.5 * 3600.0
    handover_timeout_s: float = 10.0
    book_depth: int = 10
    emit_book_levels: bool = False
    rest_url: str | None = None
    snapshot_limit: int = 1000
    snapshot_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.venue == "binance" and self.channel_name in _BINANCE_DIFF and not self.rest_url:
            raise ValueError(f"binance {self.channel_name}: diff-depth channels need rest_url for the REST snapshot")

    @property
    def channel_name(self) -> str:
        return self.channel or DEFAULT_CHANNELS[self.venue]

    def stale_after(self) -> float:
        """Seconds of silence after which the feed counts as stalled."""
        if self.stale_after_s is not None:
            return self.stale_after_s
        return max(2.0 * self.expected_interval_s, 5.0)

    def limits(self) -> VenueLimits:
        base = VENUE_LIMITS.get(self.venue, VenueLimits(100, 50, None))
        return VenueLimits(
            self.symbols_per_connection or base.symbols_per_connection,
            self.symbols_per_request or base.symbols_per_request,
            self.app_ping_s if self.app_ping_s is not None else base.app_ping_s,
        )


@dataclass(slots=True)
class ConnectorStats:
    """What happened on a venue's connections (exported as metrics by the engine)."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    stalls: int = 0
    handovers: int = 0
    shutdown_notices: int = 0
    messages: int = 0
    bytes: int = 0
    data_messages: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    parse_errors: int = 0
    oversize: int = 0
    resyncs: int = 0
    snapshots: int = 0  # REST depth snapshots fetched and applied (Binance diff streams)
    snapshot_failures: int = 0
    sequence_gaps: int = 0  # connection-wide sequence jumps (Coinbase sequence_num)
    stale_rows: int = 0
    acks: int = 0
    pings_sent: int = 0
    dropped_after_handover: int = 0
    internal_errors: int = 0  # exceptions outside the adapter contract (a bug, not bad input): logged, skipped
    last_error: str = ""


class _Link:
    """One WebSocket connection of a slot."""

    __slots__ = ("forwarding", "last_message", "last_sequence", "opened", "pump", "ws")

    def __init__(self, ws: FeedConnection, forwarding: bool) -> None:
        self.ws = ws
        self.forwarding = forwarding
        self.opened = time.monotonic()
        self.last_message = self.opened
        self.last_sequence: int | None = None
        self.pump: asyncio.Task[None] | None = None


class _Slot:
    """A group of symbols served by one connection at a time (two during a handover)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.link: _Link | None = None
        self.pending: _Link | None = None
        self.handover = asyncio.Event()
        self.acked = asyncio.Event()


class Connector:
    """The connections to one venue, emitting parsed rows into ``queue``.

    Parameters
    ----------
    config
        Venue, URL, symbols and limits.
    queue
        Receives ``(table, rows)`` items (see :data:`live.batcher.FeedItem`).
    clock
        Wall clock in ns for ``ts_recv`` (injectable).
    rng
        Randomness for backoff jitter (seed it in tests).
    """

    def __init__(
        self,
        config: ConnectorConfig,
        queue: asyncio.Queue[FeedItem],
        *,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.clock = clock
        self.rng = rng or random.Random()
        self.adapter: Adapter = adapters.get(config.venue, config.market)
        self.books = Books(depth=config.book_depth, emit_levels=config.emit_book_levels)
        self.stats = ConnectorStats()
        self._last_quotes: dict[str, QuoteRow] = {}
        self._last_columns: list[QuoteColumns] = []  # column batches not yet folded into _last_quotes, oldest first
        limits = config.limits()
        per_conn = max(1, limits.symbols_per_connection)
        symbols = list(dict.fromkeys(config.symbols))
        self._venue_symbols = {s: self.adapter.venue_symbol(s) for s in symbols}
        self.slots = [_Slot(symbols[i : i + per_conn]) for i in range(0, len(symbols), per_conn)]
        self._stop = asyncio.Event()
        self._log_budget = 20
        self._data_prefixes = _DATA_PREFIXES.get(config.venue, (b"\x00",))
        self._rest_sync = config.venue == "binance" and config.channel_name in _BINANCE_DIFF
        self._http: httpx.AsyncClient | None = None
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._fast_quotes = (config.venue, config.channel_name) in _FAST_QUOTES
        self._batch_quotes = (config.venue, config.channel_name) in _BATCH_QUOTES
        self._batch_books = config.venue == "bybit" and config.channel_name.startswith("orderbook.")
        # socket reads parsed in place by the adapter's compiled parser into columns (no bytes per message)
        kind = type(self.adapter)
        self._columns = self._batch_quotes and kind.parse_quote_columns is not Adapter.parse_quote_columns
        self._book_columns = self._batch_books and kind.parse_book_columns is not Adapter.parse_book_columns
        # rows parsed since the last hand-off: the queue gets one item per table per event-loop turn, not one per
        # message (see :meth:`_stage`)
        self._staged: dict[str, list[Any]] = {t: [] for t in ("quotes", "trades", "book", "funding", "option_quotes")}
        self._flush_scheduled = False

    @property
    def last_quotes(self) -> dict[str, QuoteRow]:
        """The latest quote per symbol (what a stale-feed flag re-emits).

        Column batches are folded in lazily, when this is read (or every 32 batches): picking each batch's
        last row per symbol as tuples costs more than parsing a small socket read.
        """
        pending = self._last_columns
        if pending:
            # every symbol any pending batch may hold (batches of one adapter share their symbol table)
            tables = {id(cols.symbols): cols.symbols for cols in pending}
            wanted = len(set().union(*tables.values()))
            fresh: dict[str, QuoteRow] = {}
            for cols in reversed(pending):  # newest first: older batches only fill symbols still missing
                for symbol, row in cols.last_rows().items():
                    fresh.setdefault(symbol, row)
                if len(fresh) >= wanted:
                    break  # the older batches hold nothing newer
            self._last_quotes.update(fresh)
            self._last_columns = []
        return self._last_quotes

    @property
    def venue(self) -> str:
        return self.config.venue

    async def wait_subscribed(self, timeout: float = 10.0) -> None:
        """Wait until every connection has had its subscription acknowledged."""
        await asyncio.wait_for(asyncio.gather(*(slot.acked.wait() for slot in self.slots)), timeout)

    def stop(self) -> None:
        """Ask :meth:`run` to close every connection and return."""
        self._stop.set()

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Add symbols while running, on connections with room left (the per-connection limit holds).

        Symbols that fit are added (and re-subscribed after any reconnect); ``ValueError`` names those that did
        not fit (start another connector for them).
        """
        per_conn = self.config.limits().symbols_per_connection
        new = [s for s in dict.fromkeys(symbols) if all(s not in slot.symbols for slot in self.slots)]
        for symbol in new:
            self._venue_symbols[symbol] = self.adapter.venue_symbol(symbol)
        for slot in self.slots:
            room = per_conn - len(slot.symbols)
            take, new = new[:room], new[room:]
            if not take:
                continue
            slot.symbols.extend(take)
            if slot.link is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._subscribe(slot.link.ws, take)
        if new:
            raise ValueError(f"{self.venue}: no connection has room for {new} (limit {per_conn} per connection)")

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Drop symbols while running (the venue's unsubscribe request); they are not re-subscribed later."""
        for slot in self.slots:
            gone = [s for s in symbols if s in slot.symbols]
            if not gone:
                continue
            slot.symbols[:] = [s for s in slot.symbols if s not in gone]
            for symbol in gone:
                self.last_quotes.pop(symbol, None)
            if slot.link is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._subscribe(slot.link.ws, gone, unsubscribe=True)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run every connection until ``stop`` (or :meth:`stop`) is set; never raises on feed errors."""
        self.warm()
        tasks = [
            asyncio.create_task(self._run_slot(slot), name=f"{self.venue}-slot{i}") for i, slot in enumerate(self.slots)
        ]
        waiter = asyncio.create_task(stop.wait()) if stop is not None else None
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([stopper, *([waiter] if waiter else [])], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)
            self._flush()
            for fetch in list(self._fetching.values()):
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetch
            if self._http is not None:
                await self._http.aclose()
                self._http = None
            for t in (waiter, stopper):
                if t is not None:
                    t.cancel()

    def warm(self) -> None:
        """Load the compiled readers before connecting (once per process: numba's start-up and the kernels' cache
        take a second or more), so the first socket read is not held up and no stall is mistaken for one; then
        :func:`live.runtime.freeze_startup_heap`."""
        if self._columns or self._book_columns:
            empty = np.empty(0, dtype=np.int64)
            parse = self.adapter.parse_quote_columns if self._columns else self.adapter.parse_book_columns
            parse(b"", empty, empty, 0)
        freeze_startup_heap()

    # -- slot supervision -----------------------------------------------------------------------------------
    async def _run_slot(self, slot: _Slot) -> None:
        attempt = 0
        while not self._stop.is_set():
            link = await self._open(slot, forwarding=True)
            if link is None:
                attempt += 1
                await self._backoff(attempt)
                continue
            slot.link = link
            reason = await self._supervise(slot)
            if self._stop.is_set():
                break
            # whatever was in flight is lost: the books of this connection cannot be trusted until re-synced
            lost = self.books.messages_lost(self.venue, slot.symbols)
            if not self._rest_sync:
                for key in lost:  # the subscription on the next connection brings the snapshot
                    self.books.keepers[key].resync_started()
            if reason == "stall":
                attempt = 0
            elif reason == "closed":
                attempt = 0 if self._had_data(slot) else attempt + 1
                await self._backoff(attempt)
        for link in (slot.link, slot.pending):
            if link is not None:
                await self._close(link)

    def _had_data(self, slot: _Slot) -> bool:
        link = slot.link
        return link is not None and link.last_message > link.opened

    async def _backoff(self, attempt: int) -> None:
        if attempt <= 0:
            return
        ceiling = min(self.config.backoff_max_s, self.config.backoff_initial_s * (2 ** (attempt - 1)))
        delay = self.rng.uniform(0.0, ceiling)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def _open(self, slot: _Slot, *, forwarding: bool) -> _Link | None:
        cfg = self.config
        try:
            ws = await open_feed(
                cfg.url,
                max_size=cfg.max_frame_bytes,
                ping_interval=cfg.ping_interval_s,
                ping_timeout=cfg.ping_interval_s,
                open_timeout=cfg.open_timeout_s,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.stats.connect_failures += 1
            self.stats.last_error = f"connect: {exc}"
            _log.warning("%s: connect to %s failed: %s", self.venue, cfg.url, exc)
            return None
        self.stats.connects += 1
        link = _Link(ws, forwarding)
        try:
            await self._subscribe(ws, slot.symbols)
        except ConnectionClosed:
            await self._close(link)
            return None
        link.pump = asyncio.create_task(self._pump(slot, link), name=f"{self.venue}-pump")
        return link

    async def _subscribe(self, ws: FeedConnection, symbols: Sequence[str], *, unsubscribe: bool = False) -> None:
        limits = self.config.limits()
        venue_symbols = [self._venue_symbols.get(s) or self.adapter.venue_symbol(s) for s in symbols]
        step = max(1, limits.symbols_per_request)
        if not venue_symbols:
            return
        if not unsubscribe and self.venue == "deribit":
            await ws.send(orjson.dumps(_deribit_request(9_000, "public/set_heartbeat", {"interval": 10})).decode())
        if not unsubscribe and self.venue == "coinbase":
            await ws.send(orjson.dumps({"type": "subscribe", "channel": "heartbeats"}).decode())
        for i in range(0, len(venue_symbols), step):
            msg = self.adapter.subscribe_message(self.config.channel_name, venue_symbols[i : i + step])
            if unsubscribe:
                msg = _unsubscribe_message(msg)
            await ws.send(msg.decode())

    async def _supervise(self, slot: _Slot) -> str:
        """Watch the slot's connection; returns why it ended: ``closed``, ``stall`` or ``stop``."""
        cfg = self.config
        stale_after = cfg.stale_after()
        tick = min(0.05, stale_after / 4)
        limits = cfg.limits()
        last_ping = time.monotonic()
        while not self._stop.is_set():
            link = slot.link
            assert link is not None
            assert link.pump is not None
            if link.pump.done() and slot.pending is not None:
                self._switch(slot, slot.pending)  # announced close came first: the new connection takes over
                continue
            if link.pump.done():
                self.stats.disconnects += 1
                self._flag_all(int(QuoteFlag.STALE | QuoteFlag.OUTAGE))
                await self._close(link)
                return "closed"
            now = time.monotonic()
            if now - link.last_message > stale_after:
                self.stats.stalls += 1
                self._flag_all(int(QuoteFlag.STALE))
                _log.warning(
                    "%s: no message for %.1f s: feed stalled, reconnecting", self.venue, now - link.last_message
                )
                await self._close(link)
                return "stall"
            age = cfg.max_connection_age_s
            if (slot.handover.is_set() or (age is not None and now - link.opened > age)) and slot.pending is None:
                slot.handover.clear()
                await self._start_handover(slot)
            if slot.pending is not None and now - slot.pending.opened > cfg.handover_timeout_s:
                await self._close(slot.pending)  # the new connection never delivered: keep the old one
                slot.pending = None
            if limits.app_ping_s is not None and now - last_ping > limits.app_ping_s:
                last_ping = now
                await self._app_ping(link)
            resync = self.books.needs_resync()
            if resync:
                await self._resync(slot, [symbol for venue, symbol in resync if venue == self.venue])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), tick)
        return "stop"

    async def _start_handover(self, slot: _Slot) -> None:
        self.stats.handovers += 1
        pending = await self._open(slot, forwarding=False)
        slot.pending = pending

    def _switch(self, slot: _Slot, new: _Link) -> None:
        """Make ``new`` the slot's connection (synchronous: no message can slip between the two)."""
        old = slot.link
        new.forwarding = True
        slot.link = new
        slot.pending = None
        if old is not None:
            old.forwarding = False
            asyncio.get_running_loop().create_task(self._close(old))

    async def _resync(self, slot: _Slot, symbols: list[str]) -> None:
        link = slot.link
        if link is None or not symbols:
            return
        for symbol in symbols:
            self.books.keeper(self.venue, symbol).resync_started()
        self.stats.resyncs += len(symbols)
        if self._rest_sync:
            for symbol in symbols:
                if symbol not in self._fetching:
                    task = asyncio.create_task(self._fetch_snapshot(slot, symbol), name=f"{self.venue}-snapshot")
                    self._fetching[symbol] = task
            return
        with contextlib.suppress(ConnectionClosed):
            await self._subscribe(link.ws, symbols, unsubscribe=True)
            await self._subscribe(link.ws, symbols)

    async def _fetch_snapshot(self, slot: _Slot, symbol: str) -> None:
        """GET the REST depth snapshot of ``symbol`` and apply it (the keeper replays the diffs it buffered)."""
        cfg = self.config
        try:
            venue_symbol = self._venue_symbols.get(symbol) or self.adapter.venue_symbol(symbol)
            url = self.adapter.snapshot_url(venue_symbol, cfg.snapshot_limit, base=cfg.rest_url)  # type: ignore[attr-defined]
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=cfg.snapshot_timeout_s)
            try:
                response = await self._http.get(url)
                response.raise_for_status()
                update = self.adapter.parse_snapshot(response.content, self.clock(), venue_symbol)  # type: ignore[attr-defined]
            except (httpx.HTTPError, adapters.ParseError) as exc:
                self.stats.snapshot_failures += 1
                self.stats.last_error = f"snapshot: {type(exc).__name__}: {exc}"
                _log.warning("%s: depth snapshot of %s failed: %s", self.venue, symbol, exc)
                with contextlib.suppress(TimeoutError):  # ask again, not in a tight loop
                    await asyncio.wait_for(self._stop.wait(), min(1.0, cfg.backoff_max_s))
                self.books.keeper(self.venue, symbol).request_resync()
                return
            self.stats.snapshots += 1
            rows = self.books.apply(update)
            link = slot.link
            if not rows.empty and link is not None and link.forwarding and not self._stop.is_set():
                await self._deliver(rows)
        finally:
            self._fetching.pop(symbol, None)

    async def _app_ping(self, link: _Link) -> None:
        payload = {
            "okx": "ping",
            "bybit": '{"op":"ping"}',
            "kraken": '{"method":"ping"}',
        }.get(self.venue)
        if payload is None:
            return
        self.stats.pings_sent += 1
        with contextlib.suppress(ConnectionClosed):
            await link.ws.send(payload)

    async def _close(self, link: _Link) -> None:
        # The closing handshake can queue behind a flood of data from the venue: give it 0.5 s, then abort.
        try:
            await asyncio.wait_for(link.ws.close(), 0.5)
        except Exception:
            with contextlib.suppress(Exception):
                link.ws.transport.abort()
        if link.pump is not None and not link.pump.done():
            link.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link.pump

    # -- receiving ------------------------------------------------------------------------------------------
    async def _pump(self, slot: _Slot, link: _Link) -> None:
        ws = link.ws
        handle = self._handle
        stage = self._stage
        stage_quote = self._stage_quote
        unbounded = self.queue.maxsize <= 0
        monotonic = time.monotonic
        columns = (self._columns or self._book_columns) and unbounded
        handle_columns = self._handle_quote_columns if self._columns else self._handle_book_columns
        try:
            while True:
                if columns:
                    read = await ws.recv_raw()
                    link.last_message = monotonic()
                    if handle_columns(slot, link, read):
                        continue
                    batch = read.payloads()
                else:
                    batch = await ws.recv_batch()
                    link.last_message = monotonic()
                if unbounded and self._batch_quotes and self._handle_quote_batch(slot, link, batch):
                    continue
                if unbounded and self._batch_books and self._handle_book_batch(slot, link, batch):
                    continue
                for raw in batch:
                    try:
                        out = handle(slot, link, raw)
                        if out is None:
                            continue
                        if unbounded:  # hand-off batched per event-loop turn; no coroutine per message
                            if out.__class__ is tuple:
                                stage_quote(out)  # type: ignore[arg-type]
                            else:
                                stage(out)  # type: ignore[arg-type]
                        else:
                            await self._emit(_as_rows(out))
                    except (ConnectionClosed, asyncio.CancelledError):
                        raise
                    except Exception as exc:  # a parser or book-keeper bug must not take the feed down
                        self.stats.internal_errors += 1
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                        _log.exception("%s: error handling message %r", self.venue, raw[:120])
        except ConnectionClosedOK:
            pass  # a clean close (1000/1001 both ways) is no error
        except ConnectionClosed as exc:
            if (exc.rcvd is not None and exc.rcvd.code == 1009) or (exc.sent is not None and exc.sent.code == 1009):
                self.stats.oversize += 1
            self.stats.last_error = f"closed: {exc}"

    def _parse_batch(self, parse: Callable[[list[bytes], int], list[_T] | None], batch: list[bytes]) -> list[_T] | None:
        """One adapter batch call (one ``ts_recv`` for the whole socket read); ``None`` when it declined.

        The adapters decline bad input instead of raising, so an exception here is a bug: counted and logged, and
        the batch then goes message by message.
        """
        try:
            out = parse(batch, self.clock())
        except Exception as exc:
            self.stats.internal_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            _log.exception("%s: error parsing a batch of %d messages", self.venue, len(batch))
            return None
        return out if out is not None and len(out) == len(batch) else None

    def _count_batch(self, batch: list[bytes]) -> None:
        stats = self.stats
        stats.messages += len(batch)
        stats.bytes += sum(map(len, batch))
        stats.data_messages += len(batch)

    def _read_columns(
        self, parse: Callable[[bytes, Any, Any, int], QuoteColumns | None], read: RawBatch
    ) -> QuoteColumns | None:
        """One compiled-parser call over a socket read; ``None`` when it declined (or, a bug, raised)."""
        try:
            cols = parse(read.buf, read.starts, read.ends, self.clock())
        except Exception as exc:  # the parsers decline bad input; an exception is a bug, counted like one
            self.stats.internal_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            _log.exception("%s: error parsing a read of %d messages", self.venue, len(read))
            return None
        return cols if cols is not None and len(cols) == len(read) else None

    def _count_read(self, read: RawBatch) -> None:
        stats = self.stats
        stats.messages += len(read)
        stats.bytes += int((read.ends - read.starts).sum())
        stats.data_messages += len(read)

    def _handle_quote_columns(self, slot: _Slot, link: _Link, read: RawBatch) -> bool:
        """A socket read parsed in place into columns by the compiled parser; False to take the other paths.

        The parser declines (``None``) exactly where :meth:`_handle_quote_batch` would (anything but plain two-sided
        tops of book of known symbols), so acks, errors and bad input still reach the per-message path.  Coinbase
        batches must continue the connection's ``sequence_num`` without a jump, as there.
        """
        if not len(read):
            return True
        cols = self._read_columns(self.adapter.parse_quote_columns, read)
        if cols is None:
            return False
        if self.venue == "coinbase":
            seq = cols.seq
            if cols.seq_valid is not None or link.last_sequence is None or int(seq[0]) != link.last_sequence + 1:
                return False
            if len(seq) > 1 and not bool((np.diff(seq) == 1).all()):
                return False
            link.last_sequence = int(seq[-1])
        self._count_read(read)
        if not link.forwarding and not self._forward_from(slot, link):
            return True
        self._stage_columns(cols)
        return True

    def _handle_book_columns(self, slot: _Slot, link: _Link, read: RawBatch) -> bool:
        """A socket read of one-level book snapshots (Bybit ``orderbook.1``) read as columns and applied to the
        keepers at once (:meth:`live.book.Books.apply_snapshot_columns`); False to take the other paths."""
        if not len(read):
            return True
        snapshots = self._read_columns(self.adapter.parse_book_columns, read)
        if snapshots is None:
            return False
        quotes = self.books.apply_snapshot_columns(snapshots)
        if quotes is None:
            return False
        self._count_read(read)
        if not link.forwarding and not self._forward_from(slot, link):
            return True
        if len(quotes):
            self._stage_columns(quotes)
        return True

    def _stage_columns(self, cols: QuoteColumns) -> None:
        """Hand a column batch over at once, after any tuple rows staged before it.

        A socket read is one queue item either way; putting it now rather than at the end of the loop turn saves
        the batcher one event-loop turn (a few hundred microseconds while the other feeds are busy).
        """
        self._last_columns.append(cols)
        if len(self._last_columns) >= 32:
            # fold: bounds what the pending batches hold on to; often, as releasing them is most of a fold's cost
            # (256 batches at once stalled the loop ~0.6 ms)
            _ = self.last_quotes
        if self._staged["quotes"]:
            self._flush()
        counts = self.stats.rows
        counts["quotes"] = counts.get("quotes", 0) + len(cols)
        self.queue.put_nowait(("quotes", cols))

    def _handle_quote_batch(self, slot: _Slot, link: _Link, batch: list[bytes]) -> bool:
        """Every message of ``batch`` as a top of book in one adapter call; False to go message by message.

        The adapter declines (``None``) unless every message is a plain two-sided top of book, so acks, errors,
        one-sided books and malformed input take the per-message path, where they are counted and logged one by
        one.  All messages of one socket read share one ``ts_recv``.  A Coinbase batch whose ``sequence_num``
        values do not continue the connection's goes message by message too, so the jump is found and flagged.
        """
        quotes = self._parse_batch(self.adapter.parse_quote_batch, batch)
        if quotes is None:
            return False
        if self.venue == "coinbase":
            first, last = quotes[0][8], quotes[-1][8]
            if first is None or last is None or link.last_sequence is None or first != link.last_sequence + 1:
                return False
            if last - first != len(quotes) - 1 or list(map(_SEQ, quotes)) != list(range(first, last + 1)):
                return False
            link.last_sequence = last
        self._count_batch(batch)
        if not link.forwarding and not self._forward_from(slot, link):
            return True
        self.last_quotes.update(zip(map(_SYMBOL, quotes), quotes, strict=True))  # the latest per symbol wins
        staged = self._staged["quotes"]
        staged.extend(quotes)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(staged) >= 8192:
            self._flush()
        return True

    def _handle_book_batch(self, slot: _Slot, link: _Link, batch: list[bytes]) -> bool:
        """Every message of ``batch`` as an order-book update in one adapter call, each through the book keeper.

        Like :meth:`_handle_quote_batch`: the adapter declines anything but plain book pushes, which then go
        message by message.  The keeper checks every update exactly as on the per-message path.
        """
        updates = self._parse_batch(self.adapter.parse_book_batch, batch)
        if updates is None:
            return False
        self._count_batch(batch)
        rows = self.books.apply_batch(updates, Rows())
        if not link.forwarding and not self._forward_from(slot, link):
            return True
        self._stage(rows)
        return True

    async def _on_message(self, slot: _Slot, link: _Link, raw: bytes) -> None:
        """Handle one received message and hand its rows over (what :meth:`_pump` does per message)."""
        out = self._handle(slot, link, raw)
        if out is not None:
            await self._deliver(_as_rows(out))

    def _handle(self, slot: _Slot, link: _Link, raw: bytes) -> Rows | QuoteRow | None:
        """Parse one message (book updates through the keeper); its rows, one quote tuple (fast path) or None."""
        stats = self.stats
        stats.messages += 1
        stats.bytes += len(raw)
        ts_recv = self.clock()
        # a lost Coinbase message leaves the connection's level2 books incomplete: flag them until re-synced
        if self.venue == "coinbase" and self._sequence_gap(link, raw) and link is slot.link:
            self.books.messages_lost(self.venue, slot.symbols)
        data = raw.startswith(self._data_prefixes)
        if not data and len(raw) < 512 and self._control(slot, link, raw):
            return None
        try:
            if data and self._fast_quotes:
                quote = self.adapter.parse_quote_tuple(raw, ts_recv)
                if quote is None:
                    return None
                stats.data_messages += 1
                if not link.forwarding and not self._forward_from(slot, link):
                    return None
                return quote
            rows = self.adapter.parse_rows(raw, ts_recv)
        except adapters.ParseError as exc:
            stats.parse_errors += 1
            if self._log_budget > 0 or stats.parse_errors % 1000 == 0:
                self._log_budget -= 1
                _log.warning("%s: unparseable message (%s): %r", self.venue, exc, raw[:120])
            return None
        if rows.empty:
            return None
        stats.data_messages += 1
        if rows.book_updates:
            # The keeper checks every book message; where the adapter already produced the top of book (or the
            # levels) from a self-contained book, the keeper's copies would be duplicates, so they are dropped.
            n_quotes, n_levels = len(rows.quotes), len(rows.book)
            self.books.apply_rows(rows)
            if n_quotes:
                del rows.quotes[n_quotes:]
            if n_levels:
                del rows.book[n_levels:]
        if not link.forwarding and not self._forward_from(slot, link):
            return None
        return rows

    def _forward_from(self, slot: _Slot, link: _Link) -> bool:
        """A data message on a connection not forwarding: the pending one takes over, an old one is dropped."""
        if slot.pending is link:
            self._switch(slot, link)
            return True
        self.stats.dropped_after_handover += 1
        return False

    def _sequence_gap(self, link: _Link, raw: bytes) -> bool:
        """True (and counted) when a connection-wide sequence number jumped: messages were lost."""
        m = _COINBASE_SEQUENCE.search(raw, 0, 300)
        if m is None:
            return False
        seq = int(m.group(1))
        last, link.last_sequence = link.last_sequence, seq
        if last is None or seq == last + 1:
            return False
        self.stats.sequence_gaps += 1
        _log.warning("%s: sequence jumped from %d to %d: messages lost", self.venue, last, seq)
        return True

    def _control(self, slot: _Slot, link: _Link, raw: bytes) -> bool:
        """Handle acks, shutdown notices and heartbeat requests; True when the message needs no parsing."""
        venue = self.venue
        for marker in _ACK_MARKERS.get(venue, ()):
            if marker in raw:
                self.stats.acks += 1
                slot.acked.set()
                return True
        for marker in _SHUTDOWN_MARKERS.get(venue, ()):
            if marker in raw:
                self.stats.shutdown_notices += 1
                if link is slot.link:
                    slot.handover.set()
                return True
        if venue == "deribit" and b'"test_request"' in raw:
            msg = orjson.dumps(_deribit_request(9_001, "public/test", {})).decode()
            asyncio.get_running_loop().create_task(_send_quietly(link.ws, msg))
            return True
        return False

    def _stage_quote(self, row: QuoteRow) -> None:
        """Queue one quote for the next hand-off (fast path of :meth:`_stage`)."""
        self.last_quotes[row[3]] = row
        staged = self._staged["quotes"]
        staged.append(row)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(staged) >= 8192:
            self._flush()

    def _stage(self, rows: Rows) -> None:
        """Queue a message's rows for the next hand-off.

        The hand-off (:meth:`_flush`) runs once the receiving task yields to the event loop, i.e. after every
        message already received has been parsed: the batcher gets one list per table per loop turn instead of
        one queue item (and one wake-up) per message.  Order within each table is kept.
        """
        staged = self._staged
        if rows.quotes:
            last = self.last_quotes
            for row in rows.quotes:
                last[row[3]] = row
            staged["quotes"].extend(rows.quotes)
        if rows.trades:
            staged["trades"].extend(rows.trades)
        if rows.book:
            staged["book"].extend(rows.book)
        if rows.funding:
            staged["funding"].extend(rows.funding)
        if rows.option_quotes:
            staged["option_quotes"].extend(rows.option_quotes)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(staged["quotes"]) >= 8192:
            self._flush()

    def _flush(self) -> None:
        """Put the staged rows on the queue, one ``(table, rows)`` item per table (unbounded queues only)."""
        self._flush_scheduled = False
        counts = self.stats.rows
        for table, data in self._staged.items():
            if data:
                counts[table] = counts.get(table, 0) + len(data)
                self.queue.put_nowait((table, data))
                self._staged[table] = []

    async def _deliver(self, rows: Rows) -> None:
        """Hand rows over: staged when the queue is unbounded, else put in order (waiting while it is full)."""
        if self.queue.maxsize <= 0:
            self._stage(rows)
        else:
            await self._emit(rows)

    async def _emit(self, rows: Rows) -> None:
        counts = self.stats.rows
        unbounded = self.queue.maxsize <= 0  # put_nowait cannot fail: skip the coroutine round trip of put
        quotes = rows.quotes
        if quotes:
            last = self.last_quotes
            for row in quotes:
                last[row[3]] = row
            counts["quotes"] = counts.get("quotes", 0) + len(quotes)
            if unbounded:
                self.queue.put_nowait(("quotes", quotes))
            else:
                await self.queue.put(("quotes", quotes))
            if not (rows.trades or rows.book or rows.funding or rows.option_quotes):
                return
        for table in ("trades", "book", "funding", "option_quotes"):
            data: list[Any] = getattr(rows, table)
            if data:
                counts[table] = counts.get(table, 0) + len(data)
                if unbounded:
                    self.queue.put_nowait((table, data))
                else:
                    await self.queue.put((table, data))

    def _flag_all(self, flags: int) -> None:
        """Re-emit every last-known quote of the venue with ``flags`` set, received now."""
        self._flush()  # rows received before the flagging go first
        if not self.last_quotes:
            return
        now = self.clock()
        rows = [(*row[:1], now, *row[2:9], int(row[9]) | flags) for row in self.last_quotes.values()]
        self.stats.stale_rows += len(rows)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(("quotes", rows))


def _as_rows(out: Rows | QuoteRow) -> Rows:
    if isinstance(out, Rows):
        return out
    rows = Rows()
    rows.quotes.append(out)
    return rows


def _deribit_request(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


async def _send_quietly(ws: FeedConnection, msg: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(msg)


def _unsubscribe_message(subscribe: bytes) -> bytes:
    """Turn a venue subscribe request into the matching unsubscribe request."""
    msg = orjson.loads(subscribe)
    if msg.get("method") == "SUBSCRIBE":
        msg["method"] = "UNSUBSCRIBE"
    elif msg.get("op") == "subscribe":
        msg["op"] = "unsubscribe"
    elif msg.get("type") == "subscribe":
        msg["type"] = "unsubscribe"
    elif msg.get("method") == "subscribe":
        msg["method"] = "unsubscribe"
    elif msg.get("method") == "public/subscribe":
        msg["method"] = "public/unsubscribe"
    else:
        raise ValueError(f"cannot derive an unsubscribe request from {subscribe[:100]!r}")
    return orjson.dumps(msg)


async def run_connectors(
    configs: Sequence[ConnectorConfig], queue: asyncio.Queue[FeedItem], stop: asyncio.Event
) -> list[Connector]:
    """Run one :class:`Connector` per config until ``stop`` is set; returns them (with their stats)."""
    connectors = [Connector(c, queue) for c in configs]
    await asyncio.gather(*(c.run(stop) for c in connectors))
    return connectors
