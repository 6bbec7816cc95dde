"""OKX v5 public WebSocket channels.

Layouts follow https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-tickers-channel and the
order-book channels ``bbo-tbt``, ``books5``, ``books``, ``books-l2-tbt``, ``books50-l2-tbt``
(https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel) and ``funding-rate``
(https://www.okx.com/docs-v5/en/#public-data-websocket-funding-rate-channel) and ``trades`` (``side`` is the
taker's side).

The instrument id says the market (``BTC-USDT`` spot, ``BTC-USDT-SWAP`` linear, ``BTC-USD-SWAP`` inverse,
``BTC-USD-251226`` dated future, ``BTC-USD-251226-45000-C`` option), so one adapter reads them all.  Option
rows go to ``option_quotes`` (OKX option prices are in the base coin; its tickers carry no implied vols).
Sizes are what OKX sends: contracts for derivatives, base coin for spot.
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
    BookRow,
    BookUpdate,
    Level,
    OptionQuoteRow,
    ParseError,
    QuoteRow,
    Rows,
)
from live.adapters._columns import QuoteColumns
from live.adapters._fastjson import (
    K_ABSENT,
    K_CONST,
    K_FLOAT_STR,
    K_INT,
    K_INT_NUM,
    K_INT_STR,
    K_NUMSTR,
    K_STR,
    K_SYMBOL,
    Arr,
    Leaf,
    Obj,
    Roles,
    compile_plan,
)

__all__ = ["OkxAdapter", "OkxParseError"]

_LINEAR_QUOTES = ("USDT", "USDC")
_BOOK_CHANNELS = {"books": 400, "books-l2-tbt": 400, "books50-l2-tbt": 50}


class OkxParseError(ParseError):
    venue = "okx"


class _Arg(msgspec.Struct):
    channel: str
    instId: str | None = None


class _Data(msgspec.Struct):
    instType: str | None = None
    instId: str | None = None
    askPx: str | None = None
    askSz: str | None = None
    bidPx: str | None = None
    bidSz: str | None = None
    ts: str | None = None
    asks: list[list[str]] | None = None
    bids: list[list[str]] | None = None
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None
    fundingRate: str | None = None
    fundingTime: str | None = None
    nextFundingRate: str | None = None
    nextFundingTime: str | None = None
    tradeId: str | None = None
    px: str | None = None
    sz: str | None = None
    side: str | None = None


class _Msg(msgspec.Struct):
    arg: _Arg | None = None
    action: str | None = None
    data: list[_Data] | None = None
    event: str | None = None
    code: str | None = None
    msg: str | None = None


class _BboData(msgspec.Struct):
    """bbo-tbt for the fast path: level strings decoded to floats inside msgspec (``strict=False``)."""

    asks: list[list[float]]
    bids: list[list[float]]
    ts: int
    seqId: int | None = None


class _BboArg(msgspec.Struct):
    channel: str
    instId: str


class _Bbo(msgspec.Struct):
    arg: _BboArg
    data: list[_BboData]


# bbo-tbt for the compiled reader: one push of one level per side ([price, size, "0", orders]); the other keys
# of ``_Data``/``_Msg`` are type-checked by the full path, so they decline unless harmless (strings, ints).
_OKX_ABSENT = ("instId", "askPx", "askSz", "bidPx", "bidSz", "fundingRate", "fundingTime", "nextFundingRate",
               "nextFundingTime", "tradeId", "px", "sz", "side")  # fmt: skip
_LEVELS = Arr(
    [Arr([Leaf(K_FLOAT_STR, required=True), Leaf(K_FLOAT_STR, required=True)], 2, 8, rest=Leaf(K_NUMSTR))], 1, 1
)
_BBO_PLAN = compile_plan(
    Obj(
        {
            "arg": Obj({"channel": Leaf(K_CONST, required=True, consts=("bbo-tbt",)), "instId": Leaf(K_SYMBOL, True)}),
            "data": Arr(
                [
                    Obj(
                        {
                            "asks": _LEVELS,
                            "bids": _LEVELS,
                            "ts": Leaf(K_INT_STR, required=True),
                            "seqId": Leaf(K_INT_NUM, nullable=True, nonneg=False),
                            "prevSeqId": Leaf(K_INT, nullable=True, nonneg=False),
                            "checksum": Leaf(K_INT, nullable=True, nonneg=False),
                            "instType": Leaf(K_STR, nullable=True),
                            **dict.fromkeys(_OKX_ABSENT, Leaf(K_ABSENT)),
                        }
                    )
                ],
                1,
                1,
            ),
            "action": Leaf(K_STR, nullable=True),
            "event": Leaf(K_ABSENT),
            "code": Leaf(K_ABSENT),
            "msg": Leaf(K_ABSENT),
        }
    ),
    Roles(
        ("arg", "instId"),
        ("data", 0, "bids", 0, 0),
        ("data", 0, "bids", 0, 1),
        ("data", 0, "asks", 0, 0),
        ("data", 0, "asks", 0, 1),
        ts=("data", 0, "ts"),
        seq=("data", 0, "seqId"),
    ),
)

_decode = msgspec.json.Decoder(_Msg).decode
_decode_bbo = msgspec.json.Decoder(_Bbo, strict=False).decode


def _strike_text(text: str) -> str:
    value = float(text)
    if not 0.0 < value < _INF:
        raise ValueError(f"bad strike {text!r}")
    return str(int(value)) if value == int(value) else repr(value)


class OkxAdapter(Adapter):
    """OKX v5: spot, swaps, futures and options, told apart by the instrument id.

    Examples
    --------
    >>> from live.adapters import get
    >>> ad = get("okx")
    >>> [ad.unified_symbol(s) for s in ("BTC-USDT-SWAP", "BTC-USD-SWAP", "BTC-USD-251226-45000-C")]
    ['BTC/USDT:USDT', 'BTC/USD:BTC', 'BTC/USD:BTC-251226-45000-C']
    >>> ad.venue_symbol("BTC/USD:BTC-251226")
    'BTC-USD-251226'
    """

    exchange = "okx"
    markets = ("all", "spot", "linear", "inverse", "option")
    channels = ("tickers", "bbo-tbt", "books5", "books", "books-l2-tbt", "books50-l2-tbt", "funding-rate", "trades")
    ParseError = OkxParseError

    # -- symbols --------------------------------------------------------------------------------------------
    def _to_unified(self, venue_symbol: str) -> str:
        parts = venue_symbol.split("-")
        if len(parts) < 2 or not all(p.isalnum() for p in parts[:2]):
            raise self.error(f"bad instrument id {venue_symbol!r}")
        base, quote = parts[0], parts[1]
        if len(parts) == 2:
            return f"{base}/{quote}"
        settle = quote if quote in _LINEAR_QUOTES else base
        tail = parts[2]
        if len(parts) == 3 and tail == "SWAP":
            return f"{base}/{quote}:{settle}"
        if len(tail) != 6 or not tail.isdigit():
            raise self.error(f"bad instrument id {venue_symbol!r}")
        if len(parts) == 3:
            return f"{base}/{quote}:{settle}-{tail}"
        if len(parts) == 5 and parts[4] in ("C", "P"):
            return f"{base}/{quote}:{settle}-{tail}-{_strike_text(parts[3])}-{parts[4]}"
        raise self.error(f"bad instrument id {venue_symbol!r}")

    def _to_venue(self, info: SymbolInfo) -> str:
        out = f"{info.base}-{info.quote}"
        if info.kind is InstrumentKind.SPOT:
            return out
        if info.kind is InstrumentKind.SWAP:
            return f"{out}-SWAP"
        assert info.expiry is not None
        out = f"{out}-{info.expiry.strftime('%y%m%d')}"
        if info.kind is InstrumentKind.FUTURE:
            return out
        strike = info.strike or 0.0
        return f"{out}-{int(strike) if strike == int(strike) else strike}-{info.option_type}"

    # -- subscriptions --------------------------------------------------------------------------------------
    def subscribe_message(self, channel: str, venue_symbols: Iterable[str]) -> bytes:
        """``{"op": "subscribe", "args": [{"channel": ..., "instId": ...}, ...]}``.

        Examples
        --------
        >>> from live.adapters import get
        >>> get("okx").subscribe_message("bbo-tbt", ["BTC-USDT"])
        b'{"op":"subscribe","args":[{"channel":"bbo-tbt","instId":"BTC-USDT"}]}'
        """
        self._check_channel(channel)
        return orjson.dumps({"op": "subscribe", "args": [{"channel": channel, "instId": s} for s in venue_symbols]})

    # -- fast path ------------------------------------------------------------------------------------------
    def parse_quote_tuple(self, raw: bytes, ts_recv: int) -> QuoteRow | None:
        """One QUOTES tuple from a ``bbo-tbt`` push (or a ``tickers`` push via the full path), else ``None``."""
        if raw[:28] != b'{"arg":{"channel":"bbo-tbt",':
            rows = self.parse_rows(raw, ts_recv)
            return rows.quotes[-1] if rows.quotes else None
        try:
            m = _decode_bbo(raw)
        except DECODE_ERRORS:
            m = None
        if m is not None and len(m.data) == 1:
            d = m.data[0]
            if d.bids and d.asks and len(d.bids[0]) >= 2 and len(d.asks[0]) >= 2 and 0 < d.ts < 10**14:
                bid, bid_size = d.bids[0][0], d.bids[0][1]
                ask, ask_size = d.asks[0][0], d.asks[0][1]
                if 0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF:
                    symbol = self._unified.get(m.arg.instId) or self.unified_symbol(m.arg.instId)
                    if symbol[-2] != "-":  # options go to option_quotes through the full path
                        flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
                        return (d.ts * 1_000_000, ts_recv, "okx", symbol, bid, bid_size, ask, ask_size, d.seqId, flags)
        # one-sided books, options, several pushes or garbage: the full path decides (or raises)
        rows = self.parse_rows(raw, ts_recv)
        return rows.quotes[-1] if rows.quotes else None

    def parse_quote_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """``bbo-tbt`` pushes read by the compiled kernel (see :meth:`Adapter.parse_quote_columns`); options and
        anything else: ``None``."""
        return self._columns(_BBO_PLAN, buf, starts, ends, ts_recv, exclude_options=True)

    # -- full path ------------------------------------------------------------------------------------------
    def parse_quote_batch(self, raws: Sequence[bytes], ts_recv: int) -> list[QuoteRow] | None:
        """``bbo-tbt`` pushes in one pass (see :meth:`Adapter.parse_quote_batch`); options and others: ``None``."""
        unified = self._unified
        out: list[QuoteRow] = []
        append = out.append
        for raw in raws:  # decoded one by one: each struct is dropped before the next (cheaper than all at once)
            try:
                m = _decode_bbo(raw)
            except DECODE_ERRORS:
                return None
            data = m.data
            if len(data) != 1 or m.arg.channel != "bbo-tbt":
                return None
            d = data[0]
            symbol = unified.get(m.arg.instId)
            if symbol is None or symbol[-2] == "-" or not d.bids or not d.asks or not 0 < d.ts < 10**14:
                return None  # unseen symbol, option, one-sided book, bad time: the full path decides
            top_bid, top_ask = d.bids[0], d.asks[0]
            if len(top_bid) < 2 or len(top_ask) < 2:
                return None
            bid, bid_size, ask, ask_size = top_bid[0], top_bid[1], top_ask[0], top_ask[1]
            if not (0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF):
                return None
            flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
            append((d.ts * 1_000_000, ts_recv, "okx", symbol, bid, bid_size, ask, ask_size, d.seqId, flags))
        return out

    def parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        try:
            return self._parse_rows(raw, ts_recv)
        except ParseError:
            raise
        except DECODE_ERRORS as exc:
            raise self.error(f"malformed message ({type(exc).__name__}: {exc}): {bytes(raw[:200])!r}") from None

    def _parse_rows(self, raw: bytes, ts_recv: int) -> Rows:
        rows = Rows()
        if raw == b"pong":
            return rows
        m = _decode(raw)
        if m.event is not None:
            # "channel-conn-count-error": the venue dropped the subscription (connection limit), an error too
            if m.event == "error" or m.event.endswith("-error"):
                raise self.error(f"venue error {m.code}: {m.msg} ({m.event})")
            return rows  # subscribe / unsubscribe acks, notice, channel-conn-count
        if m.arg is None or m.data is None:
            raise self.error(f"message without arg/data: {bytes(raw[:200])!r}")
        channel = m.arg.channel
        for d in m.data:
            inst = d.instId or m.arg.instId
            if inst is None:
                raise self.error(f"{channel} push without instId")
            symbol = self.unified_symbol(inst)
            if channel == "tickers":
                self._top(rows, symbol, d.bidPx, d.bidSz, d.askPx, d.askSz, d.ts, d.seqId, ts_recv)
            elif channel == "bbo-tbt":
                bid = d.bids[0] if d.bids else None
                ask = d.asks[0] if d.asks else None
                self._top(
                    rows,
                    symbol,
                    bid[0] if bid else None,
                    bid[1] if bid else None,
                    ask[0] if ask else None,
                    ask[1] if ask else None,
                    d.ts,
                    d.seqId,
                    ts_recv,
                )
            elif channel == "books5":
                self._books5(rows, symbol, d, ts_recv)
            elif channel in _BOOK_CHANNELS:
                self._book(rows, symbol, channel, m.action, d, ts_recv)
            elif channel == "funding-rate":
                self._funding(rows, symbol, d, ts_recv)
            elif channel == "trades":
                price = self.price(d.px)
                size = self.size(d.sz)
                if price is None or size is None or d.side not in ("buy", "sell"):
                    raise self.error(f"bad trade {d!r}")
                ts_event = self.timestamp_ms(d.ts, ts_recv)
                rows.trades.append((ts_event, ts_recv, "okx", symbol, d.tradeId, d.side, price, size, 0))
            else:
                raise self.error(f"unsupported channel {channel!r}")
        return rows

    def _top(
        self,
        rows: Rows,
        symbol: str,
        bid_text: str | None,
        bid_size_text: str | None,
        ask_text: str | None,
        ask_size_text: str | None,
        ts: str | None,
        seq: int | None,
        ts_recv: int,
    ) -> None:
        bid = self.price(bid_text)
        ask = self.price(ask_text)
        bid_size = self.size(bid_size_text) if bid is not None else None
        ask_size = self.size(ask_size_text) if ask is not None else None
        ts_event = self.timestamp_ms(ts, ts_recv)
        flags = 2 if bid is not None and ask is not None and bid > ask else 0
        if symbol[-2] == "-":  # option: ...-C / ...-P
            underlying, expiry, strike, option_type = self.option_terms(symbol)
            row: OptionQuoteRow = (
                ts_event,
                ts_recv,
                "okx",
                symbol,
                underlying,
                expiry,
                strike,
                option_type,
                bid,
                bid_size,
                ask,
                ask_size,
                None,
                None,
                None,
                None,
                None,
                flags,
            )
            rows.option_quotes.append(row)
            return
        rows.quotes.append((ts_event, ts_recv, "okx", symbol, bid, bid_size, ask, ask_size, seq, flags))

    def _books5(self, rows: Rows, symbol: str, d: _Data, ts_recv: int) -> None:
        bids = self.levels(d.bids or ())
        asks = self.levels(d.asks or ())
        ts_event = self.timestamp_ms(d.ts, ts_recv)
        book: list[BookRow] = rows.book
        for i, lv in enumerate(bids):
            book.append((ts_event, ts_recv, "okx", symbol, "bid", i, lv[0], lv[1], d.seqId, 0))
        for i, lv in enumerate(asks):
            book.append((ts_event, ts_recv, "okx", symbol, "ask", i, lv[0], lv[1], d.seqId, 0))
        self._top(
            rows,
            symbol,
            bids[0][2] if bids else None,
            bids[0][3] if bids else None,
            asks[0][2] if asks else None,
            asks[0][3] if asks else None,
            d.ts,
            d.seqId,
            ts_recv,
        )
        update = BookUpdate("okx", symbol, "replace", True, bids, asks, ts_event, ts_recv, seq=d.seqId, depth=5)
        rows.book_updates.append(update)

    def _book(self, rows: Rows, symbol: str, channel: str, action: str | None, d: _Data, ts_recv: int) -> None:
        if action not in ("snapshot", "update"):
            raise self.error(f"{channel} push with action {action!r}")
        bids: tuple[Level, ...] = self.levels(d.bids or ())
        asks: tuple[Level, ...] = self.levels(d.asks or ())
        update = BookUpdate(
            "okx",
            symbol,
            "okx",
            action == "snapshot",
            bids,
            asks,
            self.timestamp_ms(d.ts, ts_recv),
            ts_recv,
            seq=d.seqId,
            prev_seq=d.prevSeqId,
            checksum=d.checksum,
            depth=_BOOK_CHANNELS[channel],
        )
        rows.book_updates.append(update)

    def _funding(self, rows: Rows, symbol: str, d: _Data, ts_recv: int) -> None:
        rate = self.number(d.fundingRate)
        if rate is None:
            raise self.error("funding-rate push without fundingRate")
        next_time = self.timestamp_ms(d.fundingTime, 0) or None
        rows.funding.append(
            (
                self.timestamp_ms(d.ts, ts_recv),
                ts_recv,
                "okx",
                symbol,
                rate,
                self.number(d.nextFundingRate),
                next_time,
                None,
                None,
                0,
            )
        )
