"""Bybit v5 public streams (linear perpetuals and spot).

Layouts follow https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook (``orderbook.{depth}.{symbol}``,
``type`` snapshot/delta, ``u`` update id, ``seq`` cross sequence),
https://bybit-exchange.github.io/docs/v5/websocket/public/ticker (``tickers.{symbol}``: top of book and
funding for linear contracts) and https://bybit-exchange.github.io/docs/v5/websocket/public/trade
(``publicTrade.{symbol}``).

Order-book pushes (snapshots and deltas alike) become a :class:`~live.adapters.BookUpdate` for the keeper; only
:meth:`BybitAdapter.parse_quote_tuple` turns an ``orderbook.1`` *snapshot* straight into a quote, because a
delta carries only the side that changed.  Ticker *deltas* also carry only changed fields: a quote row is
emitted only when all four top-of-book fields are present, a funding row only when the rate is.
"""

# ruff: noqa: N815  (wire structs keep the venue's field names so msgspec maps them without renames)
from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from arbkit.instruments import InstrumentKind, SymbolInfo
from live.adapters._base import (
    _INF,
    DECODE_ERRORS,
    Adapter,
    BookUpdate,
    Level,
    ParseError,
    QuoteRow,
    Rows,
    dmy_expiry,
)
from live.adapters._columns import QuoteColumns
from live.adapters._fastjson import (
    K_ABSENT,
    K_CONST,
    K_FLOAT_STR,
    K_INT,
    K_INT_NUM,
    K_PREFIX,
    K_SYMBOL,
    Arr,
    Leaf,
    Obj,
    Roles,
    compile_plan,
)

__all__ = ["BybitAdapter", "BybitParseError"]

_QUOTES = ("USDT", "USDC", "USDE", "BTC", "ETH", "EUR", "DAI", "BRL", "TRY", "PLN")


class BybitParseError(ParseError):
    venue = "bybit"


class _Book(msgspec.Struct):
    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int | None = None


class _Ticker(msgspec.Struct):
    symbol: str
    bid1Price: str | None = None
    bid1Size: str | None = None
    ask1Price: str | None = None
    ask1Size: str | None = None
    fundingRate: str | None = None
    nextFundingTime: str | None = None
    markPrice: str | None = None
    indexPrice: str | None = None


class _Trade(msgspec.Struct):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str | None = None


class _Head(msgspec.Struct):
    topic: str | None = None
    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None


class _BookMsg(msgspec.Struct):
    topic: str
    type: str
    ts: int
    data: _Book
    cts: int | None = None


class _TickerMsg(msgspec.Struct):
    topic: str
    type: str
    ts: int
    data: _Ticker


class _TradeMsg(msgspec.Struct):
    topic: str
    ts: int
    data: list[_Trade]


class _TopBook(msgspec.Struct):
    s: str
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    u: int


class _TopMsg(msgspec.Struct):
    """orderbook.1 for the fast path: level strings decoded to floats inside msgspec (``strict=False``)."""

    type: str
    ts: int
    data: _TopBook
    cts: int | None = None


# orderbook snapshots of one level per side for the compiled reader (orderbook.1's every push); deltas, deeper
# books and zero-size levels decline (the keeper's general rule decides those).
_LEVEL = Arr([Arr([Leaf(K_FLOAT_STR, required=True), Leaf(K_FLOAT_STR, required=True)], 2, 2)], 1, 1)
_SNAPSHOT_PLAN = compile_plan(
    Obj(
        {
            "topic": Leaf(K_PREFIX, required=True, consts=("orderbook.",)),
            "type": Leaf(K_CONST, required=True, consts=("snapshot",)),
            "ts": Leaf(K_INT_NUM, required=True),
            "cts": Leaf(K_INT_NUM, nullable=True),
            "data": Obj(
                {
                    "s": Leaf(K_SYMBOL, required=True),
                    "b": _LEVEL,
                    "a": _LEVEL,
                    "u": Leaf(K_INT_NUM, required=True, nonneg=False),
                    "seq": Leaf(K_INT, nullable=True, nonneg=False),
                }
            ),
            **{key: Leaf(K_ABSENT) for key in ("op", "success", "ret_msg")},  # read by the full path's _Head
        }
    ),
    Roles(
        ("data", "s"),
        ("data", "b", 0, 0),
        ("data", "b", 0, 1),
        ("data", "a", 0, 0),
        ("data", "a", 0, 1),
        ts=("cts",),
        ts_fallback=("ts",),
        seq=("data", "u"),
        size_strict=True,
    ),
)

