"""Column batches into one QUOTES frame (live.batcher._columns_frame) against the row-wise and per-part frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from polars.testing import assert_frame_equal

from arbkit import schema
from live._frame_kernels import fill_derived
from live.adapters._columns import QuoteColumns
from live.batcher import _JOIN_MAX, _ROW_BYTES, _columns_frame, _rows_frame

# short (a view of its own) and long (> 12 bytes: into the data buffer) names, multi-byte characters included
NAMES = ["BTC/USDT", "ETH/USDT:USDT", "X/Y", "", "1000SHIB/USDT:USDT-250627", "ÄÖÜ/€€€€", "éééééé/USDT"]
EXCHANGES = ["okx", "binance", "coinbase_international"]


def _part(
    exchange: str,
    ts_recv: int,
    symbols: list[str],
    codes: npt.NDArray[Any],
    values: npt.NDArray[np.float64],
    ints: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_] | None,
    flags: npt.NDArray[Any],
) -> QuoteColumns:
    """A part laid out like the compiled parser's: the four prices and sizes are rows of one ``(4, n)`` block."""
    return QuoteColumns(
        exchange, ts_recv, ints[0], codes, symbols, values[0], values[1], values[2], values[3], ints[1], valid, flags
    )


def _reference(parts: list[QuoteColumns]) -> pl.DataFrame:
    """The same rows built as Python tuples (the row-wise path), independently of the columns."""
    return _rows_frame([row for part in parts for row in part.rows()], "quotes")


def _check(parts: list[QuoteColumns]) -> None:
    got = _columns_frame(parts)
    want = _reference(parts)
    assert got.schema == schema.QUOTES.polars
    assert_frame_equal(got, want, check_exact=True)
    if parts:
        assert_frame_equal(got, pl.concat([p.frame() for p in parts]), check_exact=True)
    for name in ("bid", "bid_size", "ask", "ask_size"):  # bit for bit: NaN payloads and -0.0 too
        sent = np.concatenate([getattr(p, name) for p in parts] or [np.empty(0)]).astype(np.float64)
        assert np.array_equal(got.get_column(name).to_numpy().view(np.int64), sent.view(np.int64))
    valid = [np.ones(len(p), np.bool_) if p.seq_valid is None else p.seq_valid for p in parts]
    assert np.array_equal(got.get_column("seq").is_not_null().to_numpy(), np.concatenate(valid or [np.empty(0, bool)]))
    arrow = got.to_arrow(compat_level=pl.CompatLevel.newest())
    assert arrow.schema.field("symbol").type == arrow.schema.field("exchange").type == "string_view"


@st.composite
def _parts(draw: st.DrawFn) -> list[QuoteColumns]:
    name = st.sampled_from(NAMES) | st.text(max_size=16)
    venues = draw(
        st.lists(
            st.tuples(st.sampled_from(EXCHANGES) | st.text(max_size=16), st.lists(name, min_size=1, max_size=5)),
            min_size=1,
            max_size=4,
        )
    )
    parts = []
    for k in range(draw(st.integers(1, 8))):
        exchange, symbols = draw(st.sampled_from(venues))
        if draw(st.booleans()):
            symbols = list(symbols)  # an equal list of its own (the views are cached by content)
        n = draw(st.integers(0, 12))
        codes = draw(arrays(np.int32, n, elements=st.integers(0, len(symbols) - 1)))
        valid = draw(st.none() | arrays(np.bool_, n))
        parts.append(
            _part(
                exchange,
                draw(st.integers(-(2**63), 2**63 - 1)) if k % 2 else 1_000 + k,
                symbols,
                codes,
                draw(arrays(np.float64, (4, n))),
                draw(arrays(np.int64, (2, n))),
                valid,
                draw(arrays(np.uint16, n)),
            )
        )
    return parts


@given(parts=_parts())
@settings(max_examples=300, deadline=None)
def test_columns_frame_equals_the_rows_it_carries(parts: list[QuoteColumns]) -> None:
    """Random parts of several venues (short and long names, masks or none, empty parts) give the reference frame."""
    _check(parts)


