"""Store: layout, round trips, pruning, schema checks, compaction and the append/scan invariants."""

from __future__ import annotations

import datetime as dt
import itertools
import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from arbkit import schema
from arbkit.data.store import ROW_GROUP_ROWS, Store, StoreError

DAY = 86_400 * 1_000_000_000
T0 = 1_714_521_600 * 1_000_000_000  # 2024-05-01T00:00:00Z


def quotes(rows: list[tuple[int, str, str, float]]) -> pl.DataFrame:
    """(ts_recv, exchange, symbol, bid) rows -> a valid quotes frame."""
    return pl.DataFrame(
        {
            "ts_event": [r[0] - 5 for r in rows],
            "ts_recv": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "bid": [r[3] for r in rows],
            "bid_size": [1.0] * len(rows),
            "ask": [r[3] + 1.0 for r in rows],
            "ask_size": [2.0] * len(rows),
        },
        schema_overrides={"ts_event": pl.Int64, "ts_recv": pl.Int64},
    )


def expected(frame: pl.DataFrame, clock: str = "ts_recv") -> pl.DataFrame:
    return schema.validate(frame, schema.QUOTES).sort(["symbol", clock, "exchange"], maintain_order=True)


def test_layout_follows_kind_exchange_date(tmp_path: Path) -> None:
    store = Store(tmp_path)
    frame = quotes([(T0 + 1, "binance", "BTC/USDT", 1.0), (T0 + DAY + 1, "okx", "BTC/USDT", 2.0)])
    assert store.append("quotes", frame) == 2
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "kind=quotes/exchange=binance/date=2024-05-01/part-000000.parquet",
        "kind=quotes/exchange=okx/date=2024-05-02/part-000000.parquet",
    ]
    assert store.days("quotes") == [dt.date(2024, 5, 1), dt.date(2024, 5, 2)]
    assert store.tables() == ["quotes"]


def test_each_append_adds_a_part(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i in range(3):
        store.append("quotes", quotes([(T0 + i, "binance", "BTC/USDT", 1.0 + i)]))
    names = sorted(p.name for p in (tmp_path / "kind=quotes/exchange=binance/date=2024-05-01").iterdir())
    assert names == ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    assert store.scan("quotes").collect().get_column("bid").to_list() == [1.0, 2.0, 3.0]


def test_day_boundary_uses_utc_date_of_ts_recv(tmp_path: Path) -> None:
    store = Store(tmp_path)
    # ts_event on the previous day, ts_recv exactly at midnight: the partition follows ts_recv.
    frame = quotes([(T0, "binance", "BTC/USDT", 1.0), (T0 - 1, "binance", "BTC/USDT", 1.0)])
    store.append("quotes", frame)
    assert store.days("quotes") == [dt.date(2024, 4, 30), dt.date(2024, 5, 1)]


def test_labels_partition_by_date_only(tmp_path: Path) -> None:
    store = Store(tmp_path)
    labels = pl.DataFrame(
        {
            "episode_id": ["e1", "e2"],
            "kind": ["cross_exchange", "cross_exchange"],
            "ts_start": [T0 + 10, T0 + DAY + 10],
            "ts_end": [T0 + 20, T0 + DAY + 20],
            "symbol": ["BTC/USDT", "ETH/USDT"],
            "buy_exchange": ["binance", "okx"],
            "sell_exchange": ["okx", "binance"],
            "legs": [[], []],
            "size": [1.0, 2.0],
            "expected_profit": [3.0, 4.0],
            "above_fees": [True, False],
            "stale": [False, False],
        },
        schema=schema.LABELS.polars,
    )
    assert store.append("labels", labels) == 2
    dirs = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert dirs == ["kind=labels/date=2024-05-01", "kind=labels/date=2024-05-02"]
    got = store.scan("labels", start=T0 + DAY).collect()
    assert got.get_column("episode_id").to_list() == ["e2"]
    with pytest.raises(StoreError, match="no exchange column"):
        store.scan("labels", exchange="okx")


def test_missing_table_scans_empty_with_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "absent")
    for name in ("quotes", "book", "trades", "funding", "option_quotes", "labels", "opportunities"):
        frame = store.scan(name).collect()
        assert frame.height == 0
        assert frame.schema == schema.TABLES[name].polars
    assert store.tables() == []
    assert store.info().tables == {}


