"""Coinbase Advanced Trade market-data WebSocket (``wss://advanced-trade-ws.coinbase.com``).

Layouts follow https://docs.cdp.coinbase.com/advanced-trade/docs/ws-channels (``ticker``, ``level2`` whose
pushes arrive on channel ``l2_data``, ``market_trades``, ``heartbeats``, ``subscriptions``).

Every message carries a ``sequence_num`` counting the whole connection (not one product), so per-book gap
detection cannot happen here: the connector checks the connection's sequence and re-subscribes on a gap; the
book keeper applies ``level2`` snapshots and updates in order.  Times are RFC 3339 strings kept to the
nanosecond.  ``market_trades`` ``side`` is passed through lower-cased; the docs do not say whether it is the
taker's or the maker's side, so detectors must not rely on it as the aggressor side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import numpy as np
import numpy.typing as npt
import orjson
from msgspec import UNSET, UnsetType

from arbkit.instruments import InstrumentKind, SymbolInfo
from live.adapters._base import _INF, DECODE_ERRORS, Adapter, BookUpdate, Level, ParseError, QuoteRow, Rows, iso_to_ns
from live.adapters._columns import QuoteColumns
from live.adapters._fastjson import (
    K_ABSENT,
    K_CONST,
    K_FLOAT_STR,
    K_INT_NUM,
    K_ISO,
    K_STR,
    K_SYMBOL,
    Arr,
    Leaf,
    Obj,
    Roles,
    compile_plan,
)

__all__ = ["CoinbaseAdapter", "CoinbaseParseError"]


class CoinbaseParseError(ParseError):
    venue = "coinbase"


class _Ticker(msgspec.Struct):
    """A ``ticker`` / ``ticker_batch`` entry; ``UNSET`` best bid/ask keys mean the push carries no top of book
    (``ticker_batch`` omits them), unlike ``""`` or ``null``, which mean an empty side."""

    product_id: str
    best_bid: str | UnsetType | None = UNSET
    best_bid_quantity: str | None = None
    best_ask: str | UnsetType | None = UNSET
    best_ask_quantity: str | None = None
    type: str | None = None


class _L2Update(msgspec.Struct):
    side: str
    price_level: str
    new_quantity: str
    event_time: str | None = None


class _Trade(msgspec.Struct):
    product_id: str
    price: str
    size: str
    side: str | None = None
    trade_id: str | None = None
    time: str | None = None


class _Event(msgspec.Struct):
    type: str | None = None
    product_id: str | None = None
    tickers: list[_Ticker] | None = None
    updates: list[_L2Update] | None = None
    trades: list[_Trade] | None = None


class _Msg(msgspec.Struct):
    channel: str | None = None
    timestamp: str | None = None
    sequence_num: int | None = None
    events: list[_Event] | None = None
    type: str | None = None
    message: str | None = None


class _FastTicker(msgspec.Struct):
    product_id: str
    best_bid: float
    best_bid_quantity: float
    best_ask: float
    best_ask_quantity: float


class _FastEvent(msgspec.Struct):
    tickers: list[_FastTicker]


class _FastMsg(msgspec.Struct):
    """``ticker`` for the fast path: number strings decoded to floats inside msgspec (``strict=False``)."""

    channel: str
    timestamp: str
    events: list[_FastEvent]
    sequence_num: int | None = None


# ticker for the compiled reader: one event of one ticker; ``sequence_num`` kept (the connector's gap check).
_SIDE = Leaf(K_FLOAT_STR, required=True)
_TICKER_PLAN = compile_plan(
    Obj(
        {
            "channel": Leaf(K_CONST, required=True, consts=("ticker",)),
            "timestamp": Leaf(K_ISO, required=True),
            "sequence_num": Leaf(K_INT_NUM, nullable=True, nonneg=False),
            "events": Arr(
                [
                    Obj(
                        {
                            "type": Leaf(K_STR, nullable=True),
                            "product_id": Leaf(K_STR, nullable=True),
                            "tickers": Arr(
                                [
                                    Obj(
                                        {
                                            "product_id": Leaf(K_SYMBOL, required=True),
                                            "best_bid": _SIDE,
                                            "best_bid_quantity": _SIDE,
                                            "best_ask": _SIDE,
                                            "best_ask_quantity": _SIDE,
                                            "type": Leaf(K_STR, nullable=True),
                                        }
                                    )
                                ],
                                1,
                                1,
                            ),
                            "updates": Leaf(K_ABSENT),
                            "trades": Leaf(K_ABSENT),
                        }
                    )
                ],
                1,
                1,
            ),
            "type": Leaf(K_ABSENT),
            "message": Leaf(K_STR, nullable=True),
        }
    ),
    Roles(
        ("events", 0, "tickers", 0, "product_id"),
        ("events", 0, "tickers", 0, "best_bid"),
        ("events", 0, "tickers", 0, "best_bid_quantity"),
        ("events", 0, "tickers", 0, "best_ask"),
        ("events", 0, "tickers", 0, "best_ask_quantity"),
        ts=("timestamp",),
        ts_ns=True,
        seq=("sequence_num",),
    ),
)

_decode = msgspec.json.Decoder(_Msg).decode
_decode_fast = msgspec.json.Decoder(_FastMsg, strict=False).decode


class CoinbaseAdapter(Adapter):
    """Coinbase Advanced Trade spot products (``BTC-USD`` -> ``BTC/USD``).

    Examples
    --------
    >>> from live.adapters import get
    >>> ad = get("coinbase")
    >>> ad.unified_symbol("BTC-USD"), ad.venue_symbol("ETH/USDC")
    ('BTC/USD', 'ETH-USDC')
    """

    exchange = "coinbase"
    markets = ("spot",)
    channels = ("ticker", "ticker_batch", "level2", "market_trades", "heartbeats")
    ParseError = CoinbaseParseError

    def _to_unified(self, venue_symbol: str) -> str:
        parts = venue_symbol.split("-")
        if len(parts) != 2 or not all(p.isalnum() and p.upper() == p for p in parts):
            raise self.error(f"bad product id {venue_symbol!r}")
        return f"{parts[0]}/{parts[1]}"

    def _to_venue(self, info: SymbolInfo) -> str:
        if info.kind is not InstrumentKind.SPOT:
            raise self.error(f"{info} is not a spot symbol")
        return f"{info.base}-{info.quote}"

    def subscribe_message(self, channel: str, venue_symbols: Iterable[str]) -> bytes:
        """``{"type": "subscribe", "product_ids": [...], "channel": ...}`` (public channels need no JWT).

        Examples
        --------
        >>> from live.adapters import get
        >>> get("coinbase").subscribe_message("level2", ["BTC-USD"])
        b'{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'
        """
        self._check_channel(channel)
        return orjson.dumps({"type": "subscribe", "product_ids": list(venue_symbols), "channel": channel})

    def parse_quote_tuple(self, raw: bytes, ts_recv: int) -> QuoteRow | None:
        """The last QUOTES tuple of a ``ticker`` message, else ``None``."""
        if raw[:19] == b'{"channel":"ticker"':
            try:
                m = _decode_fast(raw)
                ts_event = iso_to_ns(m.timestamp)
            except DECODE_ERRORS:
                m = None
            if m is not None and m.events and m.events[-1].tickers:
                t = m.events[-1].tickers[-1]
                bid, bid_size, ask, ask_size = t.best_bid, t.best_bid_quantity, t.best_ask, t.best_ask_quantity
                if 0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF:
                    symbol = self._unified.get(t.product_id) or self.unified_symbol(t.product_id)
                    flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
                    return (ts_event, ts_recv, "coinbase", symbol, bid, bid_size, ask, ask_size, m.sequence_num, flags)
        rows = self.parse_rows(raw, ts_recv)
        return rows.quotes[-1] if rows.quotes else None

    def parse_quote_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[QuoteRow] | None:
        """``ticker`` messages of one ticker each in one pass (see :meth:`Adapter.parse_quote_batch`)."""
        unified = self._unified
        out: list[QuoteRow] = []
        append = out.append
        for raw in raws:  # decoded one by one: each struct is dropped before the next (cheaper than all at once)
            try:
                m = _decode_fast(raw)
                ts_event = iso_to_ns(m.timestamp)
            except DECODE_ERRORS:
                return None
            events = m.events
            if m.channel != "ticker" or len(events) != 1 or len(events[0].tickers) != 1:
                return None
            t = events[0].tickers[0]
            symbol = unified.get(t.product_id)
            bid, bid_size, ask, ask_size = t.best_bid, t.best_bid_quantity, t.best_ask, t.best_ask_quantity
            if symbol is None or not (
                0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF
            ):
                return None
            flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
            append((ts_event, ts_recv, "coinbase", symbol, bid, bid_size, ask, ask_size, m.sequence_num, flags))
        return out

    def parse_quote_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """``ticker`` messages read by the compiled kernel (see :meth:`Adapter.parse_quote_columns`); rows carry
        ``sequence_num`` in ``seq`` for the connector's gap check."""
        return self._columns(_TICKER_PLAN, buf, starts, ends, ts_recv)

    def parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        try:
            return self._parse_rows(raw, ts_recv)
        except ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.error(f"malformed message ({type(exc).__name__}: {exc}): {bytes(raw[:200])!r}") from None

    def _parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        m = _decode(raw)
        rows = Rows()
        if m.type == "error":
            raise self.error(f"venue error: {m.message}")
        channel = m.channel
        if channel is None:
            raise self.error(f"message without channel: {bytes(raw[:200])!r}")
        if channel in ("subscriptions", "heartbeats"):
            return rows
        ts_msg = iso_to_ns(m.timestamp) if m.timestamp else ts_recv
        for event in m.events or ():
            if channel in ("ticker", "ticker_batch"):
                for t in event.tickers or ():
                    if t.best_bid is UNSET and t.best_ask is UNSET:
                        # ticker_batch (and older ticker pushes) send last price and 24h stats only: the book
                        # is unknown here, not empty, so no quote rather than a two-sided null one
                        self.unified_symbol(t.product_id)
                        continue
                    bid = self.price(t.best_bid if isinstance(t.best_bid, str) else None)
                    ask = self.price(t.best_ask if isinstance(t.best_ask, str) else None)
                    rows.quotes.append(
                        (
                            ts_msg,
                            ts_recv,
                            "coinbase",
                            self.unified_symbol(t.product_id),
                            bid,
                            self.size(t.best_bid_quantity) if bid is not None else None,
                            ask,
                            self.size(t.best_ask_quantity) if ask is not None else None,
                            m.sequence_num,
                            2 if bid is not None and ask is not None and bid > ask else 0,
                        )
                    )
            elif channel == "l2_data":
                self._level2(rows, event, m.sequence_num, ts_msg, ts_recv)
            elif channel == "market_trades":
                for trade in event.trades or ():
                    price = self.price(trade.price)
                    size = self.size(trade.size)
                    if price is None or size is None:
                        raise self.error(f"trade without price/size: {trade!r}")
                    rows.trades.append(
                        (
                            iso_to_ns(trade.time) if trade.time else ts_msg,
                            ts_recv,
                            "coinbase",
                            self.unified_symbol(trade.product_id),
                            trade.trade_id,
                            trade.side.lower() if trade.side in ("BUY", "SELL") else None,
                            price,
                            size,
                            0,
                        )
                    )
            else:
                raise self.error(f"unsupported channel {channel!r}")
        return rows

    def _level2(self, rows: Rows, event: _Event, seq: int | None, ts_msg: int, ts_recv: int) -> None:
        if event.product_id is None or event.type not in ("snapshot", "update"):
            raise self.error(f"l2_data event without product_id/type: {event!r}")
        bids: list[Level] = []
        asks: list[Level] = []
        ts_event = 0
        for u in event.updates or ():
            price = float(u.price_level)
            size = float(u.new_quantity)
            if not (0.0 < price < float("inf") and 0.0 <= size < float("inf")):
                raise self.error(f"bad level {u!r}")
            level = (price, size, u.price_level, u.new_quantity)
            if u.side == "bid":
                bids.append(level)
            elif u.side in ("offer", "ask"):
                asks.append(level)
            else:
                raise self.error(f"bad side {u.side!r}")
            if u.event_time:
                ts_event = max(ts_event, iso_to_ns(u.event_time))
        update = BookUpdate(
            "coinbase",
            self.unified_symbol(event.product_id),
            "coinbase",
            event.type == "snapshot",
            tuple(bids),
            tuple(asks),
            ts_event or ts_msg,
            ts_recv,
            seq=seq,
        )
        rows.book_updates.append(update)
