"""Deribit JSON-RPC subscriptions (``wss://www.deribit.com/ws/api/v2``).

Layouts follow https://docs.deribit.com/#ticker-instrument_name-interval (options: mark/bid/ask IV in percent and
greeks; perpetuals: ``funding_8h`` and ``current_funding``), https://docs.deribit.com/#quote-instrument_name,
https://docs.deribit.com/#book-instrument_name-interval (``type`` snapshot/change, ``change_id`` chained by
``prev_change_id``, levels ``[action, price, amount]``) and the grouped book
``book.{instrument}.{group}.{depth}.{interval}`` (full ``[price, amount]`` books each push), and
https://docs.deribit.com/#trades-instrument_name-interval.

Units are the venue's: inverse option prices in the base coin (BTC), futures/perpetual amounts in USD notional.
Implied vols arrive in percent and are stored as fractions (67.7 -> 0.677).  ``funding_rate`` of a perpetual is
``funding_8h``, the rate over an 8-hour period; Deribit funds continuously, so ``next_funding_time`` is null.
Option tickers go to ``option_quotes`` (and their greeks to :attr:`~live.adapters.Rows.greeks`).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from arbkit.instruments import InstrumentKind, SymbolInfo
from live.adapters._base import (
    _INF,
    DECODE_ERRORS,
    MONTHS,
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
    K_FLOAT_NUM,
    K_INT,
    K_INT_NUM,
    K_NUM,
    K_PREFIX,
    K_STR,
    K_SYMBOL,
    Leaf,
    Obj,
    Roles,
    compile_plan,
)

__all__ = ["DeribitAdapter", "DeribitParseError"]


class DeribitParseError(ParseError):
    venue = "deribit"


class _Greeks(msgspec.Struct):
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    rho: float | None = None


class _Data(msgspec.Struct):
    instrument_name: str | None = None
    timestamp: int | None = None
    best_bid_price: float | None = None
    best_bid_amount: float | None = None
    best_ask_price: float | None = None
    best_ask_amount: float | None = None
    mark_price: float | None = None
    index_price: float | None = None
    underlying_price: float | None = None
    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    greeks: _Greeks | None = None
    funding_8h: float | None = None
    current_funding: float | None = None
    type: str | None = None
    change_id: int | None = None
    prev_change_id: int | None = None
    bids: list[list[str | float]] | None = None
    asks: list[list[str | float]] | None = None


class _Trade(msgspec.Struct):
    instrument_name: str
    timestamp: int
    price: float
    amount: float
    direction: str
    trade_id: str | None = None


class _Params(msgspec.Struct):
    channel: str | None = None
    data: _Data | list[_Trade] | None = None
    type: str | None = None


class _Error(msgspec.Struct):
    code: int | None = None
    message: str | None = None


class _Msg(msgspec.Struct):
    method: str | None = None
    params: _Params | None = None
    id: int | str | None = None
    result: object = None
    error: _Error | None = None


class _QuoteData(msgspec.Struct):
    instrument_name: str
    timestamp: int
    best_bid_price: float
    best_bid_amount: float
    best_ask_price: float
    best_ask_amount: float


class _QuoteParams(msgspec.Struct):
    channel: str
    data: _QuoteData


class _QuoteMsg(msgspec.Struct):
    """``quote.{instrument}`` for the fast path."""

    params: _QuoteParams


# quote.{instrument} and ticker.{instrument}.{interval} of futures and perpetuals for the compiled reader.  A
# ticker carrying funding_8h also makes a FUNDING row, which columns cannot hold: it declines, as do greeks,
# books and RPC replies.
_AMOUNT = Leaf(K_FLOAT_NUM, required=True)
_EXTRA = Leaf(K_NUM, nullable=True, nonneg=False)
_QUOTE_PLAN = compile_plan(
    Obj(
        {
            "method": Leaf(K_CONST, required=True, consts=("subscription",)),
            "params": Obj(
                {
                    "channel": Leaf(K_PREFIX, required=True, consts=("quote.", "ticker.")),
                    "type": Leaf(K_STR, nullable=True),
                    "data": Obj(
                        {
                            "instrument_name": Leaf(K_SYMBOL, required=True),
                            "timestamp": Leaf(K_INT_NUM, nullable=True),
                            "best_bid_price": _AMOUNT,
                            "best_bid_amount": _AMOUNT,
                            "best_ask_price": _AMOUNT,
                            "best_ask_amount": _AMOUNT,
                            **dict.fromkeys(
                                ("mark_price", "index_price", "underlying_price", "mark_iv", "bid_iv", "ask_iv"), _EXTRA
                            ),
                            "type": Leaf(K_STR, nullable=True),
                            "change_id": Leaf(K_INT, nullable=True, nonneg=False),
                            "prev_change_id": Leaf(K_INT, nullable=True, nonneg=False),
                            **{
                                key: Leaf(K_ABSENT)
                                for key in ("greeks", "funding_8h", "current_funding", "bids", "asks")
                            },
                        }
                    ),
                }
            ),
            **{key: Leaf(K_ABSENT) for key in ("id", "result", "error")},
        }
    ),
    Roles(
        ("params", "data", "instrument_name"),
        ("params", "data", "best_bid_price"),
        ("params", "data", "best_bid_amount"),
        ("params", "data", "best_ask_price"),
        ("params", "data", "best_ask_amount"),
        ts=("params", "data", "timestamp"),
        ts_missing_ok=True,
    ),
)

_decode = msgspec.json.Decoder(_Msg).decode
_decode_quote = msgspec.json.Decoder(_QuoteMsg).decode
_QUOTE_PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.'


def _parse_strike(text: str) -> str:
    value = float(text.replace("d", "."))  # linear options write 0.625 as 0d625
    if not 0.0 < value < _INF:
        raise ValueError(f"bad strike {text!r}")
    return str(int(value)) if value == int(value) else repr(value)


class DeribitAdapter(Adapter):
    """Deribit perpetuals, futures and options (inverse ``BTC-...`` and linear ``BTC_USDC-...``).

    Examples
    --------
    >>> from live.adapters import get
    >>> ad = get("deribit")
    >>> [ad.unified_symbol(s) for s in ("BTC-PERPETUAL", "BTC-26DEC25", "BTC-26DEC25-45000-C")]
    ['BTC/USD:BTC', 'BTC/USD:BTC-251226', 'BTC/USD:BTC-251226-45000-C']
    >>> ad.venue_symbol("ETH/USD:ETH-250103-3000-P")
    'ETH-3JAN25-3000-P'
    """

    exchange = "deribit"
    markets = ("all", "inverse", "linear", "option")
    channels = ("ticker", "quote", "book", "trades")
    ParseError = DeribitParseError

    def _to_unified(self, venue_symbol: str) -> str:
        parts = venue_symbol.split("-")
        pair = parts[0]
        if "_" in pair:
            base, _, quote = pair.partition("_")
            settle = quote
        else:
            base, quote, settle = pair, "USD", pair
        if not (base.isalnum() and quote.isalnum()) or len(parts) not in (2, 4):
            raise self.error(f"bad instrument name {venue_symbol!r}")
        if len(parts) == 2:
            if parts[1] == "PERPETUAL":
                return f"{base}/{quote}:{settle}"
            return f"{base}/{quote}:{settle}-{dmy_expiry(parts[1])}"
        if parts[3] not in ("C", "P"):
            raise self.error(f"bad option name {venue_symbol!r}")
        return f"{base}/{quote}:{settle}-{dmy_expiry(parts[1])}-{_parse_strike(parts[2])}-{parts[3]}"

    def _to_venue(self, info: SymbolInfo) -> str:
        if info.kind is InstrumentKind.SPOT or info.settle is None:
            raise self.error(f"{info} is not a Deribit derivative")
        if info.inverse and info.quote == "USD":
            pair = info.base
        elif info.linear:
            pair = f"{info.base}_{info.quote}"
        else:
            raise self.error(f"{info} is not listed on Deribit")
        if info.expiry is None:
            return f"{pair}-PERPETUAL"
        day = f"{info.expiry.day}{MONTHS[info.expiry.month - 1]}{info.expiry.strftime('%y')}"
        if info.strike is None:
            return f"{pair}-{day}"
        strike = str(int(info.strike)) if info.strike == int(info.strike) else repr(info.strike).replace(".", "d")
        return f"{pair}-{day}-{strike}-{info.option_type}"

    def subscribe_message(self, channel: str, venue_symbols: Iterable[str], request_id: int = 1) -> bytes:
        """``public/subscribe`` with ``ticker.{name}.100ms``, ``quote.{name}``, ``book.{name}.100ms``, ...

        Examples
        --------
        >>> from live.adapters import get
        >>> get("deribit").subscribe_message("quote", ["BTC-PERPETUAL"])
        b'{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["quote.BTC-PERPETUAL"]}}'
        """
        self._check_channel(channel)
        suffix = "" if channel == "quote" else ".100ms"
        channels = [f"{channel}.{s}{suffix}" for s in venue_symbols]
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": "public/subscribe", "params": {"channels": channels}}
        )

    def parse_quote_tuple(self, raw: bytes, ts_recv: int) -> QuoteRow | None:
        """A QUOTES tuple from a ``quote.{instrument}`` push (or a non-option ticker), else ``None``."""
        if raw[: len(_QUOTE_PREFIX)] == _QUOTE_PREFIX:
            try:
                d = _decode_quote(raw).params.data
            except DECODE_ERRORS:
                d = None
            if d is not None:
                bid, bid_size, ask, ask_size = d.best_bid_price, d.best_bid_amount, d.best_ask_price, d.best_ask_amount
                if (
                    0.0 < bid < _INF
                    and 0.0 < ask < _INF
                    and 0.0 <= bid_size < _INF
                    and 0.0 <= ask_size < _INF
                    and 0 < d.timestamp < 10**14
                ):
                    symbol = self._unified.get(d.instrument_name) or self.unified_symbol(d.instrument_name)
                    if symbol[-2] != "-":  # options go to option_quotes through the full path
                        flags = 2 if bid > ask else 0  # QuoteFlag.CROSSED
                        ts_event = d.timestamp * 1_000_000
                        return (ts_event, ts_recv, "deribit", symbol, bid, bid_size, ask, ask_size, None, flags)
        rows = self.parse_rows(raw, ts_recv)
        return rows.quotes[-1] if rows.quotes else None

    def parse_quote_columns(
        self, buf: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], ts_recv: int
    ) -> QuoteColumns | None:
        """``quote`` and non-option ``ticker`` pushes read by the compiled kernel (see
        :meth:`Adapter.parse_quote_columns`); options, tickers with funding and anything else: ``None``."""
        return self._columns(_QUOTE_PLAN, buf, starts, ends, ts_recv, exclude_options=True)

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
        if m.error is not None:
            raise self.error(f"venue error {m.error.code}: {m.error.message}")
        if m.method != "subscription":
            if m.method in (None, "heartbeat"):
                return rows  # RPC results (subscribe acks), heartbeats / test requests
            raise self.error(f"unsupported method {m.method!r}")
        if m.params is None or m.params.channel is None or m.params.data is None:
            raise self.error("subscription push without channel/data")
        channel = m.params.channel
        kind = channel.partition(".")[0]
        data = m.params.data
        if kind == "trades":
            if not isinstance(data, list):
                raise self.error("trades push without a list")
            self._trades(rows, data, ts_recv)
            return rows
        if isinstance(data, list):
            raise self.error(f"{kind} push with a list")
        if data.instrument_name is None:
            raise self.error(f"{kind} push without instrument_name")
        symbol = self.unified_symbol(data.instrument_name)
        ts_event = self.timestamp_ms(data.timestamp, ts_recv)
        if kind in ("ticker", "quote"):
            self._ticker(rows, symbol, data, ts_event, ts_recv, with_extras=kind == "ticker")
        elif kind == "book":
            self._book(rows, symbol, channel, data, ts_event, ts_recv)
        else:
            raise self.error(f"unsupported channel {channel!r}")
        return rows

    def _iv(self, value: float | None) -> float | None:
        if value is None:
            return None
        if not 0.0 <= value < _INF:
            raise self.error(f"bad implied vol {value!r}")
        return value / 100.0

    def _ticker(self, rows: Rows, symbol: str, d: _Data, ts_event: int, ts_recv: int, *, with_extras: bool) -> None:
        bid = self.price(d.best_bid_price)
        ask = self.price(d.best_ask_price)
        bid_size = self.size(d.best_bid_amount) if bid is not None else None
        ask_size = self.size(d.best_ask_amount) if ask is not None else None
        flags = 2 if bid is not None and ask is not None and bid > ask else 0
        if symbol[-2] == "-":  # option: ...-C / ...-P
            underlying, expiry, strike, option_type = self.option_terms(symbol)
            mark = d.mark_price
            if mark is not None and not 0.0 <= mark < _INF:
                raise self.error(f"bad mark price {mark!r}")
            rows.option_quotes.append(
                (
                    ts_event,
                    ts_recv,
                    "deribit",
                    symbol,
                    underlying,
                    expiry,
                    strike,
                    option_type,
                    bid,
                    bid_size,
                    ask,
                    ask_size,
                    self._iv(d.bid_iv) if bid is not None else None,
                    self._iv(d.ask_iv) if ask is not None else None,
                    mark,
                    self._iv(d.mark_iv),
                    self.price(d.underlying_price),
                    flags,
                )
            )
            if d.greeks is not None:
                g = d.greeks
                rows.greeks.append((ts_event, ts_recv, "deribit", symbol, g.delta, g.gamma, g.vega, g.theta, g.rho))
            return
        rows.quotes.append((ts_event, ts_recv, "deribit", symbol, bid, bid_size, ask, ask_size, None, flags))
        if with_extras and d.funding_8h is not None:
            rate = self.number(d.funding_8h)
            assert rate is not None
            rows.funding.append(
                (
                    ts_event,
                    ts_recv,
                    "deribit",
                    symbol,
                    rate,
                    None,
                    None,
                    self.price(d.mark_price),
                    self.price(d.index_price),
                    0,
                )
            )

    def _book_levels(self, items: Iterable[list[str | float]]) -> tuple[Level, ...]:
        out = []
        for item in items:
            if len(item) == 3:
                action, price_v, size_v = item
                if action not in ("new", "change", "delete"):
                    raise self.error(f"bad book action {action!r}")
                if action == "delete":
                    size_v = 0.0
            elif len(item) == 2:
                price_v, size_v = item
            else:
                raise self.error(f"bad book level {item!r}")
            if isinstance(price_v, str) or isinstance(size_v, str):
                raise self.error(f"bad book level {item!r}")
            price = float(price_v)
            size = float(size_v)
            if not (0.0 < price < _INF and 0.0 <= size < _INF):
                raise self.error(f"bad book level {item!r}")
            out.append((price, size, repr(price), repr(size)))
        return tuple(out)

    def _book(self, rows: Rows, symbol: str, channel: str, d: _Data, ts_event: int, ts_recv: int) -> None:
        parts = channel.split(".")
        grouped = len(parts) == 5  # book.{instrument}.{group}.{depth}.{interval}: a full book each push
        if not grouped and d.type not in ("snapshot", "change"):
            raise self.error(f"book push of type {d.type!r}")
        update = BookUpdate(
            "deribit",
            symbol,
            "replace" if grouped else "deribit",
            grouped or d.type == "snapshot",
            self._book_levels(d.bids or ()),
            self._book_levels(d.asks or ()),
            ts_event,
            ts_recv,
            seq=d.change_id,
            prev_seq=d.prev_change_id,
            depth=int(parts[3]) if grouped and parts[3].isdigit() else None,
        )
        rows.book_updates.append(update)

    def _trades(self, rows: Rows, trades: list[_Trade], ts_recv: int) -> None:
        for t in trades:
            price = self.price(t.price)
            size = self.size(t.amount)
            if price is None or size is None or t.direction not in ("buy", "sell"):
                raise self.error(f"bad trade {t!r}")
            rows.trades.append(
                (
                    self.timestamp_ms(t.timestamp, ts_recv),
                    ts_recv,
                    "deribit",
                    self.unified_symbol(t.instrument_name),
                    t.trade_id,
                    t.direction,  # the taker's direction
                    price,
                    size,
                    0,
                )
            )