def test_unknown_table_and_bad_partition_value(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(StoreError, match="orders"):
        store.scan("orders")
    with pytest.raises(StoreError, match="partition"):
        store.append("quotes", quotes([(T0, "../evil", "BTC/USDT", 1.0)]))
    assert not any(tmp_path.rglob("*.parquet"))


def test_append_validates_and_writes_nothing_on_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    bad = quotes([(T0, "binance", "BTC/USDT", 1.0), (T0 + 1, "okx", "BTC/USDT", -1.0)])
    with pytest.raises(schema.SchemaError, match=r"column 'bid', row 1"):
        store.append("quotes", bad)
    assert not any(tmp_path.rglob("*.parquet"))


def test_wrong_schema_file_names_the_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("quotes", quotes([(T0, "binance", "BTC/USDT", 1.0)]))
    bad_dir = tmp_path / "kind=quotes/exchange=okx/date=2024-05-01"
    bad_dir.mkdir(parents=True)
    bad_file = bad_dir / "part-000000.parquet"
    pq.write_table(pa.table({"ts_recv": pa.array([1.5]), "symbol": ["BTC/USDT"]}), bad_file)
    with pytest.raises(StoreError, match=r"part-000000\.parquet.*schema does not match"):
        store.scan("quotes")
    # the bad exchange partition is never opened when the scan is pruned to another exchange
    assert store.scan("quotes", exchange="binance").collect().height == 1


def test_time_pruning_never_opens_other_days(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("quotes", quotes([(T0 + 5, "binance", "BTC/USDT", 1.0), (T0 + DAY + 5, "binance", "BTC/USDT", 2.0)]))
    # corrupt the second day's file: a scan of day one must not touch it
    (next((tmp_path / "kind=quotes/exchange=binance/date=2024-05-02").iterdir())).write_bytes(b"not parquet")
    got = store.scan("quotes", start=T0, end=T0 + DAY).collect()
    assert got.get_column("bid").to_list() == [1.0]
    with pytest.raises(StoreError, match="date=2024-05-02"):
        store.scan("quotes", start=T0, end=T0 + DAY + 1)


def test_datetime_bounds_and_columns(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("quotes", quotes([(T0 + i * 1_000_000_000, "binance", "BTC/USDT", float(i + 1)) for i in range(5)]))
    start = dt.datetime(2024, 5, 1, 0, 0, 1, tzinfo=dt.UTC)
    end = dt.datetime(2024, 5, 1, 0, 0, 3)  # naive means UTC
    got = store.scan("quotes", start=start, end=end, columns=["bid", "ts_recv"]).collect()
    assert got.columns == ["bid", "ts_recv"]
    assert got.get_column("bid").to_list() == [2.0, 3.0]
    with pytest.raises(StoreError, match="no column"):
        store.scan("quotes", columns=["nope"])
    with pytest.raises(StoreError, match="clock"):
        store.scan("quotes", clock="bid")


def test_event_clock_keeps_rows_across_the_partition_day(tmp_path: Path) -> None:
    store = Store(tmp_path)
    # received just after midnight (day 2) but with an event time on day 1
    frame = quotes([(T0 + DAY + 2, "binance", "BTC/USDT", 1.0)])
    store.append("quotes", frame)
    got = store.scan("quotes", start=T0, end=T0 + DAY, clock="ts_event").collect()
    assert got.height == 1  # ts_event = T0 + DAY - 3


def test_write_replaces_only_touched_partitions(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("quotes", quotes([(T0, "binance", "BTC/USDT", 1.0), (T0, "okx", "BTC/USDT", 1.0)]))
    store.append("quotes", quotes([(T0 + 1, "binance", "BTC/USDT", 2.0)]))
    assert store.write("quotes", quotes([(T0 + 7, "binance", "ETH/USDT", 9.0)])) == 1
    got = store.scan("quotes").collect().select("exchange", "symbol", "bid").rows()
    assert got == [("okx", "BTC/USDT", 1.0), ("binance", "ETH/USDT", 9.0)]
    assert len(list((tmp_path / "kind=quotes/exchange=binance/date=2024-05-01").iterdir())) == 1


def test_compact_merges_and_keeps_scan(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i in range(4):
        store.append("quotes", quotes([(T0 + 10 - i, "binance", "BTC/USDT", float(i + 1)), (T0, "okx", "X/USDT", 1.0)]))
    before = store.scan("quotes").collect()
    summary = store.compact()
    assert summary.to_dict() == {"partitions": 2, "files_before": 8, "files_after": 2, "rows": 8}
    assert_frame_equal(store.scan("quotes").collect(), before)
    assert store.compact("quotes").partitions == 0
    # the merged file itself is sorted by (symbol, ts_recv)
    (path,) = (tmp_path / "kind=quotes/exchange=binance/date=2024-05-01").iterdir()
    assert pl.read_parquet(path).get_column("ts_recv").is_sorted()


def test_hidden_temporaries_are_ignored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("quotes", quotes([(T0, "binance", "BTC/USDT", 1.0)]))
    part_dir = tmp_path / "kind=quotes/exchange=binance/date=2024-05-01"
    (part_dir / ".tmp-deadbeef.parquet").write_bytes(b"half a file")
    assert store.scan("quotes").collect().height == 1
    assert store.info().tables["quotes"].files == 1


def test_row_groups_are_sorted_by_symbol_for_pruning(tmp_path: Path) -> None:
    store = Store(tmp_path)
    n = ROW_GROUP_ROWS + 10
    rows = [(T0 + i, "binance", sym, 1.0) for sym in ("ETH/USDT", "BTC/USDT") for i in range(n)]
    store.append("quotes", quotes(rows))
    (path,) = tmp_path.rglob("*.parquet")
    meta = pq.read_metadata(path)
    index = schema.QUOTES.names.index("symbol")
    bounds = [
        (meta.row_group(g).column(index).statistics.min, meta.row_group(g).column(index).statistics.max)
        for g in range(meta.num_row_groups)
    ]
    assert meta.num_row_groups == 3
    assert bounds[0] == ("BTC/USDT", "BTC/USDT")
    assert bounds[-1] == ("ETH/USDT", "ETH/USDT")


def test_info_reports_per_table(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("quotes", quotes([(T0 + 3, "binance", "BTC/USDT", 1.0), (T0 + DAY, "okx", "ETH/USDT", 1.0)]))
    store.append("quotes", quotes([(T0 + 1, "binance", "BTC/USDT", 1.0)]))
    info = store.info().to_dict()
    q = info["tables"]["quotes"]
    assert q["exchanges"] == ["binance", "okx"]
    assert q["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert (q["rows"], q["files"], q["ts_min"], q["ts_max"]) == (3, 3, T0 + 1, T0 + DAY)
    assert q["days"] == ["2024-05-01", "2024-05-02"]
    assert q["bytes"] == sum(p.stat().st_size for p in tmp_path.rglob("*.parquet"))


# ------------------------------------------------------------------------------------------- properties
EXCHANGES = ["binance", "okx", "kraken"]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
row_strategy = st.tuples(
    st.integers(0, 3 * DAY // 1_000_000_000),  # seconds over three days, with many ties
    st.sampled_from(EXCHANGES),
    st.sampled_from(SYMBOLS),
    st.integers(1, 1000),
)


@st.composite
def chunked_rows(draw: st.DrawFn) -> tuple[list[tuple[int, str, str, float]], list[int]]:
    raw = draw(st.lists(row_strategy, min_size=0, max_size=60))
    # coarse seconds so equal timestamps are common
    rows = [(T0 + (s // 7200) * 7200 * 1_000_000_000, e, sym, float(b)) for s, e, sym, b in raw]
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=5)))
    return rows, cuts


@settings(max_examples=40, deadline=None)
@given(data=chunked_rows(), compact=st.booleans())
def test_append_in_chunks_then_scan_equals_sorted_concat(
    data: tuple[list[tuple[int, str, str, float]], list[int]], compact: bool
) -> None:
    rows, cuts = data
    whole = quotes(rows)
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        edges = [0, *cuts, len(rows)]
        for a, b in itertools.pairwise(edges):
            store.append("quotes", whole.slice(a, b - a))
        if compact:
            store.compact()
        assert_frame_equal(store.scan("quotes").collect(), expected(whole))


@settings(max_examples=40, deadline=None)
@given(
    data=chunked_rows(),
    exchanges=st.none() | st.lists(st.sampled_from(EXCHANGES), min_size=1, max_size=2),
    symbols=st.none() | st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=2),
    start=st.none() | st.integers(0, 3 * DAY // 1_000_000_000),
    length=st.none() | st.integers(0, 2 * DAY // 1_000_000_000),
    clock=st.sampled_from(["ts_recv", "ts_event"]),
)
def test_filtered_scan_equals_filter_in_memory(
    data: tuple[list[tuple[int, str, str, float]], list[int]],
    exchanges: list[str] | None,
    symbols: list[str] | None,
    start: int | None,
    length: int | None,
    clock: str,
) -> None:
    rows, cuts = data
    whole = expected(quotes(rows), clock)
    lo = None if start is None else T0 + start * 1_000_000_000
    hi = None if length is None else (lo if lo is not None else T0) + length * 1_000_000_000
    mask = pl.repeat(True, whole.height, eager=True)
    if exchanges is not None:
        mask &= whole.get_column("exchange").is_in(exchanges)
    if symbols is not None:
        mask &= whole.get_column("symbol").is_in(symbols)
    if lo is not None:
        mask &= whole.get_column(clock) >= lo
    if hi is not None:
        mask &= whole.get_column(clock) < hi
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        edges = [0, *cuts, len(rows)]
        for a, b in itertools.pairwise(edges):
            store.append("quotes", quotes(rows[a:b]))
        got = store.scan("quotes", exchange=exchanges, symbol=symbols, start=lo, end=hi, clock=clock).collect()
    assert_frame_equal(got, whole.filter(mask))


def test_append_valid_writes_good_rows_once_and_reports_the_bad(tmp_path: Path) -> None:
    frame = quotes([(T0 + 1, "okx", "BTC/USDT", 100.0), (T0 + 2, "okx", "BTC/USDT", float("nan")),
                    (T0 + 3, "okx", "ETH/USDT", 10.0)])  # fmt: skip
    store = Store(tmp_path / "a")
    files, written, rejects = store.append_valid("quotes", frame)
    assert (len(files), written) == (1, 2)
    assert rejects.rows() == [(1, "bid", "NaN or infinite value")]
    assert sorted(store.scan("quotes").collect().get_column("ts_recv").to_list()) == [T0 + 1, T0 + 3]
    # groups are all-or-nothing: row 0 shares row 1's group and goes with it, without a reject of its own
    grouped = Store(tmp_path / "b")
    files, written, rejects = grouped.append_valid("quotes", frame, group=pl.Series([7, 7, 8]))
    assert (written, rejects.get_column("row").to_list()) == (1, [1])
    assert grouped.scan("quotes").collect().get_column("ts_recv").to_list() == [T0 + 3]
    with pytest.raises(schema.SchemaError, match="column is not part of the table"):
        store.append_valid("quotes", frame.with_columns(pl.lit(1).alias("bogus")))


def test_unsorted_scan_orders_ties_like_the_sorted_scan(tmp_path: Path) -> None:
    """``sort=False`` returns the files' rows as stored; a stable sort by clock then orders equal timestamps the
    way the sorted scan does (the contract ``detect_store`` relies on for strategies that order rows)."""
    store = Store(tmp_path)
    rows = []
    for i, (exchange, symbol, ts) in enumerate(
        [("okx", "ETH/USDT", 5), ("binance", "ETH/USDT", 5), ("okx", "BTC/USDT", 5), ("binance", "BTC/USDT", 3),
         ("okx", "BTC/USDT", 3), ("binance", "ETH/USDT", 1)]
    ):  # fmt: skip
        rows.append(
            {"ts_event": ts, "ts_recv": ts, "exchange": exchange, "symbol": symbol, "bid": 1.0 + i, "bid_size": 1.0,
             "ask": 2.0 + i, "ask_size": 1.0, "seq": i, "flags": 0}
        )  # fmt: skip
    store.append("quotes", pl.DataFrame(rows, schema=schema.QUOTES.polars))
    ordered = store.scan("quotes").collect().sort("ts_recv", maintain_order=True)
    raw = store.scan("quotes", sort=False).collect()
    assert raw.height == ordered.height
    assert (
        raw.sort("ts_recv", maintain_order=True)
        .sort("symbol", maintain_order=True)
        .equals(ordered.sort("symbol", maintain_order=True))
    )
