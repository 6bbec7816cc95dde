"""Binance public-data importer: layouts, units, markets, checksums and bad rows."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from arbkit.data.importers import ImportDataError, import_binance
from arbkit.data.store import Store

RES = Path(__file__).parents[2] / "resources" / "importers"


def test_book_ticker_futures_with_header(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    report = import_binance([RES / "BTCUSDT-bookTicker-2023-05-16.csv"], store)
    assert report.rows_written == {"quotes": 3}
    first = store.scan("quotes").collect().row(0, named=True)
    assert (first["exchange"], first["symbol"]) == ("binance", "BTC/USDT:USDT")
    assert first["ts_event"] == 1684195200012 * 1_000_000  # ms -> ns
    assert first["ts_recv"] == 1684195200015 * 1_000_000
    assert (first["bid"], first["bid_size"], first["ask"], first["ask_size"]) == (27250.10, 3.512, 27250.20, 1.205)
    assert first["seq"] == 3012345678901
    assert store.days("quotes")[0].isoformat() == "2023-05-16"


def test_spot_agg_trades_headerless_milliseconds(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    import_binance([RES / "BTCUSDT-aggTrades-2024-01-01.csv"], store)
    got = store.scan("trades").collect()
    assert got.select("symbol", "trade_id", "side", "price", "size", "ts_event").rows() == [
        ("BTC/USDT", "1041234567", "sell", 42283.58, 0.00117, 1704067200016 * 1_000_000),
        ("BTC/USDT", "1041234568", "buy", 42283.59, 0.02840, 1704067200034 * 1_000_000),
        ("BTC/USDT", "1041234569", "sell", 42283.58, 0.00050, 1704067200102 * 1_000_000),
    ]


def test_spot_2025_microseconds_detected(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    import_binance([RES / "BTCUSDT-aggTrades-2025-01-01.csv"], store)
    ts = store.scan("trades").collect().get_column("ts_event").to_list()
    assert ts == [1735689600001234 * 1_000, 1735689600002345 * 1_000]
    assert store.days("trades")[0].isoformat() == "2025-01-01"


def test_usdm_agg_trades_with_header_and_lowercase_booleans(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    import_binance([RES / "ETHUSDT-aggTrades-2024-01-01.csv"], store)
    got = store.scan("trades").collect()
    assert got.get_column("symbol").to_list() == ["ETH/USDT:USDT"] * 2
    assert got.get_column("side").to_list() == ["buy", "sell"]


def test_market_from_download_path_and_override(tmp_path: Path) -> None:
    um = tmp_path / "data" / "futures" / "um" / "daily" / "bookTicker" / "BTCUSDT"
    um.mkdir(parents=True)
    shutil.copy(RES / "BTCUSDT-bookTicker-2023-05-16.csv", um)
    store = Store(tmp_path / "s")
    import_binance([um / "BTCUSDT-bookTicker-2023-05-16.csv"], store)
    assert store.scan("quotes").collect().get_column("symbol").unique().to_list() == ["BTC/USDT:USDT"]
    other = Store(tmp_path / "o")
    import_binance([RES / "BTCUSDT-bookTicker-2023-05-16.csv"], other, market="spot", exchange="binance")
    assert other.scan("quotes").collect().get_column("symbol").unique().to_list() == ["BTC/USDT"]
    with pytest.raises(ValueError, match="unknown Binance market"):
        import_binance([RES / "BTCUSDT-bookTicker-2023-05-16.csv"], other, market="margin")


def test_zip_with_correct_checksum(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    report = import_binance([RES / "good" / "BTCUSDT-aggTrades-2024-01-01.zip"], store)
    assert report.rows_written == {"trades": 3}
    plain = Store(tmp_path / "p")
    import_binance([RES / "BTCUSDT-aggTrades-2024-01-01.csv"], plain)
    assert store.scan("trades").collect().equals(plain.scan("trades").collect())


def test_zip_with_wrong_checksum_is_refused_even_when_skipping(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with pytest.raises(ImportDataError, match="SHA-256") as info:
        import_binance([RES / "bad" / "BTCUSDT-aggTrades-2024-01-01.zip"], store, skip_bad=True)
    assert info.value.file.endswith("BTCUSDT-aggTrades-2024-01-01.zip")
    assert store.tables() == []


def test_gzip_and_symbol_override(tmp_path: Path) -> None:
    gz = tmp_path / "trades.csv.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write((RES / "BTCUSDT-aggTrades-2024-01-01.csv").read_bytes())
    store = Store(tmp_path / "s")
    with pytest.raises(ImportDataError, match="no symbol"):
        import_binance([gz], store)
    import_binance([gz], store, symbol="BTC/USDT")
    assert store.scan("trades").collect().height == 3


def test_unknown_symbol_in_file_name(tmp_path: Path) -> None:
    path = tmp_path / "NOTAPAIR-aggTrades-2024-01-01.csv"
    shutil.copy(RES / "BTCUSDT-aggTrades-2024-01-01.csv", path)
    with pytest.raises(ImportDataError, match="unknown symbol") as info:
        import_binance([path], Store(tmp_path / "s"), skip_bad=True)
    assert info.value.field == "symbol"


def test_name_and_layout_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-bookTicker-2024-01-01.csv"
    shutil.copy(RES / "ETHUSDT-aggTrades-2024-01-01.csv", path)
    with pytest.raises(ImportDataError, match="file name says 'bookTicker'"):
        import_binance([path], Store(tmp_path / "s"))


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ("3012345678906,nan,1.0,27250.3,1.0,1684195200300,1684195200301", "best_bid_price", "NaN"),
        ("3012345678906,27250.0,1.0,-1,1.0,1684195200300,1684195200301", "best_ask_price", "> 0"),
        ("3012345678906,27251.0,1.0,27250.0,1.0,1684195200300,1684195200301", "best_bid_price", "crossed"),
        ("3012345678906,27250.0,1.0,27250.3,abc,1684195200300,1684195200301", "best_ask_qty", "cannot parse"),
        ("3012345678906,27250.0,1.0", None, "malformed"),
        # a microsecond value in a millisecond file: not 52 years later, a reject
        ("3012345678906,27250.0,1.0,27250.3,1.0,1684195200300000,1684195200301", "transaction_time", "overflows int64"),
        ("3012345678906,27250.0,1.0,27250.3,1.0,1684195200300,1684195200", "event_time", "unit \\(ms\\)"),
    ],
)
def test_bad_book_ticker_rows(tmp_path: Path, row: str, field: str | None, reason: str) -> None:
    lines = (RES / "BTCUSDT-bookTicker-2023-05-16.csv").read_text().splitlines()
    path = tmp_path / "BTCUSDT-bookTicker-2023-05-16.csv"
    path.write_text("\n".join([*lines[:3], row, *lines[3:]]) + "\n")
    store = Store(tmp_path / "s")
    with pytest.raises(ImportDataError, match=reason) as info:
        import_binance([path], store)
    assert (info.value.line, info.value.field) == (4, field)
    assert store.tables() == []
    report = import_binance([path], store, skip_bad=True)
    assert (report.rows_written, report.rows_rejected) == ({"quotes": 3}, 1)
    assert report.to_dict()["rejects"][0][1:3] == [4, field]


def test_one_corrupt_timestamp_cannot_change_the_files_unit(tmp_path: Path) -> None:
    # the corrupt row comes first: the unit is the file's (ms), not that of its largest value
    lines = (RES / "BTCUSDT-bookTicker-2023-05-16.csv").read_text().splitlines()
    corrupt = "3012345678900,27250.0,1.0,27250.3,1.0,1684195200000000000000,1684195200001"
    path = tmp_path / "BTCUSDT-bookTicker-2023-05-16.csv"
    path.write_text("\n".join([lines[0], corrupt, *lines[1:]]) + "\n")
    store = Store(tmp_path / "s")
    report = import_binance([path], store, skip_bad=True)
    assert (report.rows_written, report.rows_rejected) == ({"quotes": 3}, 1)
    assert (report.rejects[0].line, report.rejects[0].field) == (2, "transaction_time")
    ts = store.scan("quotes").collect().get_column("ts_event").to_list()
    assert ts == [1684195200012_000_000, 1684195200120_000_000, 1684195200250_000_000]


def test_blank_lines_are_skipped_and_counted_not_rejected(tmp_path: Path) -> None:
    lines = (RES / "BTCUSDT-bookTicker-2023-05-16.csv").read_text().splitlines()
    path = tmp_path / "BTCUSDT-bookTicker-2023-05-16.csv"
    path.write_text("\n".join([lines[0], lines[1], "", lines[2], "", lines[3]]) + "\n")
    report = import_binance([path], Store(tmp_path / "s"))  # strict: a blank line is not an error
    assert (report.rows_written, report.rows_rejected, report.rows_skipped) == ({"quotes": 3}, 0, 2)
