"""Tardis importer: real export samples against their published first rows, bad input, streaming and rollback."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from arbkit.data.importers import ImportDataError, import_tardis, unify
from arbkit.data.store import Store
from arbkit.instruments import SymbolError

RES = Path(__file__).parents[2] / "resources" / "importers"
EXPECTED = json.loads((RES / "expected_rows.json").read_text())["files"]
QUOTES_HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"


def _write(path: Path, body: str) -> Path:
    path.write_text(QUOTES_HEADER + body)
    return path


def test_quotes_sample_matches_published_first_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    report = import_tardis([RES / "tardis_quotes_sample.csv"], store)
    want = EXPECTED["tardis_quotes_sample.csv"]
    assert report.rows_written == {"quotes": want["n_data_rows"]}
    first = store.scan("quotes").collect().row(0, named=True)
    row = want["first_row_expected"]
    assert first["exchange"] == "huobi"
    assert first["symbol"] == "BTC/USD:BTC"  # huobi-dm-swap BTC-USD is the inverse perpetual
    assert first["ts_event"] == row["ts_us"] * 1000
    assert first["ts_recv"] == row["local_ts_us"] * 1000
    assert (first["bid"], first["bid_size"], first["ask"], first["ask_size"]) == (
        row["bid"],
        row["bid_size"],
        row["ask"],
        row["ask_size"],
    )


def test_trades_sample(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    import_tardis([RES / "tardis_trades_sample.csv"], store)
    row = EXPECTED["tardis_trades_sample.csv"]["first_row_expected"]
    got = store.scan("trades").collect()
    assert got.height == 5
    first = got.row(0, named=True)
    assert (first["exchange"], first["symbol"]) == ("bitmex", "BTC/USD:BTC")
    assert (first["trade_id"], first["side"], first["price"], first["size"]) == (
        row["id"],
        row["taker_side"],
        row["price"],
        row["amount"],
    )


@pytest.mark.parametrize(
    ("name", "depth"), [("tardis_book_snapshot_5_sample.csv", 5), ("tardis_book_snapshot_25_sample.csv", 25)]
)
def test_book_snapshot_samples(tmp_path: Path, name: str, depth: int) -> None:
    store = Store(tmp_path / "s")
    report = import_tardis([RES / name], store)
    want = EXPECTED[name]
    assert report.rows_written == {"book": want["n_data_rows"] * depth * 2}
    row = want["first_row_expected"]
    book = store.scan("book").collect()
    first = book.filter(pl.col("ts_recv") == book.get_column("ts_recv").min())
    assert set(first.get_column("symbol")) == {"BTC/USDT:USDT"}
    bids = first.filter(pl.col("side") == "bid").sort("level")
    asks = first.filter(pl.col("side") == "ask").sort("level")
    assert (bids["price"][0], bids["size"][0], asks["price"][0], asks["size"][0]) == (
        row["bid"],
        row["bid_size"],
        row["ask"],
        row["ask_size"],
    )
    if depth == 5:
        assert bids.select("price", "size").rows() == [tuple(x) for x in row["bids"]]
        assert asks.select("price", "size").rows() == [tuple(x) for x in row["asks"]]
    else:
        assert (asks["price"][24], asks["size"][24]) == tuple(row["level_24"]["ask"])
        assert (bids["price"][24], bids["size"][24]) == tuple(row["level_24"]["bid"])


def test_derivative_ticker_sample(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    import_tardis([RES / "tardis_derivative_ticker_sample.csv"], store)
    row = EXPECTED["tardis_derivative_ticker_sample.csv"]["first_row_expected"]
    first = store.scan("funding").collect().row(0, named=True)
    assert first["funding_rate"] == row["funding_rate"]
    assert first["predicted_rate"] == row["predicted_funding_rate"]
    assert first["next_funding_time"] == row["funding_ts_us"] * 1000
    assert (first["mark_price"], first["index_price"]) == (row["mark_price"], row["index_price"])


def test_options_chain_sample(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    import_tardis([RES / "tardis_options_chain_sample.csv"], store)
    row = EXPECTED["tardis_options_chain_sample.csv"]["first_row_expected"]
    got = store.scan("option_quotes").collect()
    assert got.height == 2  # including the row whose timestamp is after its local_timestamp
    first = got.row(0, named=True)
    assert first["symbol"] == "BTC/USD:BTC-200609-9875-P"
    assert (first["underlying"], first["option_type"], first["strike"]) == ("BTC/USD", "P", row["strike"])
    assert first["expiry"] == row["expiration_us"] * 1000
    assert first["bid_iv"] == pytest.approx(row["bid_iv_pct"] / 100)
    assert first["mark_iv"] == pytest.approx(row["mark_iv_pct"] / 100)
    assert (first["bid"], first["ask"], first["underlying_price"]) == (row["bid"], row["ask"], row["underlying_price"])


def test_incremental_book_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ImportDataError, match="incremental_book_L2"):
        import_tardis([RES / "tardis_incremental_book_L2_sample.csv"], Store(tmp_path))


def test_empty_side_stays_null(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.csv", "binance,BTCUSDT,1700000000000000,1700000000000100,,,100.5,2\n")
    store = Store(tmp_path / "s")
    import_tardis([path], store)
    row = store.scan("quotes").collect().row(0, named=True)
    assert row["symbol"] == "BTC/USDT"
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == (100.5, 2.0, None, None)


def test_gzip_equals_plain(tmp_path: Path) -> None:
    gz = tmp_path / "huobi-dm-swap_quotes_2020-05-01_BTC-USD.csv.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write((RES / "tardis_quotes_sample.csv").read_bytes())
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    import_tardis([gz], a)
    import_tardis([RES / "tardis_quotes_sample.csv"], b)
    assert a.scan("quotes").collect().equals(b.scan("quotes").collect())


def test_file_name_must_agree_with_header(tmp_path: Path) -> None:
    path = tmp_path / "binance_trades_2024-01-01_BTCUSDT.csv"
    shutil.copy(RES / "tardis_quotes_sample.csv", path)
    with pytest.raises(ImportDataError, match="file name says 'trades'"):
        import_tardis([path], Store(tmp_path / "s"))


BAD_ROWS = [
    # (csv data row, field named in the error, reason fragment)
    ("binance,BTCUSDT,1700000000000000,1700000000000100,1,nan,100.0,1\n", "ask_price", "NaN"),
    ("binance,BTCUSDT,1700000000000000,1700000000000100,1,101.0,-100.0,1\n", "bid_price", "> 0"),
    ("binance,BTCUSDT,1700000000000000,1700000000000100,1,99.0,100.0,1\n", "bid_price", "crossed"),
    ("binance,BTCUSDT,1700000000000000,1700000000000100,1,1O1.0,100.0,1\n", "ask_price", "cannot parse"),
    ("binance,BTCUSDT,17000000000x0000,1700000000000100,1,101.0,100.0,1\n", "timestamp", "cannot parse"),
    ("binance,NOTAPAIR,1700000000000000,1700000000000100,1,101.0,100.0,1\n", "symbol", "unknown symbol"),
    ("nasdaq,BTCUSDT,1700000000000000,1700000000000100,1,101.0,100.0,1\n", "symbol", "unknown Tardis exchange"),
    ("binance,BTCUSDT,1700000000000000,1700000000000100,1,101.0\n", None, "malformed CSV row"),
    # 1e17 us does not fit int64 ns: it must not wrap around to a plausible date
    ("binance,BTCUSDT,99999999999999999,1700000000000100,1,101.0,100.0,1\n", "timestamp", "overflows int64"),
    ("binance,BTCUSDT,1700000000000000,-99999999999999999,1,101.0,100.0,1\n", "local_timestamp", "overflows int64"),
    ("binance,BTCUSDT,1700000000000000,1700000000000100,1,inf,100.0,1\n", "ask_price", "infinite"),
    ("binance,BTCUSDT,1700000000000000,1700000000000100,-1,101.0,100.0,1\n", "ask_amount", ">= 0"),
]
GOOD_ROW = "binance,BTCUSDT,1700000000000000,1700000000000100,1,101.0,100.0,1\n"


@pytest.mark.parametrize(("bad", "field", "reason"), BAD_ROWS)
def test_bad_row_names_file_line_and_field(tmp_path: Path, bad: str, field: str | None, reason: str) -> None:
    path = _write(tmp_path / "q.csv", GOOD_ROW * 2 + bad + GOOD_ROW)
    store = Store(tmp_path / "s")
    with pytest.raises(ImportDataError, match=reason) as info:
        import_tardis([path], store)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 4, field)
    assert store.scan("quotes").collect().height == 0  # nothing half-imported

    report = import_tardis([path], store, skip_bad=True)
    assert report.rows_written == {"quotes": 3}
    assert report.rows_rejected == 1
    assert (report.rejects[0].line, report.rejects[0].field) == (4, field)
    assert store.scan("quotes").collect().height == 3


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    bad = BAD_ROWS[0][0]
    path = _write(tmp_path / "q.csv", GOOD_ROW + "\n" + GOOD_ROW + bad + "\n")
    report = import_tardis([path], Store(tmp_path / "s"), skip_bad=True)
    assert (report.rows_written, report.rows_rejected, report.rows_skipped) == ({"quotes": 2}, 1, 2)
    assert (report.rejects[0].line, report.rejects[0].field) == (5, "ask_price")


def test_book_snapshot_is_all_or_nothing(tmp_path: Path) -> None:
    header = "exchange,symbol,timestamp,local_timestamp," + ",".join(
        f"asks[{i}].price,asks[{i}].amount,bids[{i}].price,bids[{i}].amount" for i in range(2)
    )
    rows = [
        "binance,BTCUSDT,1700000000000000,1700000000000100,101,1,100,1,102,2,99,2",
        "binance,BTCUSDT,1700000000001000,1700000000001100,101,1,100,1,102,2,99,-2",  # bids[1].amount < 0
        "binance,BTCUSDT,1700000000002000,1700000000002100,101,1,100,1,,,,",  # one level only
    ]
    path = tmp_path / "binance_book_snapshot_2_2023-11-14_BTCUSDT.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    store = Store(tmp_path / "s")
    report = import_tardis([path], store, skip_bad=True)
    assert (report.rows_rejected, report.rejects[0].line, report.rejects[0].field) == (1, 3, "bids[1].amount")
    got = store.scan("book").collect()
    # 4 levels of the first snapshot, none of the second, 2 of the third
    assert sorted(got.get_column("ts_event").unique().to_list()) == [1700000000000000000, 1700000000002000000]
    assert got.height == 6


def test_skip_bad_across_chunks_keeps_every_good_row(tmp_path: Path) -> None:
    lines = []
    bad_lines = []
    for i in range(200):
        ts = 1_700_000_000_000_000 + i
        if i % 37 == 5:
            lines.append(f"binance,BTCUSDT,{ts},{ts},1,101.0\n")  # malformed: too few fields
            bad_lines.append(i + 2)
        elif i % 23 == 7:
            lines.append(f"binance,BTCUSDT,{ts},{ts},1,99.0,100.0,1\n")  # crossed
            bad_lines.append(i + 2)
        else:
            lines.append(f"binance,BTCUSDT,{ts},{ts},1,101.0,100.0,{i}\n")
    path = _write(tmp_path / "q.csv", "".join(lines))
    store = Store(tmp_path / "s")
    seen: list[int] = []
    report = import_tardis([path], store, skip_bad=True, chunk_rows=16, progress=seen.append)
    assert sorted(r.line for r in report.rejects if r.line is not None) == bad_lines
    assert report.rows_rejected == len(bad_lines)
    got = store.scan("quotes").collect()
    assert got.height == 200 - len(bad_lines)
    # bid_size carried the input index: every good row arrived exactly once
    good = [i for i in range(200) if i + 2 not in bad_lines]
    assert sorted(got.get_column("bid_size").cast(pl.Int64).to_list()) == good
    assert sum(seen) == 200 - sum(1 for r in report.rejects if r.reason.startswith("malformed"))
    # compaction after the import left one file per partition
    assert len(list((tmp_path / "s").rglob("*.parquet"))) == 1


def test_strict_failure_rolls_back_earlier_files(tmp_path: Path) -> None:
    good = _write(tmp_path / "a.csv", GOOD_ROW)
    bad = _write(tmp_path / "b.csv", BAD_ROWS[0][0])
    store = Store(tmp_path / "s")
    store.append(
        "quotes",
        pl.DataFrame(
            {
                "ts_event": [1],
                "ts_recv": [1],
                "exchange": ["okx"],
                "symbol": ["X/USDT"],
                "bid": [1.0],
                "bid_size": [1.0],
                "ask": [2.0],
                "ask_size": [1.0],
            }
        ),
    )
    with pytest.raises(ImportDataError):
        import_tardis([good, bad], store)
    assert store.scan("quotes").collect().get_column("exchange").to_list() == ["okx"]


def test_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.csv", "somevenue,PAIR1,1700000000000000,1700000000000100,1,101.0,100.0,1\n")
    store = Store(tmp_path / "s")
    import_tardis([path], store, exchange="okx", symbol="BTC/USDT")
    assert store.scan("quotes").collect().select("exchange", "symbol").row(0) == ("okx", "BTC/USDT")


@pytest.mark.parametrize(
    ("venue", "symbol", "market", "unified"),
    [
        ("binance", "BTCUSDT", "spot", "BTC/USDT"),
        ("binance", "ETHFDUSD", "spot", "ETH/FDUSD"),
        ("binance", "ETHBTC", "spot", "ETH/BTC"),
        ("binance", "BTCUSDT", "linear", "BTC/USDT:USDT"),
        ("binance", "BTCUSDT_240628", "linear", "BTC/USDT:USDT-240628"),
        ("binance", "BTCUSD_PERP", "inverse", "BTC/USD:BTC"),
        ("binance", "ETHUSD_241227", "inverse", "ETH/USD:ETH-241227"),
        ("deribit", "BTC-PERPETUAL", "auto", "BTC/USD:BTC"),
        ("deribit", "BTC-26DEC25", "auto", "BTC/USD:BTC-251226"),
        ("deribit", "ETH-9JUN20-250-C", "auto", "ETH/USD:ETH-200609-250-C"),
        ("deribit", "BTC_USDC-PERPETUAL", "auto", "BTC/USDC:USDC"),
        ("okx", "BTC-USDT", "spot", "BTC/USDT"),
        ("okx", "BTC-USDT-SWAP", "auto", "BTC/USDT:USDT"),
        ("okx", "BTC-USD-SWAP", "auto", "BTC/USD:BTC"),
        ("okx", "BTC-USD-250328", "auto", "BTC/USD:BTC-250328"),
        ("okx", "BTC-USD-250328-90000-C", "auto", "BTC/USD:BTC-250328-90000-C"),
        ("bybit", "BTCUSDT", "auto", "BTC/USDT:USDT"),
        ("bybit", "BTCUSD", "auto", "BTC/USD:BTC"),
        ("coinbase", "BTC-USD", "spot", "BTC/USD"),
        ("kraken", "XBT/USD", "spot", "BTC/USD"),
        ("kraken", "XDG/EUR", "spot", "DOGE/EUR"),
    ],
)
def test_unify_venue_symbols(venue: str, symbol: str, market: str, unified: str) -> None:
    assert unify(venue, symbol, market) == unified


@pytest.mark.parametrize("symbol", ["", "USDT", "BTC-32DEC25", "BTC-26DEC25-0-C", "XYZ"])
def test_unify_rejects_nonsense(symbol: str) -> None:
    with pytest.raises(SymbolError):
        unify("deribit" if "-" in symbol else "binance", symbol, "spot")
