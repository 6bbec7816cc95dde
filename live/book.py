"""Order-book keeper: applies venue book messages by each venue's rules and says when the book can be trusted.

A :class:`BookKeeper` holds one instrument's book on one venue.  It consumes :class:`live.adapters.BookUpdate`
objects (what the adapters parse from book channels and REST snapshots) and, after each one, can emit the top of
book as a ``QUOTES`` row and the top-N levels as ``BOOK`` rows, with :class:`arbkit.schema.QuoteFlag` integrity
bits:

* ``UNVERIFIED`` until the book is synced to a snapshot;
* ``RESYNCING`` after a sequence gap or a checksum mismatch, until a fresh snapshot arrives;
* ``CROSSED`` when the best bid is above the best ask;
* ``STALE`` when no update came for longer than the venue's ``max_age`` (or the venue's event time lags the
  receive time by more than that).

Checksums are never trusted alone: sequence continuity, crossed books and staleness are checked as well.
When the keeper loses sync it sets :attr:`BookKeeper.needs_resync`; the connector then fetches a snapshot
(Binance) or re-subscribes (the others) and calls :meth:`BookKeeper.resync_started`.

Venue rules (``BookUpdate.rule``)
---------------------------------
``binance_spot``
    Diff events are buffered until the REST snapshot (``lastUpdateId`` L) arrives; buffered events with
    ``u <= L`` are dropped, the first applied one must satisfy ``U <= L+1 <= u``, and each next one must start
    at ``U == previous u + 1``.
``binance_futures``
    As spot, but events with ``u < L`` are dropped, the first applied one must satisfy ``U <= L <= u`` and each
    next one ``pu == previous u``.
``okx``
    ``action=snapshot`` resets the book; an update continues it only if its ``prevSeqId`` is the previous
    ``seqId`` (compared by identity: OKX sequence ids are not consecutive).  The CRC32 over the top 25 levels
    (``bid:size:ask:size`` interleaved, the venue's own strings) must match, except that a checksum of 0 means
    "not sent" (OKX is deprecating it) and is not a failure.
``bybit``
    A snapshot resets the book; a delta with ``u == 1`` is a service-restart snapshot and overwrites it; other
    deltas must have increasing ``u``.
``kraken``
    A snapshot resets the book; after each update the book is cut to the subscribed depth; the CRC32 over the
    top 10 asks then top 10 bids (price and quantity at the pair's precision, '.' removed, leading zeros
    stripped) must match the stated checksum.
``deribit``
    A snapshot resets the book; a change continues it only if ``prev_change_id`` is the previous
    ``change_id``.
``coinbase``
    A snapshot resets the book; updates apply in ``sequence_num`` order (the number counts the whole
    connection, so per-book gaps cannot be seen here: the connector checks the connection-wide sequence).
``replace``
    Self-contained partial books (Binance depth5/10/20, OKX books5): each message replaces the book.

In every rule a quantity of 0 deletes the level.

Examples
--------
>>> from live.adapters import BookUpdate
>>> keeper = BookKeeper("okx", "BTC/USDT")
>>> snap = BookUpdate("okx", "BTC/USDT", "okx", True, ((100.0, 1.0, "100", "1"),), ((101.0, 2.0, "101", "2"),),
...                   ts_event=1, ts_recv=2, seq=10, prev_seq=-1, checksum=0)
>>> keeper.apply(snap)[4:9], keeper.counters.gaps
((100.0, 1.0, 101.0, 2.0, 10), 0)
>>> gap = BookUpdate("okx", "BTC/USDT", "okx", False, ((100.0, 0.0, "100", "0"),), (), 3, 4, seq=12, prev_seq=11)
>>> keeper.apply(gap)[9] & QuoteFlag.RESYNCING != 0, keeper.needs_resync, keeper.counters.gaps
(True, True, 1)
"""

from __future__ import annotations

import heapq
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from arbkit.instruments import Registry, default_registry
from arbkit.schema import QuoteFlag
from live._book_kernels import apply_snapshots, present_groups
from live.adapters._base import BookRow, BookUpdate, Level, QuoteRow, Rows, level_quote
from live.adapters._columns import QuoteColumns

__all__ = [
    "BookCounters",
    "BookKeeper",
    "Books",
    "kraken_checksum",
    "okx_checksum",
]

