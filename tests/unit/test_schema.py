from __future__ import annotations

import math

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbkit import schema
from arbkit.schema import QUOTES, QuoteFlag, SchemaError, split_valid, validate


def _quotes(**overrides: list[object]) -> pl.DataFrame:
    data: dict[str, list[object]] = {
        "ts_event": [1_000, 2_000],
        "ts_recv": [1_500, 2_500],
        "exchange": ["binance", "okx"],
        "symbol": ["BTC/USDT", "BTC/USDT"],
        "bid": [100.0, 101.0],
        "bid_size": [1.0, 2.0],
        "ask": [100.5, 101.5],
        "ask_size": [1.0, 2.0],
    }
    data.update(overrides)
    return pl.DataFrame(data)


def test_arrow_and_polars_schemas_agree_for_every_table() -> None:
    for table in schema.TABLES.values():
        empty_arrow = table.arrow.empty_table()
        assert pl.from_arrow(empty_arrow).schema == table.polars  # type: ignore[union-attr]
        assert table.names == [f.name for f in table.arrow]


def test_validate_adds_optional_columns_and_orders_them() -> None:
    out = validate(_quotes().select(reversed(_quotes().columns)), QUOTES)
    assert out.columns == QUOTES.names
    assert out["flags"].to_list() == [0, 0]
    assert out["seq"].null_count() == 2


@pytest.mark.parametrize(
    ("column", "values", "row", "reason"),
    [
        ("bid", [100.0, math.nan], 1, "NaN or infinite value"),
        ("ask", [-1.0, 101.5], 0, "must be > 0"),
        ("bid_size", [1.0, -2.0], 1, "must be >= 0"),
        ("ts_event", [0, 2_000], 0, "timestamp must be > 0 ns"),
        ("bid", [200.0, 101.0], 0, "crossed quote (bid > ask) not flagged CROSSED"),
    ],
)
def test_validate_names_column_and_row(column: str, values: list[object], row: int, reason: str) -> None:
    with pytest.raises(SchemaError) as info:
        validate(_quotes(**{column: values}), QUOTES)
    assert (info.value.column, info.value.row, info.value.reason) == (column, row, reason)
    assert f"row {row}" in str(info.value)


def test_crossed_quote_passes_when_flagged() -> None:
    frame = _quotes(bid=[200.0, 101.0]).with_columns(flags=pl.Series([int(QuoteFlag.CROSSED), 0], dtype=pl.UInt16))
    assert validate(frame, QUOTES).height == 2


def test_absent_side_stays_null() -> None:
    out = validate(_quotes(bid=[None, 101.0], bid_size=[None, 2.0]), QUOTES)
    assert out["bid"].to_list() == [None, 101.0]


def test_missing_required_and_unknown_columns() -> None:
    with pytest.raises(SchemaError, match="column 'exchange': required column is missing"):
        validate(_quotes().drop("exchange"), QUOTES)
    with pytest.raises(SchemaError, match="column 'venue': column is not part of the table"):
        validate(_quotes().with_columns(venue=pl.lit("x")), QUOTES)


def test_uncastable_value_is_named() -> None:
    with pytest.raises(SchemaError, match="column 'ts_event'"):
        validate(_quotes(ts_event=["x", "y"]), QUOTES)


def test_side_and_option_type_domains() -> None:
    book = pl.DataFrame(
        {
            "ts_event": [1],
            "ts_recv": [1],
            "exchange": ["okx"],
            "symbol": ["BTC/USDT"],
            "side": ["buy"],
            "level": [0],
            "price": [1.0],
            "size": [1.0],
        }
    )
    with pytest.raises(SchemaError, match="column 'side', row 0"):
        validate(book, schema.BOOK)


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
        ),
        max_size=30,
    )
)
def test_split_valid_keeps_exactly_the_good_rows(pairs: list[tuple[float | None, float | None]]) -> None:
    n = len(pairs)
    frame = pl.DataFrame(
        {
            "ts_event": list(range(1, n + 1)),
            "ts_recv": list(range(1, n + 1)),
            "exchange": ["kraken"] * n,
            "symbol": ["ETH/USDT"] * n,
            "bid": pl.Series([p[0] for p in pairs], dtype=pl.Float64),
            "bid_size": [1.0] * n,
            "ask": pl.Series([p[1] for p in pairs], dtype=pl.Float64),
            "ask_size": [1.0] * n,
        }
    )

    def ok(x: float | None) -> bool:
        return x is None or (math.isfinite(x) and x > 0)

    expected = [
        i for i, (b, a) in enumerate(pairs) if ok(b) and ok(a) and not (b is not None and a is not None and b > a)
    ]
    good, bad = split_valid(frame, QUOTES)
    assert good["ts_event"].to_list() == [i + 1 for i in expected]
    assert sorted(bad["row"].to_list()) == sorted(set(range(n)) - set(expected))


def test_blocking_flags() -> None:
    assert QuoteFlag.blocking() & QuoteFlag.STALE
    assert not QuoteFlag.blocking() & QuoteFlag.RECONSTRUCTED
    assert pa.types.is_uint16(QUOTES.arrow.field("flags").type)
