"""The compiled frame splitter of :mod:`live._ws` against the Python loop it replaced, and the connection's
delivery (``recv_batch`` / ``recv_raw``) over random read boundaries.

The reference is the per-frame Python loop ``split_frames`` used to be (kept here verbatim, renamed): for any
sequence of frames of every length class, valid or not, cut into reads at random places and carried over as the
connection carries an incomplete frame, both give the same frames, stop positions and errors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given, settings
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from live._ws import FeedConnection, FrameError, RawBatch, split_frames

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _reference_split(data: bytes, pos: int, max_size: int) -> tuple[list[tuple[int, bool, bytes]], int]:
    """``live._ws.split_frames`` before the compiled kernel (the pure-Python loop), unchanged."""
    out: list[tuple[int, bool, bytes]] = []
    append = out.append
    n = len(data)
    while pos + 2 <= n:
        b0 = data[pos]
        length = data[pos + 1]
        if b0 & 0x70 or length & 0x80:
            raise FrameError(1002, "masked frame from the server" if length & 0x80 else "reserved bits set", out)
        if length < 126:
            start = pos + 2
        elif length == 126:
            if pos + 4 > n:
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            start = pos + 4
        else:
            if pos + 10 > n:
                break
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if length >> 63:
                raise FrameError(1002, "payload length with the most significant bit set", out)
            start = pos + 10
        if length > max_size:
            raise FrameError(1009, f"frame of {length} bytes exceeds the limit of {max_size}", out)
        end = start + length
        if end > n:
            break
        opcode = b0 & 0x0F
        if opcode >= 8:
            if opcode > 10:
                raise FrameError(1002, f"unknown opcode {opcode}", out)
            if not b0 & 0x80 or length > 125:
                raise FrameError(1002, "fragmented or oversized control frame", out)
        elif opcode > 2:
            raise FrameError(1002, f"unknown opcode {opcode}", out)
        append((opcode, b0 >= 0x80, data[start:end]))
        pos = end
    return out, pos


def _frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = False, form: int = 0) -> bytes:
    """A server frame; ``form`` picks the length field: 0 the shortest, 16 or 64 bits (non-minimal is legal here)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    m = 0x80 if mask else 0
    if form == 64 or n >= 65_536:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    elif form == 16 or n >= 126:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | n))
    return head + (b"\0\0\0\0" if mask else b"") + payload


_payloads = st.one_of(
    st.binary(max_size=130),
    st.text(alphabet='abc{}:,"0123456789', max_size=300).map(str.encode),
    st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 65_535, b"w" * 65_536, "é€".encode() * 50]),
)


@st.composite
def _frames(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([0, 1, 1, 1, 2, 8, 9, 10] + [3, 7, 11, 15] * draw(st.sampled_from([0, 1]))))
    payload = draw(_payloads)
    if opcode >= 8 and draw(st.booleans()):
        payload = payload[:125]
    fin = draw(st.sampled_from([True, True, True, False]))
    rsv = draw(st.sampled_from([0] * 30 + [1, 2, 4]))
    mask = draw(st.sampled_from([False] * 30 + [True]))
    form = draw(st.sampled_from([0, 0, 0, 16, 64]))
    return _frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, form=form)


def _outcome(split: object, data: bytes, pos: int, max_size: int) -> tuple[object, ...]:
    try:
        frames, end = split(data, pos, max_size)  # type: ignore[operator]
    except FrameError as exc:
        return ("error", exc.code, exc.reason, exc.frames)
    return ("ok", frames, end)


@given(
    frames=st.lists(_frames(), max_size=12),
    garbage=st.sampled_from([b"", b"\x81\x7f\x80" + b"\0" * 7, b"\x81\xff", b"\x81"]),
    cuts=st.lists(st.integers(0, 1 << 18), max_size=6),
    max_size=st.sampled_from([125, 4_096, 1 << 20]),
    pos=st.integers(0, 3),
)
@example(frames=[b"\x81\x7e\x01\x00" + b"z" * 100], garbage=b"", cuts=[], max_size=1 << 20, pos=0)
@example(frames=[], garbage=b"\x81\x7f\x80" + b"\0" * 7, cuts=[], max_size=1 << 20, pos=0)
@settings(max_examples=300, deadline=None)
def test_compiled_split_equals_the_python_loop(
    frames: list[bytes], garbage: bytes, cuts: list[int], max_size: int, pos: int
) -> None:
    stream = b"\x00" * pos + b"".join(frames) + garbage
    assert _outcome(split_frames, stream, pos, max_size) == _outcome(_reference_split, stream, pos, max_size)
    # the same stream in reads cut at random places, an incomplete frame carried to the next read
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {len(stream)})
    tail, start = b"", 0
    for bound in bounds:
        data = tail + stream[start:bound]
        start = bound
        got = _outcome(split_frames, data, 0, max_size)
        assert got == _outcome(_reference_split, data, 0, max_size)
        if got[0] == "error":
            break
        tail = data[got[2] :]  # type: ignore[index,misc]


