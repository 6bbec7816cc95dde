"""The simulator's compiled framing equals framing message by message in Python (the code it replaced).

``frames`` must give RFC 6455 server frames byte for byte as the old per-message loop did, for every length class
and for non-ASCII text; ``Packed.frame`` must pick exactly the subscribed (channel, symbol) rows, in row-major,
channel order, and write a session's running sequence number where Coinbase's rendered text has its NUL mark.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given, settings

from live.simulator import ENCODERS, SessionState
from live.simulator._framing import Stamp, frames, pack_texts
from live.simulator._server import _frames


def _reference_frames(messages: list[str]) -> bytes:
    """``live.simulator._server._frames`` before the compiled kernel, unchanged."""
    parts: list[bytes] = []
    append = parts.append
    for message in messages:
        payload = message.encode()
        n = len(payload)
        if n < 126:
            append(bytes((0x81, n)))
        elif n < 65_536:
            append(b"\x81\x7e" + n.to_bytes(2, "big"))
        else:
            append(b"\x81\x7f" + n.to_bytes(8, "big"))
        append(payload)
    return b"".join(parts)


_texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["x" * 125, "y" * 126, "z" * 65_535, "w" * 65_536, "é" * 70_000, ""]),
)


@given(messages=st.lists(_texts, max_size=40))
@example(messages=[])
@example(messages=["x" * n for n in range(130)])
@settings(max_examples=200, deadline=None)
def test_frames_equal_the_per_message_loop(messages: list[str]) -> None:
    assert frames(messages) == _reference_frames(messages)
    assert _frames(messages) == _reference_frames(messages)


@given(
    data=st.data(),
    n_rows=st.integers(1, 40),
    n_channels=st.integers(1, 3),
    n_symbols=st.integers(1, 4),
    sequence=st.sampled_from([0, 7, 9, 99, 10**12 - 3]),
)
@settings(max_examples=150, deadline=None)
def test_packed_frame_picks_subscribed_rows_in_order_and_numbers_them(
    data: st.DataObject, n_rows: int, n_channels: int, n_symbols: int, sequence: int
) -> None:
    texts = [
        [
            data.draw(st.text(alphabet='ab{}é"', max_size=30)) + "\x00" + data.draw(st.text(max_size=5))
            for _ in range(n_rows)
        ]
        for _ in range(n_channels)
    ]
    codes = np.array(data.draw(st.lists(st.integers(0, n_symbols - 1), min_size=n_rows, max_size=n_rows)), np.int32)
    wanted = np.array(
        data.draw(
            st.lists(
                st.lists(st.booleans(), min_size=n_symbols, max_size=n_symbols),
                min_size=n_channels,
                max_size=n_channels,
            )
        ),
        np.uint8,
    ).reshape(n_channels, n_symbols)
    r0 = data.draw(st.integers(0, n_rows))
    r1 = data.draw(st.integers(r0, n_rows))
    packed = pack_texts(texts)
    for numbered in (False, True):
        out, count, after = packed.frame(codes, wanted, r0, r1, sequence, numbered=numbered)
        expected, seq = [], sequence
        for i in range(r0, r1):
            for c in range(n_channels):
                if wanted[c, codes[i]]:
                    text = texts[c][i]
                    if numbered:
                        head, _, tail = text.partition("\x00")
                        text = f"{head}{seq}{tail}"
                        seq += 1
                    expected.append(text)
        assert out.tobytes() == _reference_frames(expected)
        assert count == len(expected)
        assert after == seq


def test_coinbase_numbered_plan_is_what_emit_does() -> None:
    encoder = ENCODERS["coinbase"]("spot")
    state = SessionState(sequence=41)
    text = '{"sequence_num":\x00,"x":1}'
    assert encoder.emit_plan(state) == "numbered"
    emitted = [encoder.emit(state, "ticker", "BTC-USD", text) for _ in range(3)]
    out, count, after = pack_texts([[text] * 3]).frame(
        np.zeros(3, np.int32), np.ones((1, 1), np.uint8), 0, 3, 41, numbered=True
    )
    assert out.tobytes() == _reference_frames(emitted)
    assert (count, after) == (3, state.sequence)


def test_binance_combined_sessions_are_not_framed_verbatim() -> None:
    encoder = ENCODERS["binance"]("spot")
    assert encoder.emit_plan(SessionState()) == "verbatim"
    assert encoder.emit_plan(SessionState(combined=True)) is None
    assert ENCODERS["okx"]("spot").emit_plan(SessionState()) == "verbatim"


_PIECES = st.sampled_from(["\x01\x01\x01", "\x02\x02\x02\x02\x02", "\x00"])


@given(
    data=st.data(),
    n_rows=st.integers(1, 20),
    sequence=st.sampled_from([0, 9, 99, 10**12 - 3]),
)
@settings(max_examples=150, deadline=None)
def test_packed_frame_writes_the_stamp_over_placeholders_before_and_after_the_mark(
    data: st.DataObject, n_rows: int, sequence: int
) -> None:
    stamp = Stamp({1: "abc", 2: "12345"})
    texts = []
    for _ in range(n_rows):
        pieces = data.draw(st.lists(st.one_of(st.text(alphabet='xé{"', max_size=4), _PIECES), max_size=6))
        text = ",".join(pieces)  # placeholders are fields of their own, never adjacent (as in JSON)
        if text.count("\x00") > 1:  # one mark at most
            head, _, tail = text.partition("\x00")
            text = head + "\x00" + tail.replace("\x00", "")
        texts.append(text)
    packed = pack_texts([texts])
    if any(t.count("\x01\x01\x01") + t.count("\x02" * 5) > 4 for t in texts):
        return  # more placeholders than a text may hold (refused, see below)
    for numbered in (False, True):
        out, count, after = packed.frame(
            np.zeros(n_rows, np.int32), np.ones((1, 1), np.uint8), 0, n_rows, sequence, numbered=numbered, stamp=stamp
        )
        expected, seq = [], sequence
        for text in texts:
            if numbered and "\x00" in text:
                head, _, tail = text.partition("\x00")
                text = f"{head}{seq}{tail}"
                seq += 1
            expected.append(stamp.fill(text))
        assert out.tobytes() == _reference_frames(expected)
        assert (count, after) == (n_rows, seq)


def test_more_placeholders_than_a_text_may_hold_are_refused() -> None:
    with pytest.raises(ValueError, match="placeholders"):
        _ = pack_texts([["\x01x" * 5]]).stamps
