"""Parse rate of the venue adapters, messages/s on one core, against the stdlib ``json.loads`` baseline.

For each venue's top-of-book channel (Binance bookTicker, OKX bbo-tbt, Bybit orderbook.1 snapshot, Coinbase
ticker, Kraken v2 ticker, Deribit quote) it times, on the same distinct messages:

* ``tuple``: :meth:`Adapter.parse_quote_tuple`, the fast path the micro-batcher uses (bytes -> QUOTES tuple);
* ``batch``: :meth:`Adapter.parse_quote_batch` (Bybit: :meth:`Adapter.parse_book_batch`) over chunks of 512
  messages, what the connector does with one socket read (``-`` where the venue does not batch);
* ``columns``: :meth:`Adapter.parse_quote_columns` (Bybit: :meth:`Adapter.parse_book_columns` then
  :meth:`live.book.Books.apply_snapshot_columns`) over the same chunks joined into one buffer with message
  offsets, as a socket read arrives from the WebSocket layer (the compiled kernel; no object per message);
* ``rows``: :meth:`Adapter.parse_rows` (all tables as tuples);
* ``frames``: :meth:`Adapter.parse` (Polars frames in the exact schema; dominated by frame construction);
* ``json.loads``: the standard library decoding the same bytes into dicts, nothing else (a lower bound for any
  stdlib-based parser), and ``orjson.loads`` for reference;

and then the book path: OKX ``books`` updates parsed and applied to a :class:`live.book.BookKeeper`.

Run ``.venv/bin/python benchmarks/bench_parse.py`` (under a minute on an idle core) or with ``--quick``;
``--long-floats`` writes prices as 17-digit shortest reprs (``60000.100000000006``, as the exchange simulator
renders them), which the compiled readers convert with Eisel-Lemire instead of Clinger's fast path.
Figures are the best of several repeats, timed in CPU seconds of this process (``time.process_time``) so that
other processes sharing the machine do not count; ``--wall`` times wall-clock seconds instead.  The ratio column
columns are ``tuple`` and ``columns`` over ``json.loads`` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import orjson

from live import adapters
from live.book import BookKeeper, Books

TS = 1_700_000_000_000_000_000


class _Long(float):
    """A price that formats as its shortest repr when it is not a round decimal (``f"{p:.2f}"`` keeps 17 digits)."""

    def __format__(self, spec: str) -> str:
        text = format(float(self), spec)
        return text if float(text) == self else repr(float(self))


def _messages(venue: str, n: int, long_floats: bool = False) -> list[bytes]:
    """``n`` distinct, realistic top-of-book messages for ``venue`` (prices and ids vary).

    ``long_floats``: prices written as Python's shortest repr of a double one ulp above a round price
    (``60000.100000000006``, 17 digits, what the exchange simulator renders), past Clinger's fast path.
    """
    out = []
    for i in range(n):
        bid_value = 60000 + (i % 997) * 0.1
        ask_value = bid_value + 0.1
        bid, ask = bid_value, ask_value
        if long_floats:
            bid, ask = _Long(math.nextafter(bid_value, math.inf)), _Long(math.nextafter(ask_value, math.inf))
        ms = 1_700_000_000_000 + i
        if venue == "binance":
            text = (
                f'{{"e":"bookTicker","u":{400900217 + i},"E":{ms},"T":{ms - 1},"s":"BTCUSDT","b":"{bid:.2f}",'
                f'"B":"{1 + i % 7}.123","a":"{ask:.2f}","A":"{2 + i % 5}.456"}}'
            )
        elif venue == "okx":
            text = (
                f'{{"arg":{{"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"}},"data":[{{"asks":[["{ask:.1f}",'
                f'"{12 + i % 9}","0","3"]],"bids":[["{bid:.1f}","{431 + i % 11}","0","2"]],"ts":"{ms}",'
                f'"seqId":{363996337 + i}}}]}}'
            )
        elif venue == "bybit":
            text = (
                f'{{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":{ms},"data":{{"s":"BTCUSDT",'
                f'"b":[["{bid:.2f}","{0.5 + i % 3}"]],"a":[["{ask:.2f}","{0.75 + i % 4}"]],"u":{123456789 + i},'
                f'"seq":{987654321 + i}}},"cts":{ms - 2}}}'
            )
        elif venue == "coinbase":
            text = (
                f'{{"channel":"ticker","client_id":"","timestamp":"2026-04-07T14:30:03.{i % 1000000:06d}Z",'
                f'"sequence_num":{i},"events":[{{"type":"update","tickers":[{{"type":"ticker","product_id":"BTC-USD",'
                f'"price":"{bid:.2f}","volume_24_h":"15328.12","low_24_h":"67500.00","high_24_h":"69200.00",'
                f'"low_52_w":"25000.00","high_52_w":"73800.00","price_percent_chg_24_h":"1.85",'
                f'"best_bid":"{bid:.2f}","best_bid_quantity":"1.5","best_ask":"{ask:.2f}","best_ask_quantity":"0.5"}}]}}]}}'
            )
        elif venue == "kraken":
            text = (
                f'{{"channel":"ticker","type":"update","data":[{{"symbol":"BTC/USD","bid":{bid:.1f},"bid_qty":1.5,'
                f'"ask":{ask:.1f},"ask_qty":0.25,"last":{bid:.1f},"volume":1234.5,"vwap":60000.1,"low":59000.0,'
                f'"high":61000.0,"change":12.5,"change_pct":0.02}}]}}'
            )
        else:
            text = (
                f'{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":"quote.BTC-PERPETUAL",'
                f'"data":{{"timestamp":{ms},"instrument_name":"BTC-PERPETUAL","best_bid_price":{bid:.1f},'
                f'"best_bid_amount":{179960 + i},"best_ask_price":{ask:.1f},"best_ask_amount":{20 + i}}}}}}}'
            )
        out.append(text.encode())
    return out


def _okx_book_updates(n: int) -> list[bytes]:
    out = [
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":['
        + b",".join(f'["{60000.1 + k / 10:.1f}","{1 + k % 5}","0","1"]'.encode() for k in range(400))
        + b'],"bids":['
        + b",".join(f'["{60000.0 - k / 10:.1f}","{1 + k % 5}","0","1"]'.encode() for k in range(400))
        + b'],"ts":"1700000000000","checksum":0,"seqId":1000,"prevSeqId":-1}]}'
    ]
    for i in range(1, n):
        side_a = f'["{60000.1 + (i % 40) / 10:.1f}","{i % 4}","0","1"]'
        side_b = f'["{60000.0 - (i % 40) / 10:.1f}","{(i + 1) % 4}","0","1"]'
        out.append(
            f'{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"update","data":[{{"asks":[{side_a}],'
            f'"bids":[{side_b}],"ts":"{1700000000000 + i}","checksum":0,"seqId":{1000 + i},'
            f'"prevSeqId":{999 + i}}}]}}'.encode()
        )
    return out


def _rate(fn: Callable[[bytes], object], messages: list[bytes], repeats: int, clock: Callable[[], float]) -> float:
    """Best messages/s over ``repeats`` passes (one warm-up pass first)."""
    for raw in messages[:1000]:
        fn(raw)
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for raw in messages:
            fn(raw)
        best = min(best, clock() - start)
    return len(messages) / best


def _batch_rate(
    fn: Callable[[list[bytes]], object], messages: list[bytes], repeats: int, clock: Callable[[], float]
) -> float:
    """Best messages/s of ``fn`` over chunks of 512 messages (one socket read's worth)."""
    chunks = [messages[i : i + 512] for i in range(0, len(messages), 512)]
    return _rate(fn, chunks, repeats, clock) * len(messages) / len(chunks)  # type: ignore[arg-type]


def _socket_reads(
    messages: list[bytes], size: int = 512
) -> list[tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Chunks of ``size`` messages as one buffer each plus payload offsets (what the WebSocket layer delivers)."""
    out = []
    for i in range(0, len(messages), size):
        chunk = messages[i : i + size]
        lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
        ends = np.cumsum(lengths)
        out.append((b"".join(chunk), ends - lengths, ends))
    return out


def _columns_rate(
    venue: str, adapter: adapters.Adapter, messages: list[bytes], repeats: int, clock: Callable[[], float]
) -> float | None:
    """Best messages/s of the columnar path over socket reads of 512 messages; ``None`` where it declines."""
    reads = _socket_reads(messages)
    if venue == "bybit":
        books = Books(emit_levels=False)  # the connector default

        def run(read: tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]) -> object:
            snapshots = adapter.parse_book_columns(*read, TS)
            return None if snapshots is None else books.apply_snapshot_columns(snapshots)
    else:

        def run(read: tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]) -> object:
            return adapter.parse_quote_columns(*read, TS)

    if run(reads[0]) is None:
        return None
    return _rate(run, reads, repeats, clock) * len(messages) / len(reads)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer messages and repeats (a few seconds)")
    parser.add_argument("--messages", type=int, default=None, help="messages per venue (default 100000)")
    parser.add_argument("--wall", action="store_true", help="time wall-clock instead of process CPU seconds")
    parser.add_argument(
        "--long-floats", action="store_true", help="prices as 17-digit shortest reprs (past Clinger's fast path)"
    )
    args = parser.parse_args()
    clock_fn: Callable[[], float] = time.perf_counter if args.wall else time.process_time
    n = args.messages or (20_000 if args.quick else 100_000)
    repeats = 2 if args.quick else 3
    n_frames = max(n // 20, 1000)

    clock = "wall-clock" if args.wall else "process CPU"
    prices = "17-digit shortest-repr" if args.long_floats else "1-2 decimal"
    print(
        f"messages per venue: {n} (frames path: {n_frames}); {prices} prices; best of {repeats}; one core; {clock} time"
    )
    header = (
        f"{'venue':<9} {'tuple/s':>11} {'batch/s':>11} {'columns/s':>11} {'rows/s':>11} {'frames/s':>10} "
        f"{'json.loads/s':>13} {'orjson/s':>11} {'tuple/json':>10} {'columns/json':>12}"
    )
    print(header)
    print("-" * len(header))
    for venue in adapters.VENUES:
        adapter = adapters.get(venue, "linear" if venue in ("binance", "bybit") else None)
        messages = _messages(venue, n, args.long_floats)
        sample = adapter.parse_quote_tuple(messages[0], TS)
        assert sample is not None, venue  # the benchmark must time real work
        tuple_rate = _rate(lambda raw, a=adapter: a.parse_quote_tuple(raw, TS), messages, repeats, clock_fn)  # type: ignore[misc]
        rows_rate = _rate(lambda raw, a=adapter: a.parse_rows(raw, TS), messages, repeats, clock_fn)  # type: ignore[misc]
        batch_fn = adapter.parse_book_batch if venue == "bybit" else adapter.parse_quote_batch
        batch_text = "-"
        if batch_fn(messages[:512], TS) is not None:  # the venue batches this channel
            batch = _batch_rate(lambda chunk, f=batch_fn: f(chunk, TS), messages, repeats, clock_fn)  # type: ignore[misc]
            batch_text = f"{batch:,.0f}"
        columns = _columns_rate(venue, adapter, messages, repeats, clock_fn)
        columns_text = "-" if columns is None else f"{columns:,.0f}"
        frames_rate = _rate(lambda raw, a=adapter: a.parse(raw, TS), messages[:n_frames], repeats, clock_fn)  # type: ignore[misc]
        json_rate = _rate(json.loads, messages, repeats, clock_fn)
        orjson_rate = _rate(orjson.loads, messages, repeats, clock_fn)
        columns_ratio = "-" if columns is None else f"{columns / json_rate:.2f}x"
        print(
            f"{venue:<9} {tuple_rate:>11,.0f} {batch_text:>11} {columns_text:>11} {rows_rate:>11,.0f} "
            f"{frames_rate:>10,.0f} {json_rate:>13,.0f} {orjson_rate:>11,.0f} {tuple_rate / json_rate:>9.2f}x "
            f"{columns_ratio:>12}"
        )

    okx = adapters.get("okx")
    updates = _okx_book_updates(max(n // 4, 1000))
    snapshot, diffs = updates[0], updates[1:]

    best = float("inf")
    for _ in range(repeats + 1):  # first pass warms up
        keeper = BookKeeper("okx", "BTC/USDT", max_age_ns=10**18)
        start = clock_fn()
        for raw in updates:
            update = okx.parse_rows(raw, TS).book_update
            assert update is not None
            keeper.apply(update)
        best = min(best, clock_fn() - start)
        assert keeper.counters.gaps == 0
        assert keeper.counters.applied == len(updates)
    book_rate = len(updates) / best
    book_json = _rate(json.loads, diffs, repeats, clock_fn)
    print(
        f"\nOKX books: parse + keeper apply on a 400-level book ({len(diffs)} updates after a {len(snapshot)} byte"
        f" snapshot): {book_rate:,.0f} msgs/s; json.loads alone {book_json:,.0f}/s; ratio {book_rate / book_json:.2f}x"
    )


if __name__ == "__main__":
    main()