_UNVERIFIED = int(QuoteFlag.UNVERIFIED)
_RESYNCING = int(QuoteFlag.RESYNCING)
_CROSSED = int(QuoteFlag.CROSSED)
_STALE = int(QuoteFlag.STALE)


def _price(level: Level) -> float:
    return level[0]


def okx_checksum(bids: Iterable[Level], asks: Iterable[Level]) -> int:
    """OKX's signed CRC32 over the top 25 levels, ``bid:size:ask:size`` interleaved, using the venue's strings.

    ``bids`` best (highest) first, ``asks`` best (lowest) first.

    Examples
    --------
    >>> okx_checksum([], [(0.0005, 305.0, "0.0005", "305"), (0.001, 550.0, "0.001", "550")])
    971343753
    """
    bid_list = list(bids)[:25]
    ask_list = list(asks)[:25]
    parts: list[str] = []
    for i in range(max(len(bid_list), len(ask_list))):
        if i < len(bid_list):
            parts.append(bid_list[i][2])
            parts.append(bid_list[i][3])
        if i < len(ask_list):
            parts.append(ask_list[i][2])
            parts.append(ask_list[i][3])
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def _kraken_text(value: float, text: str, precision: int | None) -> str:
    out = f"{value:.{precision}f}" if precision is not None else text
    return out.replace(".", "").lstrip("0")


def kraken_checksum(
    bids: Iterable[Level], asks: Iterable[Level], price_precision: int | None, size_precision: int | None
) -> int:
    """Kraken v2's unsigned CRC32 over the top 10 asks (lowest first) then the top 10 bids (highest first).

    Each price and quantity is written at the pair's precision (the venue's own text when the precision is
    ``None``), with '.' removed and leading zeros stripped.

    Examples
    --------
    >>> bids = [(105944.2, 0.136, "", ""), (105935.4, 0.024, "", ""), (105920.1, 0.052, "", "")]
    >>> asks = [(105944.3, 0.136, "", ""), (105946.9, 0.095, "", ""), (105955.8, 0.003, "", "")]
    >>> kraken_checksum(bids, asks, 1, 8)
    2278726247
    """
    parts: list[str] = []
    for side in (list(asks)[:10], list(bids)[:10]):
        for price, size, price_text, size_text in side:
            parts.append(_kraken_text(price, price_text, price_precision))
            parts.append(_kraken_text(size, size_text, size_precision))
    return zlib.crc32("".join(parts).encode())


