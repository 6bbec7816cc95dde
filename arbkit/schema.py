"""One source of truth for every table arbkit reads or writes.

Each table is declared once as a list of :class:`Column` (Arrow type, nullability and a value rule); the Arrow
schema and the matching Polars schema are derived from that declaration, so readers, adapters, generators and
stores can never disagree on a type.  :func:`validate` is the gate every boundary calls (Parquet in, adapter
out): it names the offending column and row instead of letting a bad value travel into detection.

Conventions
-----------
* Timestamps are ``int64`` nanoseconds since the Unix epoch, UTC.  ``ts_event`` is the venue's event time,
  ``ts_recv`` the local receive time (NautilusTrader's ``ts_event``/``ts_init``).
* Prices and sizes are ``float64`` for research tables; orders, fills and positions carry exact decimals.
* ``exchange`` is the CCXT exchange id, ``symbol`` the unified CCXT symbol (see :mod:`arbkit.instruments`).
* ``flags`` is a :class:`QuoteFlag` bitmask so data integrity travels with the data.

Examples
--------
>>> import polars as pl
>>> frame = pl.DataFrame(
...     {"ts_event": [1], "ts_recv": [2], "exchange": ["binance"], "symbol": ["BTC/USDT"],
...      "bid": [100.0], "bid_size": [1.0], "ask": [100.5], "ask_size": [2.0]}
... )
>>> validate(frame, QUOTES).columns[:4]
['ts_event', 'ts_recv', 'exchange', 'symbol']
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import polars as pl
import pyarrow as pa

__all__ = [
    "BOOK",
    "FILLS",
    "FUNDING",
    "LABELS",
    "OPPORTUNITIES",
    "OPTION_QUOTES",
    "ORDERS",
    "POSITIONS",
    "QUOTES",
    "TABLES",
    "TRADES",
    "Column",
    "QuoteFlag",
    "SchemaError",
    "Table",
    "empty",
    "find_invalid",
    "split_valid",
    "validate",
]

Rule = Literal["any", "positive", "non_negative", "finite"]


class QuoteFlag(enum.IntFlag):
    """Integrity bits carried by every market-data row.

    Detectors never report an opportunity built on a row with any of ``BLOCKING`` set as active.
    """

    NONE = 0
    STALE = 1  # older than the venue's max_age, or the feed stalled
    CROSSED = 2  # bid > ask on a single venue book
    UNVERIFIED = 4  # book not yet synced to a snapshot, or checksum unknown
    RESYNCING = 8  # sequence gap or checksum mismatch: book is being rebuilt
    RECONSTRUCTED = 16  # derived (e.g. top of book from a depth snapshot), informational only
    OUTAGE = 32  # venue announced maintenance or the connection is down

    @classmethod
    def blocking(cls) -> int:
        """Bits that make a quote unusable for an active opportunity."""
        return int(cls.STALE | cls.CROSSED | cls.UNVERIFIED | cls.RESYNCING | cls.OUTAGE)


class SchemaError(ValueError):
    """A frame does not match its table: names the table, column and (0-based) row."""

    def __init__(self, table: str, column: str | None, row: int | None, reason: str) -> None:
        self.table = table
        self.column = column
        self.row = row
        self.reason = reason
        where = f"column {column!r}" if column is not None else "frame"
        at = f", row {row}" if row is not None else ""
        super().__init__(f"{table}: {where}{at}: {reason}")


@dataclass(frozen=True, slots=True)
class Column:
    """One column: Arrow type, whether nulls are allowed, and the value rule checked by :func:`validate`."""

    name: str
    type: pa.DataType
    nullable: bool = False
    rule: Rule = "any"


@dataclass(frozen=True, slots=True)
class Table:
    """A named table; ``arrow`` and ``polars`` schemas are derived, never written by hand."""

    name: str
    columns: tuple[Column, ...]
    sort_key: tuple[str, ...] = ()

    @property
    def arrow(self) -> pa.Schema:
        return _arrow_schema(self)

    @property
    def polars(self) -> pl.Schema:
        return _polars_schema(self)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@functools.cache
def _arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in table.columns])


@functools.cache
def _polars_schema(table: Table) -> pl.Schema:
    # derived once per table: hot paths (adapters, batcher) read it per message
    return pl.Schema(pl.from_arrow(_arrow_schema(table).empty_table()).schema)  # type: ignore[union-attr]


_TS = pa.int64()
_F = pa.float64()
_S = pa.string()
_MONEY = pa.decimal128(38, 18)


def _ts(name: str, nullable: bool = False) -> Column:
    return Column(name, _TS, nullable, "positive")


def _market_keys() -> tuple[Column, ...]:
    return (_ts("ts_event"), _ts("ts_recv"), Column("exchange", _S), Column("symbol", _S))


QUOTES = Table(
    "quotes",
    (
        *_market_keys(),
        Column("bid", _F, True, "positive"),
        Column("bid_size", _F, True, "non_negative"),
        Column("ask", _F, True, "positive"),
        Column("ask_size", _F, True, "non_negative"),
        Column("seq", pa.int64(), True),
        Column("flags", pa.uint16(), False),
    ),
    sort_key=("symbol", "ts_recv"),
)

TRADES = Table(
    "trades",
    (
        *_market_keys(),
        Column("trade_id", _S, True),
        Column("side", _S, True),  # "buy" | "sell": the aggressor side
        Column("price", _F, False, "positive"),
        Column("size", _F, False, "non_negative"),
        Column("flags", pa.uint16(), False),
    ),
    sort_key=("symbol", "ts_recv"),
)

BOOK = Table(
    "book",
    (
        *_market_keys(),
        Column("side", _S),  # "bid" | "ask"
        Column("level", pa.uint16()),  # 0 = best
        Column("price", _F, False, "positive"),
        Column("size", _F, False, "non_negative"),
        Column("seq", pa.int64(), True),
        Column("flags", pa.uint16(), False),
    ),
    sort_key=("symbol", "ts_recv"),
)

FUNDING = Table(
    "funding",
    (
        *_market_keys(),
        Column("funding_rate", _F, False, "finite"),  # rate of the current period, fraction (not %)
        Column("predicted_rate", _F, True, "finite"),
        _ts("next_funding_time", nullable=True),
        Column("mark_price", _F, True, "positive"),
        Column("index_price", _F, True, "positive"),
        Column("flags", pa.uint16(), False),
    ),
    sort_key=("symbol", "ts_recv"),
)

OPTION_QUOTES = Table(
    "option_quotes",
    (
        *_market_keys(),
        Column("underlying", _S),  # unified symbol of the underlying index/spot, e.g. "BTC/USD"
        _ts("expiry"),
        Column("strike", _F, False, "positive"),
        Column("option_type", _S),  # "C" | "P"
        Column("bid", _F, True, "positive"),
        Column("bid_size", _F, True, "non_negative"),
        Column("ask", _F, True, "positive"),
        Column("ask_size", _F, True, "non_negative"),
        Column("bid_iv", _F, True, "non_negative"),
        Column("ask_iv", _F, True, "non_negative"),
        Column("mark_price", _F, True, "non_negative"),
        Column("mark_iv", _F, True, "non_negative"),
        Column("underlying_price", _F, True, "positive"),
        Column("flags", pa.uint16(), False),
    ),
    sort_key=("symbol", "ts_recv"),
)

LEG = pa.struct(
    [
        pa.field("exchange", _S),
        pa.field("symbol", _S),
        pa.field("side", _S),
        pa.field("price", _F),
        pa.field("size", _F),
    ]
)

OPPORTUNITIES = Table(
    "opportunities",
    (
        Column("id", _S),  # deterministic: hash of kind, legs and ts_start
        Column("kind", _S),  # cross_exchange | triangular | basis | parity
        _ts("ts_start"),
        _ts("ts_end"),
        Column("symbol", _S),  # the instrument (or cycle description) the opportunity is about
        Column("legs", pa.list_(LEG)),
        Column("buy_exchange", _S),
        Column("sell_exchange", _S),
        Column("buy_price", _F, True, "positive"),
        Column("sell_price", _F, True, "positive"),
        Column("size", _F, False, "non_negative"),
        Column("profit", _F, False, "finite"),  # quote currency, net of fees (last observed)
        Column("peak_profit", _F, False, "finite"),
        Column("profit_percentage", _F, False, "finite"),
        Column("confidence", _F, False, "non_negative"),
        Column("rows", pa.int64(), False, "positive"),  # timeline rows the episode spans
        Column("status", _S),  # active | executed | expired
    ),
    sort_key=("ts_start", "id"),
)

LABELS = Table(
    "labels",
    (
        Column("episode_id", _S),
        Column("kind", _S),
        _ts("ts_start"),
        _ts("ts_end"),
        Column("symbol", _S),
        Column("buy_exchange", _S),
        Column("sell_exchange", _S),
        Column("legs", pa.list_(LEG)),
        Column("size", _F, False, "non_negative"),
        Column("expected_profit", _F, False, "finite"),  # net of fees, quote currency, at injected size
        Column("above_fees", pa.bool_()),
        Column("stale", pa.bool_()),  # injected on a quote flagged stale: must NOT be detected as active
    ),
    sort_key=("ts_start", "episode_id"),
)

ORDERS = Table(
    "orders",
    (
        Column("order_id", _S),
        Column("client_order_id", _S, True),
        Column("exchange", _S),
        Column("symbol", _S),
        Column("side", _S),  # buy | sell
        Column("type", _S),  # market | limit
        Column("time_in_force", _S),  # GTC | IOC | FOK
        Column("quantity", _MONEY),
        Column("price", _MONEY, True),
        Column("status", _S),  # new | partially_filled | filled | cancelled | rejected
        Column("filled_quantity", _MONEY),
        Column("average_price", _MONEY, True),
        Column("fees", _MONEY),
        _ts("created_at"),
        _ts("updated_at"),
    ),
    sort_key=("created_at", "order_id"),
)

FILLS = Table(
    "fills",
    (
        Column("fill_id", _S),
        Column("order_id", _S),
        Column("exchange", _S),
        Column("symbol", _S),
        Column("side", _S),
        Column("quantity", _MONEY),
        Column("price", _MONEY),
        Column("fee", _MONEY),
        Column("fee_currency", _S),
        Column("liquidity", _S),  # maker | taker
        _ts("ts"),
    ),
    sort_key=("ts", "fill_id"),
)

POSITIONS = Table(
    "positions",
    (
        Column("exchange", _S),
        Column("symbol", _S),
        Column("quantity", _MONEY),  # signed: long > 0
        Column("average_price", _MONEY, True),
        Column("realized_pnl", _MONEY),
        Column("unrealized_pnl", _MONEY, True),
        _ts("updated_at"),
    ),
    sort_key=("exchange", "symbol"),
)

TABLES: Mapping[str, Table] = {
    t.name: t for t in (QUOTES, TRADES, BOOK, FUNDING, OPTION_QUOTES, OPPORTUNITIES, LABELS, ORDERS, FILLS, POSITIONS)
}


def empty(table: Table) -> pl.DataFrame:
    """An empty frame with the table's exact Polars schema.

    Built once per table and handed out as ``clear()`` copies: building a frame from a schema costs ~0.1-0.3 ms,
    paid by every micro-batch that lacks a table.
    """
    cached = _EMPTY.get(id(table))
    if cached is None or cached[0] is not table:
        cached = _EMPTY[id(table)] = (table, pl.DataFrame(schema=table.polars))
    return cached[1].clear()


_EMPTY: dict[int, tuple[Table, pl.DataFrame]] = {}


def _cast(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    missing = [n for n in table.names if n not in frame.columns]
    optional_missing = [n for n in missing if table.column(n).nullable or n == "flags"]
    required_missing = [n for n in missing if n not in optional_missing]
    if required_missing:
        raise SchemaError(table.name, required_missing[0], None, "required column is missing")
    extra = [c for c in frame.columns if c not in table.names]
    if extra:
        raise SchemaError(table.name, extra[0], None, "column is not part of the table")
    schema = table.polars
    if optional_missing:
        frame = frame.with_columns(
            pl.lit(0 if n == "flags" else None, dtype=schema[n]).alias(n) for n in optional_missing
        )
    out = []
    for name in table.names:
        series = frame.get_column(name)
        want = schema[name]
        if series.dtype != want:
            try:
                cast = series.cast(want, strict=True)
            except Exception as exc:  # polars raises several exception types for failed casts
                raise SchemaError(table.name, name, None, f"cannot cast {series.dtype} to {want}: {exc}") from exc
            bad = cast.is_null() & series.is_not_null()
            if bad.any():
                row = int(bad.arg_true()[0])
                raise SchemaError(table.name, name, row, f"value {series[row]!r} does not fit {want}")
            series = cast
        out.append(series)
    return pl.DataFrame(out)


def _violations(frame: pl.DataFrame, table: Table) -> list[tuple[str, pl.Expr, str]]:
    """(column, boolean 'is bad' expression, reason) for every value rule of the table."""
    checks: list[tuple[str, pl.Expr, str]] = []
    for c in table.columns:
        col = pl.col(c.name)
        if not c.nullable:
            checks.append((c.name, col.is_null(), "null in a required column"))
        if c.type in (_F,):
            if c.rule in ("positive", "non_negative", "finite"):
                checks.append((c.name, col.is_nan() | col.is_infinite(), "NaN or infinite value"))
            if c.rule == "positive":
                checks.append((c.name, col <= 0, "must be > 0"))
            elif c.rule == "non_negative":
                checks.append((c.name, col < 0, "must be >= 0"))
        elif c.type == _TS and c.rule == "positive":
            checks.append((c.name, col <= 0, "timestamp must be > 0 ns"))
    if "bid" in table.names and "ask" in table.names and "flags" in table.names:
        crossed = (pl.col("bid") > pl.col("ask")) & ((pl.col("flags").cast(pl.Int64) & int(QuoteFlag.CROSSED)) == 0)
        checks.append(("bid", crossed, "crossed quote (bid > ask) not flagged CROSSED"))
    if table is BOOK or table is TRADES:
        side_ok = ["bid", "ask"] if table is BOOK else ["buy", "sell"]
        checks.append(("side", ~pl.col("side").is_in(side_ok) & pl.col("side").is_not_null(), f"not in {side_ok}"))
    if table is OPTION_QUOTES:
        checks.append(("option_type", ~pl.col("option_type").is_in(["C", "P"]), "not 'C' or 'P'"))
    return checks


def find_invalid(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    """Every rule violation as rows ``(row, column, reason)``; empty when the frame is valid.

    The frame must already have the table's columns and types (see :func:`validate`).
    """
    checks = _violations(frame, table)
    if frame.height == 0 or not checks:
        return pl.DataFrame(schema={"row": pl.UInt32, "column": pl.String, "reason": pl.String})
    flags = frame.select(
        [expr.fill_null(False).alias(f"c{i}") for i, (_, expr, _) in enumerate(checks)]
    ).with_row_index("row")
    parts = []
    for i, (name, _, reason) in enumerate(checks):
        hit = flags.filter(pl.col(f"c{i}")).select("row", pl.lit(name).alias("column"), pl.lit(reason).alias("reason"))
        if hit.height:
            parts.append(hit)
    if not parts:
        return pl.DataFrame(schema={"row": pl.UInt32, "column": pl.String, "reason": pl.String})
    return pl.concat(parts).sort("row", maintain_order=True)


def validate(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    """Return ``frame`` cast to the table's schema and column order, or raise :class:`SchemaError`.

    Optional columns (nullable ones and ``flags``) are added when absent; unknown columns are rejected so a typo
    never passes silently.  The error names the first offending column and row.

    Examples
    --------
    >>> import polars as pl
    >>> bad = pl.DataFrame({"ts_event": [1], "ts_recv": [1], "exchange": ["okx"], "symbol": ["BTC/USDT"],
    ...                     "bid": [float("nan")], "bid_size": [1.0], "ask": [1.0], "ask_size": [1.0]})
    >>> validate(bad, QUOTES)
    Traceback (most recent call last):
    ...
    arbkit.schema.SchemaError: quotes: column 'bid', row 0: NaN or infinite value
    """
    cast = _cast(frame, table)
    bad = find_invalid(cast, table)
    if bad.height:
        row, column, reason = bad.row(0)
        raise SchemaError(table.name, column, int(row), reason)
    return cast


def split_valid(frame: pl.DataFrame, table: Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a frame into ``(valid rows, rejects)`` so importers can skip bad rows and keep every good one.

    ``rejects`` has the columns ``row``, ``column`` and ``reason`` (first violation per row).
    """
    cast = _cast(frame, table)
    bad = find_invalid(cast, table)
    if bad.height == 0:
        return cast, bad
    first = bad.unique("row", keep="first", maintain_order=True)
    good = cast.with_row_index("__row").filter(~pl.col("__row").is_in(first["row"].implode())).drop("__row")
    return good, first
