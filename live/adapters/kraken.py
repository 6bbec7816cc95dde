"""Kraken spot WebSocket v2 (``wss://ws.kraken.com/v2``), plus the legacy v1 array messages.

Layouts follow https://docs.kraken.com/api/docs/websocket-v2/ticker, https://docs.kraken.com/api/docs/websocket-v2/book
(snapshot/update, CRC32 ``checksum`` over the top 10 levels: see
https://docs.kraken.com/api/docs/guides/spot-ws-book-v2) and https://docs.kraken.com/api/docs/websocket-v2/trade.

v2 sends prices and quantities as JSON numbers.  The checksum is defined over the numbers written at the pair's
``price_precision``/``qty_precision`` (from the ``instrument`` channel), so book updates carry those precisions
from :data:`PRECISION` (override with ``KrakenAdapter(precision={...})``); for a pair not listed the number's
own text as sent is used, which is right for live traffic (the wire writes every number at the pair's precision,
``0.0280``, ``4207.74770000``) but not for re-serialized or documented messages whose trailing zeros were dropped.
v1 messages (``[channelID, payload, channelName, pair]``, ``XBT`` naming, string numbers and a string checksum)
are read too, their checksum over the strings as sent.  v2 tickers carry no event time before 2024; ``ts_event``
is then the receive time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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
    iso_to_ns,
)
from live.adapters._columns import QuoteColumns
from live.adapters._fastjson import (
    K_ABSENT,
    K_CONST,
    K_FLOAT_NUM,
    K_ISO,
    K_STR,
    K_SYMBOL,
    Arr,
    Leaf,
    Obj,
    Roles,
    compile_plan,
)

__all__ = ["PRECISION", "KrakenAdapter", "KrakenParseError"]

#: ``(price_precision, qty_precision)`` per v2 pair, as Kraken's instrument channel publishes them.
PRECISION: dict[str, tuple[int, int]] = {
    "BTC/USD": (1, 8),
    "BTC/EUR": (1, 8),
    "BTC/USDT": (1, 8),
    "BTC/USDC": (2, 8),
    "ETH/USD": (2, 8),
    "ETH/EUR": (2, 8),
    "ETH/USDT": (2, 8),
    "ETH/BTC": (5, 8),
    "SOL/USD": (2, 8),
    "MATIC/USD": (4, 8),  # the book docs' example: its checksum holds only at these (its numbers are trimmed)
    "XRP/USD": (5, 8),
    "DOGE/USD": (7, 8),
    "USDT/USD": (5, 8),
}

_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_REVERSE = {"BTC": "XBT", "DOGE": "XDG"}


class KrakenParseError(ParseError):
    venue = "kraken"


class _Level(msgspec.Struct):
    price: msgspec.Raw
    qty: msgspec.Raw


class _Data(msgspec.Struct):
    symbol: str = ""  # absent from the ``status`` greeting's data (api_version, connection_id, system, version)
    bid: float | None = None
    bid_qty: float | None = None
    ask: float | None = None
    ask_qty: float | None = None
    bids: list[_Level] | None = None
    asks: list[_Level] | None = None
    checksum: int | None = None
    timestamp: str | None = None
    side: str | None = None
    price: float | None = None
    qty: float | None = None
    trade_id: int | None = None


class _TickerData(msgspec.Struct):
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    timestamp: str | None = None  # absent from older v2 pushes: the receive time stands in, as on the full path


class _TickerMsg(msgspec.Struct):
    """v2 ``ticker`` push for the batch path: every top-of-book field required."""

    channel: str
    data: list[_TickerData]


class _Msg(msgspec.Struct):
    channel: str | None = None
    type: str | None = None
    data: list[_Data] | None = None
    method: str | None = None
    success: bool | None = None
    error: str | None = None


class _V1Book(msgspec.Struct):
    # v1 book payload: snapshots use "as"/"bs", updates "a"/"b" and a string checksum "c"
    as_: list[list[str]] | None = msgspec.field(default=None, name="as")
    bs: list[list[str]] | None = None
    a: list[list[str]] | None = None
    b: list[list[str]] | None = None
    c: str | None = None


# v2 ticker for the compiled reader: one pair per push, numbers bare; ``_Data``'s book and trade keys decline.
_QTY = Leaf(K_FLOAT_NUM, required=True)
_TICKER_PLAN = compile_plan(
    Obj(
        {
            "channel": Leaf(K_CONST, required=True, consts=("ticker",)),
            "type": Leaf(K_STR, nullable=True),
            "data": Arr(
                [
                    Obj(
                        {
                            "symbol": Leaf(K_SYMBOL, required=True),
                            "bid": _QTY,
                            "bid_qty": _QTY,
                            "ask": _QTY,
                            "ask_qty": _QTY,
                            "timestamp": Leaf(K_ISO, nullable=True),
                            **{
                                key: Leaf(K_ABSENT)
                                for key in ("bids", "asks", "checksum", "side", "price", "qty", "trade_id")
                            },
                        }
                    )
                ],
                1,
                1,
            ),
            **{key: Leaf(K_ABSENT) for key in ("method", "success", "error")},
        }
    ),
    Roles(
        ("data", 0, "symbol"),
        ("data", 0, "bid"),
        ("data", 0, "bid_qty"),
        ("data", 0, "ask"),
        ("data", 0, "ask_qty"),
        ts=("data", 0, "timestamp"),
        ts_ns=True,
        ts_missing_ok=True,
    ),
)

_decode = msgspec.json.Decoder(_Msg).decode
_decode_ticker = msgspec.json.Decoder(_TickerMsg).decode
_decode_any = msgspec.json.Decoder().decode


class KrakenAdapter(Adapter):
    """Kraken spot, v2 protocol (``BTC/USD``), with v1 messages (``XBT/USD``) read as well.

    Examples
    --------
    >>> from live.adapters import get
    >>> ad = get("kraken")
    >>> ad.unified_symbol("XBT/USD"), ad.unified_symbol("ETH/EUR"), ad.venue_symbol("BTC/USD")
    ('BTC/USD', 'ETH/EUR', 'BTC/USD')
    >>> raw = b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":100.5,"bid_qty":1.5,' \\
    ...       b'"ask":101.0,"ask_qty":2.0,"last":101.0}]}'
    >>> ad.parse_quote_tuple(raw, ts_recv=7)[:8]
    (7, 7, 'kraken', 'BTC/USD', 100.5, 1.5, 101.0, 2.0)
    """

    exchange = "kraken"
    markets = ("spot",)
    channels = ("ticker", "book", "trade")
    ParseError = KrakenParseError

    def __init__(
        self, market: str | None = None, *, precision: Mapping[str, tuple[int, int]] | None = None, depth: int = 10
    ) -> None:
        super().__init__(market)
        self.precision = dict(PRECISION)
        self.precision.update(precision or {})
        self.depth = depth

    def _to_unified(self, venue_symbol: str) -> str:
        parts = venue_symbol.split("/")
        if len(parts) != 2 or not all(p.isalnum() and p.upper() == p for p in parts):
            raise self.error(f"bad pair {venue_symbol!r}")
        base, quote = (_ALIASES.get(p, p) for p in parts)
        return f"{base}/{quote}"

    def _to_venue(self, info: SymbolInfo) -> str:
        if info.kind is not InstrumentKind.SPOT:
            raise self.error(f"{info} is not a spot symbol")
        return f"{info.base}/{info.quote}"

    def subscribe_message(self, channel: str, venue_symbols: Iterable[str]) -> bytes:
        """v2 ``{"method": "subscribe", "params": {"channel": ..., "symbol": [...]}}`` (book: with depth).

        Examples
        --------
        >>> from live.adapters import get
        >>> get("kraken").subscribe_message("book", ["BTC/USD"])
        b'{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}'
        """
        self._check_channel(channel)
        params: dict[str, object] = {"channel": channel, "symbol": list(venue_symbols)}
        if channel == "book":
            params["depth"] = self.depth
        return orjson.dumps({"method": "subscribe", "params": params})

    def parse_quote_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[QuoteRow] | None:
        """v2 ``ticker`` pushes of one pair each in one pass (see :meth:`Adapter.parse_quote_batch`)."""
        unified = self._unified
        out: list[QuoteRow] = []
        append = out.append
        for raw in raws:  # decoded one by one: each struct is dropped before the next (cheaper than all at once)
            try:
                m = _decode_ticker(raw)
                if len(m.data) != 1:
                    return None
                d = m.data[0]
                ts_event = iso_to_ns(d.timestamp) if d.timestamp else ts_recv
            except DECODE_ERRORS:
                return None
            symbol = unified.get(d.symbol)
            bid, bid_size, ask, ask_size = d.bid, d.bid_qty, d.ask, d.ask_qty
            if (
                m.channel != "ticker"
                or symbol is None
                or not (0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF)
            ):
                return None
            flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
            append((ts_event, ts_recv, "kraken", symbol, bid, bid_size, ask, ask_size, None, flags))
        return out

    def parse_quote_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """v2 ``ticker`` pushes read by the compiled kernel (see :meth:`Adapter.parse_quote_columns`)."""
        return self._columns(_TICKER_PLAN, buf, starts, ends, ts_recv)

    def parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        try:
            if raw[:1] == b"[":
                return self._parse_v1(raw, ts_recv)
            return self._parse_rows(raw, ts_recv)
        except ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.error(f"malformed message ({type(exc).__name__}: {exc}): {bytes(raw[:200])!r}") from None

    def _parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        m = _decode(raw)
        rows = Rows()
        if m.method is not None:
            if m.success is False:
                raise self.error(f"venue error on {m.method}: {m.error}")
            return rows  # subscribe acks, pong
        channel = m.channel
        if channel in ("heartbeat", "status", "instrument"):
            return rows
        if channel is None or m.data is None:
            raise self.error(f"message without channel/data: {bytes(raw[:200])!r}")
        for d in m.data:
            symbol = self.unified_symbol(d.symbol)
            ts_event = iso_to_ns(d.timestamp) if d.timestamp else ts_recv
            if channel == "ticker":
                bid = self.price(d.bid)
                ask = self.price(d.ask)
                rows.quotes.append(
                    (
                        ts_event,
                        ts_recv,
                        "kraken",
                        symbol,
                        bid,
                        self.size(d.bid_qty) if bid is not None else None,
                        ask,
                        self.size(d.ask_qty) if ask is not None else None,
                        None,
                        2 if bid is not None and ask is not None and bid > ask else 0,
                    )
                )
            elif channel == "book":
                if m.type not in ("snapshot", "update"):
                    raise self.error(f"book push of type {m.type!r}")
                precision = self.precision.get(d.symbol)
                update = BookUpdate(
                    "kraken",
                    symbol,
                    "kraken",
                    m.type == "snapshot",
                    self._levels_v2(d.bids or ()),
                    self._levels_v2(d.asks or ()),
                    ts_event,
                    ts_recv,
                    checksum=d.checksum,
                    depth=self.depth,
                    price_precision=precision[0] if precision else None,
                    size_precision=precision[1] if precision else None,
                )
                rows.book_updates.append(update)
            elif channel == "trade":
                price = self.price(d.price)
                size = self.size(d.qty)
                if price is None or size is None or d.side not in ("buy", "sell"):
                    raise self.error(f"bad trade {d!r}")
                trade_id = str(d.trade_id) if d.trade_id is not None else None
                rows.trades.append((ts_event, ts_recv, "kraken", symbol, trade_id, d.side, price, size, 0))
            else:
                raise self.error(f"unsupported channel {channel!r}")
        return rows

    def _levels_v2(self, levels: Iterable[_Level]) -> tuple[Level, ...]:
        out = []
        for lv in levels:
            price_text = bytes(lv.price).decode()
            size_text = bytes(lv.qty).decode()
            price = float(price_text)
            size = float(size_text)
            if not (0.0 < price < _INF and 0.0 <= size < _INF):
                raise self.error(f"bad book level {price_text}/{size_text}")
            out.append((price, size, price_text, size_text))
        return tuple(out)

    def _parse_v1(self, raw: bytes, ts_recv: int) -> Rows:
        msg = _decode_any(raw)
        rows = Rows()
        if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[-1], str) or not isinstance(msg[-2], str):
            raise self.error(f"malformed v1 message: {bytes(raw[:200])!r}")
        channel, symbol = msg[-2], self.unified_symbol(msg[-1])
        if channel == "ticker":
            payload = msg[1]
            bid = self.price(payload["b"][0])
            ask = self.price(payload["a"][0])
            rows.quotes.append(
                (
                    ts_recv,
                    ts_recv,
                    "kraken",
                    symbol,
                    bid,
                    self.size(payload["b"][2]) if bid is not None else None,
                    ask,
                    self.size(payload["a"][2]) if ask is not None else None,
                    None,
                    2 if bid is not None and ask is not None and bid > ask else 0,
                )
            )
            return rows
        if not channel.startswith("book-"):
            raise self.error(f"unsupported v1 channel {channel!r}")
        parts = [msgspec.convert(p, _V1Book) for p in msg[1:-2] if isinstance(p, dict)]
        if not parts:
            raise self.error("v1 book message without payload")
        snapshot = any(p.as_ is not None or p.bs is not None for p in parts)
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        checksum = None
        for p in parts:
            asks.extend(p.as_ or p.a or ())
            bids.extend(p.bs or p.b or ())
            if p.c is not None:
                checksum = int(p.c)
        times = [float(lv[2]) for lv in bids + asks if len(lv) > 2 and lv[2] != ""]
        ts_event = int(max(times) * 1e9) if times else ts_recv
        update = BookUpdate(
            "kraken",
            symbol,
            "kraken",
            snapshot,
            self.levels(bids),
            self.levels(asks),
            ts_event,
            ts_recv,
            checksum=checksum,
            depth=int(channel[5:]),
        )
        rows.book_updates.append(update)
        return rows