@dataclass(slots=True)
class BookCounters:
    """What happened to one book (or, summed, to all of them): the connector exports these as metrics."""

    messages: int = 0
    applied: int = 0
    snapshots: int = 0
    dropped: int = 0  # stale or pre-snapshot updates ignored by the venue rule
    buffered: int = 0  # Binance diffs held until the REST snapshot
    gaps: int = 0
    checksum_failures: int = 0
    resyncs: int = 0  # times a resync was requested
    crossed: int = 0  # updates after which the book was crossed
    stale: int = 0  # quotes emitted with STALE set

    def add(self, other: BookCounters) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class BookKeeper:
    """One instrument's order book on one venue, maintained by the venue's rule (see the module docstring).

    Parameters
    ----------
    exchange, symbol : str
        CCXT exchange id and unified symbol (rows carry them).
    depth : int
        Levels per side emitted by :meth:`book_rows`, and the depth Kraken books are cut to (its checksum
        covers the subscribed depth).
    max_age_ns : int, optional
        Staleness threshold; defaults to the venue profile's ``max_age`` in ``registry``.
    buffer_limit : int
        Most Binance diffs held while waiting for a snapshot; beyond it the oldest are dropped and a resync is
        requested, so memory never grows without bound.
    price_precision, size_precision : int, optional
        Kraken checksum precisions; by default those the update carries (the adapter's instrument table), else
        the numbers' text as the venue sent it.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        *,
        depth: int = 10,
        max_age_ns: int | None = None,
        registry: Registry | None = None,
        buffer_limit: int = 10_000,
        price_precision: int | None = None,
        size_precision: int | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.exchange = exchange
        self.symbol = symbol
        self.depth = depth
        if max_age_ns is None:
            profile = (registry or default_registry()).profile(exchange)
            max_age_ns = int(profile.max_age_ms * 1_000_000)
        self.max_age_ns = max_age_ns
        self.buffer_limit = buffer_limit
        self.price_precision = price_precision
        self.size_precision = size_precision
        self.counters = BookCounters()
        self.bids: dict[float, Level] = {}
        self.asks: dict[float, Level] = {}
        # best prices cached between updates; None + dirty flag = recompute on next read (a scan of the side)
        self._best_bid: float | None = None
        self._best_ask: float | None = None
        self._bid_dirty = False
        self._ask_dirty = False
        self.synced = False  # a snapshot has been applied and continuity holds since
        self.resyncing = False  # lost sync after having had it (gap or checksum failure)
        self._resync_requested = False
        self.last_seq: int | None = None
        self.ts_event = 0
        self.ts_recv = 0
        self._lagging = False
        self._expect_first = False  # Binance: next diff is the first after the snapshot
        self._buffer: deque[BookUpdate] = deque()

    # -- state ----------------------------------------------------------------------------------------------
    @property
    def needs_resync(self) -> bool:
        """True when the connector should fetch a snapshot (Binance) or re-subscribe (other venues)."""
        return self._resync_requested

    def resync_started(self) -> None:
        """The connector acted on :attr:`needs_resync`; the book stays flagged until the snapshot arrives."""
        self._resync_requested = False

    def messages_lost(self) -> None:
        """Messages were lost on the connection carrying this book (a connection-wide sequence number jumped, as
        Coinbase's ``sequence_num``, or the connection dropped): the book cannot be trusted any more.

        Counted as a gap; a synced book is flagged ``RESYNCING`` (a never-synced one stays ``UNVERIFIED``) until a
        snapshot arrives, and :attr:`needs_resync` asks the connector for one.
        """
        self._lose_sync("gaps")

    def request_resync(self) -> None:
        """Ask again for a snapshot (e.g. a REST snapshot fetch failed); the book's flags do not change."""
        if not self._resync_requested:
            self._resync_requested = True
            self.counters.resyncs += 1

    def _lose_sync(self, counter: str) -> None:
        setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        if self.synced:
            self.resyncing = True
        self.synced = False
        self._expect_first = False
        if not self._resync_requested:
            self._resync_requested = True
            self.counters.resyncs += 1

    def _reset(self, update: BookUpdate) -> None:
        self.bids = {lv[0]: lv for lv in update.bids if lv[1] > 0.0}
        self.asks = {lv[0]: lv for lv in update.asks if lv[1] > 0.0}
        self._bid_dirty = self._ask_dirty = True
        self.counters.snapshots += 1
        self.synced = True
        self.resyncing = False
        self._resync_requested = False
        self.last_seq = update.seq

    def _apply_levels(self, update: BookUpdate) -> None:
        bids, asks = self.bids, self.asks
        for lv in update.bids:
            price = lv[0]
            if lv[1] > 0.0:
                bids[price] = lv
                if not self._bid_dirty and (self._best_bid is None or price > self._best_bid):
                    self._best_bid = price
            elif bids.pop(price, None) is not None and price == self._best_bid:
                self._bid_dirty = True
        for lv in update.asks:
            price = lv[0]
            if lv[1] > 0.0:
                asks[price] = lv
                if not self._ask_dirty and (self._best_ask is None or price < self._best_ask):
                    self._best_ask = price
            elif asks.pop(price, None) is not None and price == self._best_ask:
                self._ask_dirty = True
        self.last_seq = update.seq

    # -- applying -------------------------------------------------------------------------------------------
    def apply(self, update: BookUpdate) -> QuoteRow | None:
        """Apply one update by its venue rule; the top-of-book quote after it, ``None`` while nothing is known.

        Updates for another exchange/symbol raise ``ValueError`` (a routing bug, not bad data).
        """
        if update.exchange != self.exchange or update.symbol != self.symbol:
            raise ValueError(f"update for {update.exchange}:{update.symbol} sent to {self.exchange}:{self.symbol}")
        self.counters.messages += 1
        rule = update.rule
        if rule in ("binance_spot", "binance_futures"):
            self._apply_binance(update, futures=rule == "binance_futures")
        elif rule == "okx":
            self._apply_chained(update, check_prev=True)
            if self.synced and update.checksum:  # 0 / None: OKX no longer sends one, not a failure
                expected = okx_checksum(self.sorted_bids(25), self.sorted_asks(25))
                if expected != update.checksum:
                    self._lose_sync("checksum_failures")
        elif rule == "deribit":
            self._apply_chained(update, check_prev=True)
        elif rule == "bybit":
            self._apply_bybit(update)
        elif rule == "coinbase":
            self._apply_monotonic(update)
        elif rule == "kraken":
            self._apply_monotonic(update)
            if self.synced:
                self._truncate(update.depth or self.depth)
                if update.checksum is not None:
                    price_precision = self.price_precision
                    if price_precision is None:
                        price_precision = update.price_precision
                    size_precision = self.size_precision
                    if size_precision is None:
                        size_precision = update.size_precision
                    expected = kraken_checksum(
                        self.sorted_bids(10), self.sorted_asks(10), price_precision, size_precision
                    )
                    if expected != update.checksum:
                        self._lose_sync("checksum_failures")
        elif rule == "replace":
            self._reset(update)
            self.counters.applied += 1
        else:
            raise ValueError(f"unknown book rule {rule!r}")
        self.ts_event = max(self.ts_event, update.ts_event)
        self.ts_recv = max(self.ts_recv, update.ts_recv)
        self._lagging = update.ts_recv - update.ts_event > self.max_age_ns
        if not self.synced and not self.resyncing:
            return None
        quote = self.quote()
        if quote[9] & _CROSSED:
            self.counters.crossed += 1
        return quote

    def replaces(self, update: BookUpdate) -> bool:
        """True when ``update`` replaces the whole book unchecked: a Bybit snapshot (or ``u == 1`` delta) or a
        ``replace`` partial book, the updates :meth:`replace_with` applies."""
        rule = update.rule
        return (rule == "bybit" and (update.is_snapshot or update.seq == 1)) or rule == "replace"

    def replace_with(self, update: BookUpdate, quotes: list[QuoteRow], book: list[BookRow] | None) -> None:
        """:meth:`apply` of an update for which :meth:`replaces` is true, in one pass: the same state, counters
        and quote (appended to ``quotes``), and :meth:`book_rows` appended to ``book`` when given.

        A Bybit ``orderbook.1`` feed is nothing but such snapshots; going through the general path (rule
        dispatch, reset, cached-best bookkeeping, flags computed twice, levels sorted per message) costs
        several times more for the same rows.
        """
        if update.exchange != self.exchange or update.symbol != self.symbol:
            raise ValueError(f"update for {update.exchange}:{update.symbol} sent to {self.exchange}:{self.symbol}")
        counters = self.counters
        counters.messages += 1
        counters.snapshots += 1
        counters.applied += 1
        new_bids, new_asks = update.bids, update.asks
        bid: Level | None
        ask: Level | None
        one_level = len(new_bids) == 1 and len(new_asks) == 1  # orderbook.1: no comprehensions, no sorts
        if one_level and new_bids[0][1] > 0.0 and new_asks[0][1] > 0.0:
            bid, ask = new_bids[0], new_asks[0]
            bids, asks = {bid[0]: bid}, {ask[0]: ask}
        else:
            one_level = False
            bids = {lv[0]: lv for lv in new_bids if lv[1] > 0.0}
            asks = {lv[0]: lv for lv in new_asks if lv[1] > 0.0}
            bid = bids[max(bids)] if bids else None
            ask = asks[min(asks)] if asks else None
        self.bids, self.asks = bids, asks
        best_bid = self._best_bid = bid[0] if bid else None
        best_ask = self._best_ask = ask[0] if ask else None
        self._bid_dirty = self._ask_dirty = False
        self.synced = True
        self.resyncing = False
        self._resync_requested = False
        seq = self.last_seq = update.seq
        ts_event = self.ts_event = max(self.ts_event, update.ts_event)
        ts_recv = self.ts_recv = max(self.ts_recv, update.ts_recv)
        lagging = self._lagging = update.ts_recv - update.ts_event > self.max_age_ns
        flags = 0
        if lagging:
            flags = _STALE
            counters.stale += 1
        if best_bid is not None and best_ask is not None and best_bid > best_ask:
            flags |= _CROSSED
            counters.crossed += 1
        exchange, symbol = self.exchange, self.symbol
        quotes.append(level_quote(ts_event, ts_recv, exchange, symbol, bid, ask, seq, flags))
        if book is None:
            return
        if one_level and bid is not None and ask is not None:
            book.append((ts_event, ts_recv, exchange, symbol, "bid", 0, bid[0], bid[1], seq, flags))
            book.append((ts_event, ts_recv, exchange, symbol, "ask", 0, ask[0], ask[1], seq, flags))
            return
        depth = self.depth
        for side, levels in (("bid", self.sorted_bids(depth)), ("ask", self.sorted_asks(depth))):
            for i, lv in enumerate(levels):
                book.append((ts_event, ts_recv, exchange, symbol, side, i, lv[0], lv[1], seq, flags))

    def _apply_chained(self, update: BookUpdate, *, check_prev: bool) -> None:
        if update.is_snapshot:
            self._reset(update)
            self.counters.applied += 1
            return
        if not self.synced:
            self.counters.dropped += 1
            return
        if check_prev and (update.prev_seq is None or update.prev_seq != self.last_seq):
            self._lose_sync("gaps")
            return
        self._apply_levels(update)
        self.counters.applied += 1

    def _apply_monotonic(self, update: BookUpdate) -> None:
        if update.is_snapshot:
            self._reset(update)
            self.counters.applied += 1
            return
        if not self.synced:
            self.counters.dropped += 1
            return
        if update.seq is not None and self.last_seq is not None and update.seq <= self.last_seq:
            self._lose_sync("gaps")
            return
        self._apply_levels(update)
        self.counters.applied += 1

    def _apply_bybit(self, update: BookUpdate) -> None:
        if update.is_snapshot or update.seq == 1:  # u == 1: the service restarted, this is a fresh snapshot
            self._reset(update)
            self.counters.applied += 1
            return
        self._apply_monotonic(update)

    def _truncate(self, depth: int) -> None:
        if len(self.bids) > depth:
            self.bids = {lv[0]: lv for lv in self.sorted_bids(depth)}
        if len(self.asks) > depth:
            self.asks = {lv[0]: lv for lv in self.sorted_asks(depth)}

    @property
    def best_bid(self) -> float | None:
        """Highest bid price, ``None`` when the side is empty."""
        if self._bid_dirty:
            self._best_bid = max(self.bids) if self.bids else None
            self._bid_dirty = False
        return self._best_bid

    @property
    def best_ask(self) -> float | None:
        """Lowest ask price, ``None`` when the side is empty."""
        if self._ask_dirty:
            self._best_ask = min(self.asks) if self.asks else None
            self._ask_dirty = False
        return self._best_ask

    def _apply_binance(self, update: BookUpdate, *, futures: bool) -> None:
        if update.is_snapshot:
            self._reset(update)
            self.counters.applied += 1
            self._expect_first = True
            pending = list(self._buffer)
            self._buffer.clear()
            for k, diff in enumerate(pending):
                if not self.synced:  # the snapshot was too old: the rest waits for the next one
                    self._buffer.extend(pending[k:])
                    break
                self._binance_diff(diff, futures=futures)
            return
        if not self.synced:
            self._hold(update)
            return
        self._binance_diff(update, futures=futures)

    def _hold(self, update: BookUpdate) -> None:
        """Buffer a Binance diff until the REST snapshot arrives (bounded by ``buffer_limit``)."""
        if len(self._buffer) >= self.buffer_limit:
            self._buffer.popleft()
            self.counters.dropped += 1
            if not self._resync_requested:
                self._resync_requested = True
                self.counters.resyncs += 1
        self._buffer.append(update)
        self.counters.buffered += 1
        if not self._resync_requested and self.counters.snapshots == 0 and len(self._buffer) == 1:
            self._resync_requested = True  # Binance never pushes a snapshot: ask for the REST one
            self.counters.resyncs += 1

    def _binance_diff(self, update: BookUpdate, *, futures: bool) -> None:
        first, last = update.first_seq, update.seq
        if first is None or last is None or self.last_seq is None:
            self._lose_sync("gaps")
            return
        if last < self.last_seq or (last == self.last_seq and not (futures and self._expect_first)):
            # already in the snapshot (spot: u <= L; futures: u < L, the event ending at L is the first one)
            self.counters.dropped += 1
            return
        if self._expect_first:
            start = self.last_seq if futures else self.last_seq + 1  # spot: U <= L+1 <= u; USD-M: U <= L <= u
            ok = first <= start <= last
        elif futures:
            ok = update.prev_seq == self.last_seq
        else:
            ok = first == self.last_seq + 1
        if not ok:
            # a break in the ids (or a snapshot older than the first event held): restart the docs' procedure,
            # this event being the first of the new buffer
            self._lose_sync("gaps")
            self._hold(update)
            return
        self._expect_first = False
        self._apply_levels(update)
        self.counters.applied += 1

    # -- reading --------------------------------------------------------------------------------------------
    def sorted_bids(self, n: int | None = None) -> list[Level]:
        """Bid levels, best (highest) first (the top ``n`` when given)."""
        if n is not None and n * 4 < len(self.bids):
            return heapq.nlargest(n, self.bids.values(), key=_price)
        return sorted(self.bids.values(), key=_price, reverse=True)[:n]

    def sorted_asks(self, n: int | None = None) -> list[Level]:
        """Ask levels, best (lowest) first (the top ``n`` when given)."""
        if n is not None and n * 4 < len(self.asks):
            return heapq.nsmallest(n, self.asks.values(), key=_price)
        return sorted(self.asks.values(), key=_price)[:n]

    def flags(self, now_ns: int | None = None) -> int:
        """Integrity bits of the book as of ``now_ns`` (receive clock; last update time when ``None``)."""
        out = 0
        if self.resyncing:
            out |= _RESYNCING
        elif not self.synced:
            out |= _UNVERIFIED
        if self._lagging or (now_ns is not None and now_ns - self.ts_recv > self.max_age_ns):
            out |= _STALE
        bid, ask = self.best_bid, self.best_ask
        if bid is not None and ask is not None and bid > ask:
            out |= _CROSSED
        return out

    def quote(self, now_ns: int | None = None) -> QuoteRow:
        """The top of book as a ``QUOTES`` row (absent sides ``None``), flagged as of ``now_ns``."""
        best_bid, best_ask = self.best_bid, self.best_ask
        bid = self.bids[best_bid] if best_bid is not None else None
        ask = self.asks[best_ask] if best_ask is not None else None
        flags = self.flags(now_ns)
        if flags & _STALE:
            self.counters.stale += 1
        ts_recv = self.ts_recv if now_ns is None else max(now_ns, self.ts_recv)
        return level_quote(self.ts_event, ts_recv, self.exchange, self.symbol, bid, ask, self.last_seq, flags)

    def book_rows(self, n: int | None = None, now_ns: int | None = None) -> list[BookRow]:
        """The top ``n`` levels per side (``depth`` by default) as ``BOOK`` rows, flagged like :meth:`quote`."""
        n = self.depth if n is None else n
        flags = self.flags(now_ns)
        ts_recv = self.ts_recv if now_ns is None else max(now_ns, self.ts_recv)
        rows: list[BookRow] = []
        for side, levels in (("bid", self.sorted_bids(n)), ("ask", self.sorted_asks(n))):
            for i, lv in enumerate(levels):
                rows.append(
                    (self.ts_event, ts_recv, self.exchange, self.symbol, side, i, lv[0], lv[1], self.last_seq, flags)
                )
        return rows

    def is_stale(self, now_ns: int) -> bool:
        """True when the last update is older than ``max_age_ns`` at ``now_ns`` (receive clock)."""
        return now_ns - self.ts_recv > self.max_age_ns


class _SymbolGroups:
    """One symbol table of :class:`QuoteColumns` (``names``, indexed by symbol code) grouped by unified symbol, as
    :meth:`Books.apply_snapshot_columns` passes it to its kernels, with scratch for the groups a read names.

    Built once per table: an adapter hands out the same ``names`` list until its table is rebuilt.
    """

    __slots__ = ("code_group", "floor", "keys", "max_age", "names", "present", "size")

    def __init__(self, exchange: str, names: list[str]) -> None:
        index: dict[str, int] = {}
        self.code_group = np.array([index.setdefault(name, len(index)) for name in names], dtype=np.int64)
        self.names = names
        self.size = len(names)
        self.keys = [(exchange, name) for name in index]
        self.present = np.zeros(len(index), dtype=np.int64)  # groups named by a read, by first row
        self.floor = np.zeros(len(index), dtype=np.int64)  # per present group: its keeper's ts_event
        self.max_age = np.zeros(len(index), dtype=np.int64)  # and max_age_ns


class Books:
    """Every book of a connection, keyed by ``(exchange, symbol)``: route updates, collect rows and resyncs.

    Examples
    --------
    >>> from live import adapters
    >>> books = Books(depth=5)
    >>> ad = adapters.get("bybit")
    >>> raw = (b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1700000000000,'
    ...        b'"data":{"s":"BTCUSDT","b":[["100","1"]],"a":[["101","2"]],"u":5,"seq":9}}')
    >>> rows = books.apply(ad.parse_rows(raw, ts_recv=1_700_000_000_001_000_000).book_update)
    >>> rows.quotes[0][3:9], len(rows.book)
    (('BTC/USDT:USDT', 100.0, 1.0, 101.0, 2.0, 5), 2)
    """

    def __init__(
        self,
        *,
        depth: int = 10,
        registry: Registry | None = None,
        max_age_ns: dict[str, int] | None = None,
        emit_levels: bool = True,
    ) -> None:
        self.depth = depth
        self.registry = registry or default_registry()
        self.max_age_ns = dict(max_age_ns or {})
        self.emit_levels = emit_levels
        self.keepers: dict[tuple[str, str], BookKeeper] = {}
        self._snapshot_groups: dict[str, _SymbolGroups] = {}  # apply_snapshot_columns' view of each symbol table

    def keeper(self, exchange: str, symbol: str) -> BookKeeper:
        """The keeper of one book, created on first use."""
        key = (exchange, symbol)
        hit = self.keepers.get(key)
        if hit is None:
            hit = BookKeeper(
                exchange, symbol, depth=self.depth, registry=self.registry, max_age_ns=self.max_age_ns.get(exchange)
            )
            self.keepers[key] = hit
        return hit

    def apply(self, update: BookUpdate | None, rows: Rows | None = None) -> Rows:
        """Apply an update (``None`` is a no-op) and append the resulting quote and levels to ``rows``."""
        out = rows if rows is not None else Rows()
        if update is None:
            return out
        keeper = self.keeper(update.exchange, update.symbol)
        quote = keeper.apply(update)
        if quote is not None:
            out.quotes.append(quote)
            if self.emit_levels:
                out.book.extend(keeper.book_rows())
        return out

    def apply_batch(self, updates: Iterable[BookUpdate], rows: Rows) -> Rows:
        """:meth:`apply` each update in order, appending to ``rows``: the same rows, counters and book states.

        Updates that replace their book unchecked (:meth:`BookKeeper.replaces`) take the keeper's one-pass
        :meth:`BookKeeper.replace_with`; the others the general rule.
        """
        keepers = self.keepers
        quotes = rows.quotes
        book = rows.book if self.emit_levels else None
        for update in updates:
            keeper = keepers.get((update.exchange, update.symbol)) or self.keeper(update.exchange, update.symbol)
            if keeper.replaces(update):
                keeper.replace_with(update, quotes, book)
            else:
                self.apply(update, rows)
        return rows

    def apply_snapshot_columns(self, snapshots: QuoteColumns) -> QuoteColumns | None:
        """:meth:`apply_batch` of one-level book snapshots read as columns
        (:meth:`~live.adapters.Adapter.parse_book_columns`): the quotes the keepers emit, as columns.

        Every row replaces its book unchecked, as :meth:`BookKeeper.replace_with` does one update at a time:
        afterwards each keeper holds its last snapshot's levels (texts included), update id, times, flags and
        counters exactly as if the updates had gone through :meth:`apply_batch`.  ``None``, with nothing
        changed, when the rows cannot be applied that way: book levels are wanted (``emit_levels``), the columns
        carry no level texts, or a keeper already saw a later receive time (its quotes would not share one
        ``ts_recv``); the caller then parses and applies message by message.
        """
        # Runs on the event loop for every Bybit read: the per-row work is compiled (live/_book_kernels.py), and
        # Python touches each symbol's keeper once.
        texts = snapshots.level_texts
        if self.emit_levels or texts is None:
            return None
        exchange, ts_recv, names = snapshots.exchange, snapshots.ts_recv, snapshots.symbols
        groups = self._snapshot_groups.get(exchange)
        if groups is None or groups.names is not names or groups.size != len(names):
            groups = self._snapshot_groups[exchange] = _SymbolGroups(exchange, names)
        codes = snapshots.symbol_code
        k = present_groups(codes, groups.code_group, groups.present)
        if k < 0:
            raise IndexError(f"symbol code outside the {len(names)} symbols of the columns")
        present = groups.present[:k].tolist()
        keys, keepers = groups.keys, self.keepers
        found = [keepers.get(keys[g]) for g in present]
        for keeper in found:
            if keeper is not None and keeper.ts_recv > ts_recv:
                return None
        floor, max_age = groups.floor, groups.max_age
        touched: list[BookKeeper] = []
        for j, hit in enumerate(found):
            keeper = hit or self.keeper(*keys[present[j]])
            floor[j] = keeper.ts_event
            max_age[j] = keeper.max_age_ns
            touched.append(keeper)
        buf, spans = texts
        ts_event, flags, summary, levels = apply_snapshots(
            codes,
            groups.code_group,
            groups.present,
            k,
            floor,
            max_age,
            ts_recv,
            snapshots.ts_event,
            snapshots.flags,
            snapshots.bid,
            snapshots.bid_size,
            snapshots.ask,
            snapshots.ask_size,
            snapshots.seq,
            spans,
        )
        for keeper, row, (bid_price, bid_size, ask_price, ask_size) in zip(
            touched, summary.tolist(), levels.tolist(), strict=True
        ):
            _, count, stale, crossed, last_ts_event, lagging, seq, *s = row  # the kernel's summary columns
            bid: Level = (bid_price, bid_size, buf[s[0] : s[1]].decode(), buf[s[2] : s[3]].decode())
            ask: Level = (ask_price, ask_size, buf[s[4] : s[5]].decode(), buf[s[6] : s[7]].decode())
            keeper.bids, keeper.asks = {bid_price: bid}, {ask_price: ask}
            keeper._best_bid, keeper._best_ask = bid_price, ask_price
            keeper._bid_dirty = keeper._ask_dirty = False
            keeper.synced = True
            keeper.resyncing = False
            keeper._resync_requested = False
            keeper.last_seq = seq
            keeper.ts_event = last_ts_event
            keeper.ts_recv = max(keeper.ts_recv, ts_recv)
            keeper._lagging = lagging != 0
            counters = keeper.counters
            counters.messages += count
            counters.snapshots += count
            counters.applied += count
            counters.stale += stale
            counters.crossed += crossed
        return QuoteColumns(
            exchange,
            ts_recv,
            ts_event,
            codes,
            names,
            snapshots.bid,
            snapshots.bid_size,
            snapshots.ask,
            snapshots.ask_size,
            snapshots.seq,
            snapshots.seq_valid,
            flags,
        )

    def apply_rows(self, rows: Rows) -> Rows:
        """Apply every book update a parsed message carried, appending quotes and levels to ``rows``."""
        for update in list(rows.book_updates):
            self.apply(update, rows)
        return rows

    def messages_lost(self, exchange: str, symbols: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """Tell the books of ``exchange`` (only ``symbols`` when given) that messages were lost on their connection.

        Each such book is flagged ``RESYNCING`` until re-synced (see :meth:`BookKeeper.messages_lost`); books not
        kept yet are not created.  Returns the keys of the books told.

        Examples
        --------
        >>> from live.adapters import BookUpdate
        >>> books = Books()
        >>> snap = BookUpdate("coinbase", "BTC/USD", "coinbase", True, ((100.0, 1.0, "100", "1"),),
        ...                   ((101.0, 1.0, "101", "1"),), 1, 2, seq=5)
        >>> _ = books.apply(snap)
        >>> books.messages_lost("coinbase"), books.needs_resync()
        ([('coinbase', 'BTC/USD')], [('coinbase', 'BTC/USD')])
        >>> books.keeper("coinbase", "BTC/USD").quote()[9] & QuoteFlag.RESYNCING != 0
        True
        """
        wanted = None if symbols is None else set(symbols)
        told = []
        for key, keeper in self.keepers.items():
            if key[0] == exchange and (wanted is None or key[1] in wanted):
                keeper.messages_lost()
                told.append(key)
        return told

    def needs_resync(self) -> list[tuple[str, str]]:
        """``(exchange, symbol)`` of every book that asks for a snapshot or re-subscription."""
        return [key for key, keeper in self.keepers.items() if keeper.needs_resync]

    def stale(self, now_ns: int) -> list[tuple[str, str]]:
        """Books with no update for longer than their ``max_age`` at ``now_ns``."""
        return [key for key, keeper in self.keepers.items() if keeper.is_stale(now_ns)]

    @property
    def counters(self) -> BookCounters:
        """Counters summed over every book."""
        total = BookCounters()
        for keeper in self.keepers.values():
            total.add(keeper.counters)
        return total
