"""The `arbkit` command as a user runs it: real subprocesses, real stores, JSON output and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "tests" / "resources" / "importers"

pytestmark = pytest.mark.e2e


def arbkit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "arbkit_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"arbkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "store"
    out = json.loads(
        arbkit("data", "generate", "--store", str(root), "--seed", "11", "--days", "0.0125", "--json").stdout
    )
    assert out["rows_total"] > 10_000
    return root


def test_info_json_matches_what_was_generated(store: Path) -> None:
    info = json.loads(arbkit("data", "info", "--store", str(store), "--json").stdout)
    tables = info["tables"]
    assert {"quotes", "funding", "option_quotes", "labels"} <= set(tables)
    assert set(tables["quotes"]["exchanges"]) == {"binance", "okx", "bybit", "coinbase", "kraken", "deribit"}
    assert "BTC/USDT" in tables["quotes"]["symbols"]
    assert tables["quotes"]["ts_min"] < tables["quotes"]["ts_max"]


def test_detect_scores_every_kind(store: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "opps.parquet"
    payload = json.loads(
        arbkit("detect", "--store", str(store), "--pipeline", "all", "--score", "--out", str(out_file), "--json").stdout
    )
    assert set(payload["pipelines"]) == {"cross_exchange", "triangular", "basis", "options_parity"}
    for kind, s in payload["score"].items():
        if s["labels"]:
            assert s["precision"] >= 0.99, kind
            assert s["recall"] >= 0.99, kind
    assert out_file.is_file()


def test_import_json_and_skip_bad(tmp_path: Path) -> None:
    payload = json.loads(
        arbkit(
            "data", "import", "tardis", str(RESOURCES / "tardis_quotes_sample.csv"), "--store", str(tmp_path), "--json"
        ).stdout
    )
    assert payload["rows_written"] == {"quotes": 5}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "info", "--store", "/nonexistent/arbkit"), "is not a directory"),
        (("detect", "--store", "/nonexistent/arbkit"), "is not a directory"),
        (("detect", "--store", ".", "--start", "yesterday"), "--start: 'yesterday'"),
        (("data", "generate", "--store", "/tmp/arbkit-never", "--venues", "ftx"), "unknown venue 'ftx'"),
        (("data", "import", "nasdaq", "x.csv", "--store", "/tmp/x"), "unknown source 'nasdaq'"),
    ],
)
def test_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    proc = arbkit(*args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_bad_checksum_is_refused(tmp_path: Path) -> None:
    bad = sorted((RESOURCES / "bad").glob("*.zip"))[0]
    proc = arbkit("data", "import", "binance", str(bad), "--store", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "does not match" in proc.stderr


def test_record_from_simulator_then_backtest(store: Path, tmp_path: Path) -> None:
    recorded = tmp_path / "recorded"
    summary = json.loads(
        arbkit(
            "record",
            "--store",
            str(recorded),
            "--from-simulator",
            str(store),
            "--duration",
            "3",
            "--speed",
            "50",
            "--json",
        ).stdout
    )
    assert summary["rows"]["quotes"] > 100
    info = json.loads(arbkit("data", "info", "--store", str(recorded), "--json").stdout)
    assert info["tables"]["quotes"]["rows"] == summary["rows"]["quotes"]
    assert set(info["tables"]["quotes"]["exchanges"]) == {"binance", "okx", "bybit", "coinbase", "kraken", "deribit"}
    metrics = json.loads(
        arbkit(
            "backtest",
            "--store",
            str(recorded),
            "--pipeline",
            "cross_exchange",
            "--out",
            str(tmp_path / "run"),
            "--json",
        ).stdout
    )
    assert "total_pnl" in metrics
    assert metrics["failed_days"] == 0