def _simple(exchange: str, symbols: list[str], n: int, seed: int, masked: bool = False) -> QuoteColumns:
    rng = np.random.default_rng(seed)
    valid = rng.random(n) > 0.3 if masked else None
    return _part(
        exchange,
        seed,
        symbols,
        rng.integers(0, len(symbols), n).astype(np.int32),
        rng.normal(size=(4, n)),
        rng.integers(0, 2**62, (2, n)),
        valid,
        rng.integers(0, 64, n).astype(np.uint16),
    )


@example(n_parts=1)
@given(n_parts=st.integers(1, 40))
@settings(max_examples=20, deadline=None)
def test_columns_frame_of_a_live_like_batch(n_parts: int) -> None:
    """Five venues taking turns, one of them without sequence numbers (every part masked)."""
    symbols = {venue: [f"{base}/USDT" for base in ("BTC", "ETH", "SOL", "XRP")] for venue in EXCHANGES[:2]}
    symbols["kraken"] = ["BTC/USD", "ETH/USD"]
    symbols["bybit"] = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    venues = list(symbols)
    _check([_simple(v, symbols[v], 5 + k % 13, k, v == "kraken") for k, v in enumerate(venues * n_parts)][:n_parts])


def test_large_batches_take_the_numpy_block() -> None:
    """A batch above the join limit (concatenated into a huge-page block) gives the same frame."""
    n = _JOIN_MAX // _ROW_BYTES + 1
    _check([_simple("okx", NAMES, n // 2, 1, masked=True), _simple("binance", ["BTC/USDT"], n - n // 2, 2)])


def test_arrays_of_other_dtypes_and_strides_are_converted() -> None:
    """Arrays the parsers never make (other integer widths, strided views) are copied to the declared dtypes."""
    rng = np.random.default_rng(3)
    wide = np.arange(12, dtype=np.int64)
    block = rng.normal(size=(4, 24))
    odd = QuoteColumns(
        "okx", 5, wide * 3, wide % 2, ["BTC/USDT", "ETH/USDT"], block[0, ::2], block[1, ::2], block[2, ::2],
        block[3, ::2], wide.astype(np.int32), wide % 3 > 0, wide.astype(np.int64),
    )  # fmt: skip
    _check([odd, _simple("binance", NAMES, 7, 4)])


def test_frames_keep_their_names_when_new_long_names_arrive() -> None:
    """A new long name replaces the shared name buffer; frames made before still read their own names."""
    first = _columns_frame([_simple("okx", ["AAAAAAAAAAAAAAAA/USDT"], 3, 5)])
    for k in range(20):
        _columns_frame([_simple(f"venue-with-a-long-name-{k}", [f"SYMBOL-{k}-WITH-A-LONG-NAME/USDT"], 2, k)])
    assert first.get_column("symbol").to_list() == ["AAAAAAAAAAAAAAAA/USDT"] * 3
    assert first.rechunk().get_column("symbol").str.len_bytes().to_list() == [21] * 3


def test_no_parts_and_empty_parts() -> None:
    assert _columns_frame([]).schema == schema.QUOTES.polars
    assert _columns_frame([]).height == 0
    _check([_simple("okx", ["BTC/USDT"], 0, 6), _simple("okx", ["BTC/USDT"], 0, 7, masked=True)])


def test_bad_inputs_raise() -> None:
    """A symbol code outside its list is an error (not a read past the table), as are arrays of the wrong shape."""
    part = _simple("okx", ["BTC/USDT", "ETH/USDT"], 4, 8)
    part.symbol_code[2] = 2
    with pytest.raises(IndexError, match="symbol code"):
        _columns_frame([_simple("okx", ["BTC/USDT", "ETH/USDT", "SOL/USDT"], 3, 9), part])
    part.symbol_code[2] = -1
    with pytest.raises(IndexError, match="symbol code"):
        _columns_frame([part])
    flat = _simple("okx", ["BTC/USDT"], 4, 10)
    flat.bid = np.zeros((4, 2))
    with pytest.raises(ValueError, match="one-dimensional"):
        _columns_frame([flat])


def test_kernel_is_compiled_once() -> None:
    """Small and large batches, masked or not, call the kernel with the one signature loaded at import."""
    _columns_frame([_simple("okx", NAMES, 5, 11, masked=True)])
    _columns_frame([_simple("okx", NAMES, _JOIN_MAX // _ROW_BYTES + 1, 12)])
    assert len(fill_derived.signatures) == 1