# -- FeedConnection over reads cut anywhere ---------------------------------------------------------------------
class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _connected(max_size: int) -> tuple[FeedConnection, _Transport]:
    """A connection past a real opening handshake (the response answers the request's key)."""
    conn = FeedConnection(ClientProtocol(parse_uri("ws://feed.test/x"), max_size=max_size), max_size)
    transport = _Transport()
    conn.connection_made(transport)
    match = re.search(rb"Sec-WebSocket-Key: (\S+)", bytes(transport.written))
    assert match is not None
    accept = base64.b64encode(hashlib.sha1(match.group(1) + _GUID).digest())
    conn.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    assert conn.handshake.done()
    assert conn.handshake.exception() is None
    transport.written.clear()
    return conn, transport


_messages = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=200).map(str.encode)),
        st.tuples(st.just("binary"), st.binary(max_size=200)),
        st.tuples(st.just("big"), st.sampled_from([b"b" * 70_000, b"c" * 300])),
        st.tuples(st.just("fragmented"), st.lists(st.text(max_size=20).map(str.encode), min_size=1, max_size=4)),
        st.tuples(st.just("ping"), st.binary(max_size=20)),
    ),
    max_size=30,
)


def _wire(messages: list[tuple[str, object]]) -> tuple[bytes, list[bytes], int]:
    """(frames, data messages expected, pings)"""
    out, expected, pings = [], [], 0
    for kind, value in messages:
        if kind == "fragmented":
            parts: list[bytes] = value  # type: ignore[assignment]
            for k, part in enumerate(parts):
                out.append(_frame(1 if k == 0 else 0, part, fin=k == len(parts) - 1))
                if k == 0:
                    out.append(_frame(10, b"pong amid fragments"))
            expected.append(b"".join(parts))
        elif kind == "ping":
            out.append(_frame(9, value))  # type: ignore[arg-type]
            pings += 1
        else:
            out.append(_frame(2 if kind == "binary" else 1, value))  # type: ignore[arg-type]
            expected.append(value)  # type: ignore[arg-type]
    return b"".join(out), expected, pings


@given(messages=_messages, cuts=st.lists(st.integers(0, 1 << 20), max_size=8), raw=st.booleans())
@settings(max_examples=150, deadline=None)
def test_connection_delivers_every_message_whatever_the_reads(
    messages: list[tuple[str, object]], cuts: list[int], raw: bool
) -> None:
    stream, expected, pings = _wire(messages)
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {len(stream)})

    async def main() -> list[bytes]:
        conn, transport = _connected(1 << 20)
        got: list[bytes] = []
        start = 0
        for bound in bounds:
            conn.data_received(stream[start:bound])
            start = bound
            while conn._ready:
                if raw:
                    batch = await conn.recv_raw()
                    assert isinstance(batch, RawBatch)
                    assert batch.starts.dtype == np.int64
                    assert batch.ends.dtype == np.int64
                    view = np.frombuffer(batch.buf, np.uint8)
                    payloads = [view[s:e].tobytes() for s, e in zip(batch.starts, batch.ends, strict=True)]
                    assert payloads == batch.payloads()
                    assert len(batch) == len(payloads)
                    got += payloads
                else:
                    got += await conn.recv_batch()
        assert not transport.closing
        assert transport.written.count(b"\x8a") >= pings  # a masked pong answered each ping
        return got

    assert asyncio.run(main()) == expected


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (b"\x81\x82abcdxy", 1002),
        (b"\x83\x01x", 1002),
        (b"\x81\x02\xff\xfe", 1007),
        (b"\x81\x7e\x20\x00", 1009),
        (b"\x81\x7f" + (1 << 63).to_bytes(8, "big"), 1002),
    ],
)
def test_frames_before_a_bad_one_are_delivered_then_the_connection_fails(bad: bytes, code: int) -> None:
    async def main() -> None:
        conn, transport = _connected(4_096)
        conn.data_received(_frame(1, b"first") + _frame(1, "ünï".encode()) + _frame(2, b"\xff") + bad)
        assert await conn.recv_batch() == [b"first", "ünï".encode(), b"\xff"]
        assert transport.closing
        assert conn._sent is not None
        assert conn._sent.code == code

    asyncio.run(main())


def test_a_large_frame_is_joined_once_not_per_read() -> None:
    async def main() -> None:
        conn, _ = _connected(1 << 20)
        message = bytes(range(256)) * 1_000
        stream = _frame(2, b"before") + _frame(2, message) + _frame(1, b"after")
        reads = [stream[i : i + 1_000] for i in range(0, len(stream), 1_000)]
        for read in reads[:-1]:
            conn.data_received(read)
        assert len(conn._tail) == len(reads) - 1  # the big frame's reads wait, unjoined, for its last bytes
        conn.data_received(reads[-1])
        batch = await conn.recv_raw()
        assert batch.payloads() == [b"before", message, b"after"]

    asyncio.run(main())


def test_reads_received_before_the_reader_woke_are_joined_into_one_raw_batch() -> None:
    async def main() -> None:
        conn, _ = _connected(1 << 20)
        conn.data_received(_frame(1, b"a") + _frame(1, b"bc"))
        conn.data_received(_frame(1, b"def") + _frame(9, b"p") + _frame(2, b"g"))
        batch = await conn.recv_raw()
        assert batch.payloads() == [b"a", b"bc", b"def", b"g"]
        assert [batch.buf[s:e] for s, e in zip(batch.starts, batch.ends, strict=True)] == batch.payloads()

    asyncio.run(main())