_decode_head = msgspec.json.Decoder(_Head).decode
_decode_top = msgspec.json.Decoder(_TopMsg, strict=False).decode
_decode_book = msgspec.json.Decoder(_BookMsg).decode
_decode_ticker = msgspec.json.Decoder(_TickerMsg).decode
_decode_trade = msgspec.json.Decoder(_TradeMsg).decode


class BybitAdapter(Adapter):
    """Bybit v5: ``market="linear"`` (USDT/USDC perpetuals, default) or ``"spot"``.

    Examples
    --------
    >>> from live.adapters import get
    >>> ad = get("bybit")
    >>> ad.unified_symbol("BTCUSDT"), ad.unified_symbol("ETHPERP"), get("bybit", "spot").unified_symbol("BTCUSDT")
    ('BTC/USDT:USDT', 'ETH/USDC:USDC', 'BTC/USDT')
    >>> raw = (b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1700000000000,'
    ...        b'"data":{"s":"BTCUSDT","b":[["100","1"]],"a":[["101","2"]],"u":5,"seq":9}}')
    >>> ad.parse_quote_tuple(raw, ts_recv=1)[3:9]
    ('BTC/USDT:USDT', 100.0, 1.0, 101.0, 2.0, 5)
    """

    exchange = "bybit"
    markets = ("linear", "spot")

    def __init__(self, market: str | None = None) -> None:
        super().__init__(market)
        self._topic_depths: dict[str, int | None] = {}  # orderbook topic -> its depth, parsed once

    channels = ("orderbook.1", "orderbook.50", "orderbook.200", "orderbook.500", "tickers", "publicTrade")
    ParseError = BybitParseError

    # -- symbols --------------------------------------------------------------------------------------------
    def _to_unified(self, venue_symbol: str) -> str:
        code, _, expiry = venue_symbol.partition("-")
        if expiry and self.market == "linear":  # dated futures: BTCUSDT-26DEC25 (USDT), BTC-26DEC25 (USDC)
            try:
                date = dmy_expiry(expiry)
            except ValueError:
                date = ""
            if not (date and code.isalnum()):
                raise self.error(f"bad symbol {venue_symbol!r}")
            if code.endswith("USDT") and len(code) > 4:
                return f"{code[:-4]}/USDT:USDT-{date}"
            return f"{code}/USDC:USDC-{date}"
        if not venue_symbol.isalnum() or venue_symbol.upper() != venue_symbol:
            raise self.error(f"bad symbol {venue_symbol!r}")
        if self.market == "linear" and venue_symbol.endswith("PERP") and len(venue_symbol) > 4:
            return f"{venue_symbol[:-4]}/USDC:USDC"
        for quote in _QUOTES:
            if venue_symbol.endswith(quote) and len(venue_symbol) > len(quote):
                base = venue_symbol[: -len(quote)]
                return f"{base}/{quote}" if self.market == "spot" else f"{base}/{quote}:{quote}"
        raise self.error(f"unknown quote asset in {venue_symbol!r}")

    def _to_venue(self, info: SymbolInfo) -> str:
        if self.market == "spot":
            if info.kind is not InstrumentKind.SPOT:
                raise self.error(f"{info} is not a spot symbol")
            return f"{info.base}{info.quote}"
        if info.kind is not InstrumentKind.SWAP or info.settle != info.quote:
            raise self.error(f"the linear market lists linear perpetuals only, not {info}")
        return f"{info.base}PERP" if info.quote == "USDC" else f"{info.base}{info.quote}"

    # -- subscriptions --------------------------------------------------------------------------------------
    def subscribe_message(self, channel: str, venue_symbols: Iterable[str]) -> bytes:
        """``{"op": "subscribe", "args": ["orderbook.1.BTCUSDT", ...]}``.

        Examples
        --------
        >>> from live.adapters import get
        >>> get("bybit").subscribe_message("tickers", ["BTCUSDT", "ETHUSDT"])
        b'{"op":"subscribe","args":["tickers.BTCUSDT","tickers.ETHUSDT"]}'
        """
        self._check_channel(channel)
        return orjson.dumps({"op": "subscribe", "args": [f"{channel}.{s}" for s in venue_symbols]})

    # -- fast path ------------------------------------------------------------------------------------------
    def parse_quote_tuple(self, raw: bytes, ts_recv: int) -> QuoteRow | None:
        """A QUOTES tuple from an ``orderbook.1`` snapshot or a complete ticker, else ``None``."""
        if raw[:22] == b'{"topic":"orderbook.1.':
            try:
                m = _decode_top(raw)
            except DECODE_ERRORS:
                m = None
            if m is not None:
                if m.type != "snapshot":
                    self.parse_rows(raw, ts_recv)  # validates the delta (raises ParseError when malformed)
                    return None  # a delta carries only the changed side: the book keeper owns it
                d = m.data
                ts = m.cts or m.ts  # matching-engine time when sent, as on the full path
                if d.b and d.a and 0 < ts < 10**14:
                    bid, bid_size = d.b[0]
                    ask, ask_size = d.a[0]
                    # a zero-size level in a book snapshot is no level: leave that case to the general path
                    if 0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 < bid_size < _INF and 0.0 < ask_size < _INF:
                        symbol = self._unified.get(d.s) or self.unified_symbol(d.s)
                        flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
                        return (ts * 1_000_000, ts_recv, "bybit", symbol, bid, bid_size, ask, ask_size, d.u, flags)
            rows = self.parse_rows(raw, ts_recv)  # raises ParseError when malformed
            update = rows.book_update
            if update is None or not update.is_snapshot:
                return None
            return self._snapshot_quote(update)
        rows = self.parse_rows(raw, ts_recv)
        if rows.quotes:
            return rows.quotes[-1]
        update = rows.book_update  # an orderbook.1 snapshot the byte-prefix check missed (whitespace, key order)
        if update is not None and update.is_snapshot and update.depth == 1:
            return self._snapshot_quote(update)
        return None

    def _snapshot_quote(self, update: BookUpdate) -> QuoteRow:
        """Top of a one-sided (or empty) orderbook.1 snapshot: an absent side stays ``None``."""
        bids = [lv for lv in update.bids if lv[1] > 0.0]
        asks = [lv for lv in update.asks if lv[1] > 0.0]
        bid = max(bids) if bids else None
        ask = min(asks) if asks else None
        crossed = bid is not None and ask is not None and bid[0] > ask[0]
        return (
            update.ts_event,
            update.ts_recv,
            "bybit",
            update.symbol,
            bid[0] if bid else None,
            bid[1] if bid else None,
            ask[0] if ask else None,
            ask[1] if ask else None,
            update.seq,
            2 if crossed else 0,
        )

    def parse_book_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[BookUpdate] | None:
        """``orderbook.{depth}`` pushes in one pass (see :meth:`Adapter.parse_book_batch`).

        Examples
        --------
        >>> from live.adapters import get
        >>> ad = get("bybit")
        >>> raw = (b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1700000000000,'
        ...        b'"data":{"s":"BTCUSDT","b":[["100","1"]],"a":[["101","2"]],"u":5,"seq":9}}')
        >>> ad.parse_book_batch([raw], ts_recv=1) == ad.parse_rows(raw, ts_recv=1).book_updates
        True
        """
        out: list[BookUpdate] = []
        append = out.append
        unified = self._unified
        depths = self._topic_depths
        try:
            for raw in raws:  # decoded one by one: each struct is dropped before the next
                m = _decode_book(raw)
                kind = m.type
                if kind not in ("snapshot", "delta"):
                    return None
                topic = m.topic
                if topic in depths:
                    depth = depths[topic]
                else:
                    parts = topic.split(".")
                    if parts[0] != "orderbook" or len(parts) < 2:
                        return None  # acks, tickers, trades and anything odd: the full path decides
                    depth = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
                    if len(depths) > 4096:
                        depths.clear()
                    depths[topic] = depth
                d = m.data
                ts = m.cts or m.ts
                append(
                    BookUpdate(
                        "bybit",
                        unified.get(d.s) or self.unified_symbol(d.s),
                        "bybit",
                        kind == "snapshot",
                        self._levels(d.b),
                        self._levels(d.a),
                        ts * 1_000_000 if 0 < ts < 10**14 else self.timestamp_ms(ts, ts_recv),
                        ts_recv,
                        seq=d.u,
                        depth=depth,
                    )
                )
        except ParseError:
            return None
        except DECODE_ERRORS:
            return None
        return out

    def parse_book_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """``orderbook.{depth}`` snapshots of one level per side read by the compiled kernel, for
        :meth:`live.book.Books.apply_snapshot_columns` (see :meth:`Adapter.parse_book_columns`).

        Row ``i`` is message ``i``'s own top of book: event time ``cts or ts``, ``seq`` its update id ``u``, the
        level texts in ``level_texts``.  Deltas and anything else: ``None``.

        Examples
        --------
        >>> import numpy as np
        >>> from live.adapters import get
        >>> ad = get("bybit")
        >>> raw = (b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1700000000000,'
        ...        b'"data":{"s":"BTCUSDT","b":[["100","1"]],"a":[["101","2"]],"u":5,"seq":9}}')
        >>> _ = ad.parse_rows(raw, ts_recv=1)  # maps the symbol once
        >>> ad.parse_book_columns(raw, np.array([0]), np.array([len(raw)]), ts_recv=1).row(0)
        (1700000000000000000, 1, 'bybit', 'BTC/USDT:USDT', 100.0, 1.0, 101.0, 2.0, 5, 0)
        """
        return self._columns(_SNAPSHOT_PLAN, buf, starts, ends, ts_recv, level_texts=True)

    def _levels(self, raw_levels: list[tuple[str, str]]) -> tuple[Level, ...]:
        """:meth:`levels`, with ``orderbook.1``'s single level built without the general loop."""
        if len(raw_levels) != 1:
            return self.levels(raw_levels)
        price_text, size_text = raw_levels[0]
        price = float(price_text)
        size = float(size_text)
        if not (0.0 < price < _INF and 0.0 <= size < _INF):
            raise self.error(f"bad book level {[price_text, size_text]!r}")
        return ((price, size, price_text, size_text),)

    # -- full path ------------------------------------------------------------------------------------------
    def parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        try:
            return self._parse_rows(raw, ts_recv)
        except ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.error(f"malformed message ({type(exc).__name__}: {exc}): {bytes(raw[:200])!r}") from None

    def _parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        rows = Rows()
        head = _decode_head(raw)
        if head.topic is None:
            if head.op is not None:
                if head.success is False:
                    raise self.error(f"venue error on {head.op}: {head.ret_msg}")
                return rows  # subscribe ack, pong
            raise self.error(f"message without topic: {bytes(raw[:200])!r}")
        topic = head.topic
        if topic.startswith("orderbook."):
            self._book(rows, _decode_book(raw), ts_recv)
        elif topic.startswith("tickers."):
            self._ticker(rows, _decode_ticker(raw), ts_recv)
        elif topic.startswith(("publicTrade.", "trade.")):
            self._trades(rows, _decode_trade(raw), ts_recv)
        else:
            raise self.error(f"unsupported topic {topic!r}")
        return rows

    def _book(self, rows: Rows, m: _BookMsg, ts_recv: int) -> None:
        if m.type not in ("snapshot", "delta"):
            raise self.error(f"orderbook push of type {m.type!r}")
        parts = m.topic.split(".")
        depth = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        update = BookUpdate(
            "bybit",
            self.unified_symbol(m.data.s),
            "bybit",
            m.type == "snapshot",
            self.levels(m.data.b),
            self.levels(m.data.a),
            self.timestamp_ms(m.cts or m.ts, ts_recv),
            ts_recv,
            seq=m.data.u,
            depth=depth,
        )
        rows.book_updates.append(update)

    def _ticker(self, rows: Rows, m: _TickerMsg, ts_recv: int) -> None:
        d = m.data
        symbol = self.unified_symbol(d.symbol)
        ts_event = self.timestamp_ms(m.ts, ts_recv)
        if None not in (d.bid1Price, d.bid1Size, d.ask1Price, d.ask1Size):
            bid = self.price(d.bid1Price)
            ask = self.price(d.ask1Price)
            rows.quotes.append(
                (
                    ts_event,
                    ts_recv,
                    "bybit",
                    symbol,
                    bid,
                    self.size(d.bid1Size) if bid is not None else None,
                    ask,
                    self.size(d.ask1Size) if ask is not None else None,
                    None,
                    2 if bid is not None and ask is not None and bid > ask else 0,
                )
            )
        rate = self.number(d.fundingRate)
        if rate is not None:
            rows.funding.append(
                (
                    ts_event,
                    ts_recv,
                    "bybit",
                    symbol,
                    rate,
                    None,
                    self.timestamp_ms(d.nextFundingTime, 0) or None,
                    self.price(d.markPrice),
                    self.price(d.indexPrice),
                    0,
                )
            )

    def _trades(self, rows: Rows, m: _TradeMsg, ts_recv: int) -> None:
        for t in m.data:
            price = self.price(t.p)
            size = self.size(t.v)
            if price is None or size is None or t.S not in ("Buy", "Sell"):
                raise self.error(f"bad trade {t!r}")
            rows.trades.append(
                (
                    self.timestamp_ms(t.T, ts_recv),
                    ts_recv,
                    "bybit",
                    self.unified_symbol(t.s),
                    t.i,
                    "buy" if t.S == "Buy" else "sell",  # S: the taker's side
                    price,
                    size,
                    0,
                )
            )
