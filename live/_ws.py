"""A WebSocket client connection tuned for market-data feeds: many small server frames, read in bulk.

Why the receive loop is our own
-------------------------------
The ``websockets`` library's asyncio client hands over one message per ``await recv()``: each frame goes through
its sans-I/O generator parser, an assembler and a queue, about 15-30 µs of Python per message on this class of
machine, which caps a process at a few tens of thousands of messages per second.  A venue feed is the opposite
of what that design optimises for: a flood of small, unmasked, unfragmented text frames in one direction.
:class:`FeedConnection` therefore

* keeps ``websockets`` for the protocol parts where it is cheap and where correctness is subtle: the opening
  handshake (request, ``Sec-WebSocket-Accept`` check, extension and status validation by
  :class:`websockets.client.ClientProtocol`) and every frame the client *sends* (text, ping, pong and close
  frames, masked by the library);
* splits the server's frames itself with a compiled kernel over each chunk the socket returns (RFC 6455
  section 5.2: 7-, 16- and 64-bit lengths, FIN and continuation frames, control frames interleaved with
  fragments), a few nanoseconds per frame instead of ~2 µs of Python, and hands the reader every message received
  per wake-up instead of one message per ``await``: as a list of payloads (:meth:`FeedConnection.recv_batch`) or,
  without copying a payload, as the socket read itself plus the payloads' offsets in it
  (:meth:`FeedConnection.recv_raw`, a :class:`RawBatch` that compiled parsers read in place).

An incomplete frame at the end of a read is kept for the next one; the reads of a large frame are collected and
joined once, when the frame is complete (never re-copied per read).  Text payloads are checked for UTF-8 only when
the kernel saw a byte above 0x7F in them (market data is ASCII JSON).

Conformance (tested against a real ``websockets`` server on loopback): a masked server frame, RSV bits without a
negotiated extension, an unknown opcode, a fragmented or oversized control frame and an unexpected continuation
fail the connection with 1002; a message (or the sum of its fragments) above ``max_size`` with 1009; a text
message that is not UTF-8 with 1007.  Pings are answered with pongs carrying the same payload; a close frame is
answered with a close frame echoing its code, then the connection ends.  When the connection ends,
:meth:`~FeedConnection.recv_batch` first returns what was received before and then raises the library's
:class:`~websockets.exceptions.ConnectionClosed` (with the close frames received and sent), so callers handle
closes exactly as with the library's own client.

Examples
--------
>>> split_frames(b"\\x81\\x02hi\\x81\\x01!\\x81", 0, 1 << 20)
([(1, True, b'hi'), (1, True, b'!')], 7)
>>> batch = RawBatch(b"\\x81\\x02hi\\x81\\x01!", np.array([2, 6]), np.array([4, 7]))
>>> len(batch), batch.payloads()
(2, [b'hi', b'!'])
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl as ssl_module
import time
from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt
from websockets.client import ClientProtocol
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
)
from websockets.frames import Close, CloseCode
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.uri import parse_uri

__all__ = ["FeedConnection", "FrameError", "RawBatch", "open_feed", "split_frames"]

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_MAX_HEADERS = 16 * 1024  # an opening-handshake response larger than this is not a WebSocket server's
# Above this many undelivered payloads the socket stops being read (TCP pushes back on the server).
_PAUSE_AT = 65_536

_Offsets = npt.NDArray[np.int64]

# What stopped the kernel (besides the end of the data): a frame that breaks the protocol.
_E_MASKED, _E_RSV, _E_MSB, _E_SIZE, _E_OPCODE, _E_CONTROL = 1, 2, 3, 4, 5, 6
_FIN = 0x80  # kernel frame flags: the FIN bit and the opcode as in the frame's first byte, plus
_NON_ASCII = 0x40  # a text payload with a byte above 0x7F (RSV1's place: always clear in a valid frame)


def _split_k_py(
    buf: npt.NDArray[np.uint8],
    pos: int,
    max_size: int,
    flags: npt.NDArray[np.uint8],
    starts: _Offsets,
    ends: _Offsets,
) -> tuple[Any, Any, Any, Any, Any]:
    """Split complete server frames from ``pos`` into ``flags``/``starts``/``ends`` (payload offsets in ``buf``).

    Returns ``(count, stop, need, error, detail)``: ``stop`` is where the first frame not returned begins; at
    ``stop`` there is an incomplete frame needing ``need`` bytes from ``stop`` in all (0: unknown yet), the
    protocol violation ``error`` (``_E_*``; ``detail`` the opcode or length it names), or a full output
    (``count == len(flags)``, the caller grows it).  The checks and their order are the reference loop's
    (``split_frames`` before this kernel): a header's RSV bits, mask and size are refused as soon as it is read,
    opcodes once the frame is complete.
    """
    n = buf.shape[0]
    cap = flags.shape[0]
    count = 0
    while pos + 2 <= n and count < cap:
        b0 = np.int64(buf[pos])
        length = np.int64(buf[pos + 1])
        if length & 0x80:
            return count, pos, 0, _E_MASKED, 0
        if b0 & 0x70:
            return count, pos, 0, _E_RSV, 0
        if length < 126:
            start = pos + 2
        elif length == 126:
            if pos + 4 > n:
                return count, pos, 4, 0, 0
            length = (np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3])
            start = pos + 4
        else:
            if pos + 10 > n:
                return count, pos, 10, 0, 0
            if buf[pos + 2] & 0x80:
                return count, pos, 0, _E_MSB, 0
            length = np.int64(0)
            for j in range(pos + 2, pos + 10):
                length = (length << 8) | np.int64(buf[j])
            start = pos + 10
        if length > max_size:
            return count, pos, 0, _E_SIZE, length
        end = start + length
        if end > n:
            return count, pos, end - pos, 0, 0
        opcode = b0 & 0x0F
        if opcode >= 8:
            if opcode > _OP_PONG:
                return count, pos, 0, _E_OPCODE, opcode
            if not b0 & 0x80 or length > 125:
                return count, pos, 0, _E_CONTROL, 0
        elif opcode > _OP_BINARY:
            return count, pos, 0, _E_OPCODE, opcode
        flag = b0 & 0x8F
        if opcode == _OP_TEXT:
            high = 0
            for j in range(start, end):
                high |= buf[j]
            if high & 0x80:
                flag |= _NON_ASCII
        flags[count] = flag
        starts[count] = start
        ends[count] = end
        count += 1
        pos = int(end)
    return count, pos, 0, 0, 0


_split_k = cast(
    Callable[..., tuple[int, int, int, int, int]],
    numba.njit(cache=True, nogil=True, error_model="numpy")(_split_k_py),
)


# Load (or compile) the kernel now, for the argument types a socket read gives (a read-only byte view): loading it
# costs 0.1-3 s (LLVM start-up, more on a loaded machine), which must not land on the first message received.
_split_k(np.frombuffer(b"\x81\x00", np.uint8), 0, 0, *(np.empty(1, t) for t in (np.uint8, np.int64, np.int64)))


def _error_reason(error: int, detail: int, max_size: int) -> tuple[int, str]:
    """The close code and reason of a kernel error."""
    if error == _E_MASKED:
        return 1002, "masked frame from the server"
    if error == _E_RSV:
        return 1002, "reserved bits set"
    if error == _E_MSB:
        return 1002, "payload length with the most significant bit set"
    if error == _E_SIZE:
        return 1009, f"frame of {detail} bytes exceeds the limit of {max_size}"
    if error == _E_OPCODE:
        return 1002, f"unknown opcode {detail}"
    return 1002, "fragmented or oversized control frame"


class _Splitter:
    """The kernel's output arrays, kept and grown per connection (a read rarely holds more than a few thousand
    frames)."""

    __slots__ = ("ends", "flags", "starts")

    def __init__(self, capacity: int = 1024) -> None:
        self.flags = np.empty(capacity, np.uint8)
        self.starts = np.empty(capacity, np.int64)
        self.ends = np.empty(capacity, np.int64)

    def split(self, data: bytes, max_size: int) -> tuple[int, int, int, int, int]:
        """:func:`_split_k` over all of ``data`` from 0, growing the arrays until the frames fit."""
        buf = np.frombuffer(data, np.uint8)
        while True:
            out = _split_k(buf, 0, max_size, self.flags, self.starts, self.ends)
            if out[0] < len(self.flags) or out[1] + 2 > len(data) or out[2] or out[3]:
                return out
            capacity = 4 * len(self.flags)  # full: grow and split again from the start (rare, amortised)
            self.flags = np.empty(capacity, np.uint8)
            self.starts = np.empty(capacity, np.int64)
            self.ends = np.empty(capacity, np.int64)


class FrameError(Exception):
    """A frame that breaks RFC 6455 (or the size cap): ``code`` is the close code to fail the connection with."""

    def __init__(self, code: int, reason: str, frames: list[tuple[int, bool, bytes]] | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.frames = frames or []  # the valid frames before the bad one (still delivered)


def split_frames(data: bytes, pos: int, max_size: int) -> tuple[list[tuple[int, bool, bytes]], int]:
    """Complete server frames in ``data`` from ``pos``: ``([(opcode, fin, payload), ...], end of the last one)``.

    Server frames are unmasked (a masked one, RSV bits, an unknown opcode, a bad control frame raise
    :class:`FrameError` with 1002; a payload above ``max_size`` raises it with 1009).  An incomplete frame at the
    end is left for the next call (the returned position points at it).  :class:`FeedConnection` uses the same
    compiled kernel without building the tuples.
    """
    splitter = _Splitter(max(16, (len(data) - pos) // 64))
    count, stop, _, error, detail = splitter.split(data[pos:] if pos else data, max_size)
    flags, starts, ends = splitter.flags.tolist(), splitter.starts.tolist(), splitter.ends.tolist()
    frames = [(flags[k] & 0x0F, flags[k] >= _FIN, data[pos + starts[k] : pos + ends[k]]) for k in range(count)]
    if error:
        raise FrameError(*_error_reason(error, detail, max_size), frames)
    return frames, pos + stop


class RawBatch:
    """Messages of one socket read (or of several joined) without a copy per message.

    ``buf`` is the received bytes (frame headers included); message ``k``'s payload is
    ``buf[starts[k]:ends[k]]``: the offsets index into ``buf``, in arrival order, one per complete text or binary
    message (a fragmented message arrives as its own batch over the joined payload).  Compiled parsers read the
    payloads in place with ``np.frombuffer(batch.buf, np.uint8)``.
    """

    __slots__ = ("buf", "ends", "starts")

    buf: bytes
    starts: _Offsets
    ends: _Offsets

    def __init__(self, buf: bytes, starts: _Offsets, ends: _Offsets) -> None:
        self.buf = buf
        self.starts = starts
        self.ends = ends

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        return f"RawBatch({len(self)} messages in {len(self.buf)} bytes)"

    def payloads(self) -> list[bytes]:
        """The messages as ``bytes``, oldest first."""
        buf = self.buf
        return [buf[s:e] for s, e in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]

    @staticmethod
    def join(batches: list[RawBatch]) -> RawBatch:
        """One batch of several, in order: the buffers joined, the offsets shifted."""
        if len(batches) == 1:
            return batches[0]
        shift = 0
        starts, ends = [], []
        for batch in batches:
            starts.append(batch.starts + shift)
            ends.append(batch.ends + shift)
            shift += len(batch.buf)
        return RawBatch(b"".join([b.buf for b in batches]), np.concatenate(starts), np.concatenate(ends))


class FeedConnection(asyncio.Protocol):
    """One client WebSocket connection whose reader takes every received message at once.

    Create it with :func:`open_feed`.  ``send`` and ``close`` mirror the library client's coroutines;
    ``recv_batch`` replaces ``recv``.  ``transport`` is the asyncio transport (``abort()`` drops the connection).
    """

    def __init__(self, protocol: ClientProtocol, max_size: int) -> None:
        self.protocol = protocol
        self.max_size = max_size
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.handshake: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.last_pong = 0.0
        self._head = b""  # handshake bytes until the blank line ending the response headers
        self._tail: list[bytes] = []  # an incomplete frame's reads, joined once it is complete
        self._tail_size = 0
        self._tail_need = 0  # bytes the incomplete frame needs in all (0: unknown until the next read)
        self._splitter = _Splitter()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0
        self._ready: list[RawBatch] = []
        self._ready_count = 0  # messages in _ready
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._open = False
        self._dead = False  # failed or closed by the server: ignore whatever still arrives
        self._rcvd: Close | None = None
        self._sent: Close | None = None
        self._rcvd_first: bool | None = None  # with both close frames: was the server's first?
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_sent = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush_writes()

    def data_received(self, data: bytes) -> None:
        if not self.handshake.done():
            self._handshake_data(data)
            return
        if self._dead:
            return
        if self._tail:
            self._tail.append(data)
            self._tail_size += len(data)
            if self._tail_size < self._tail_need:
                return  # a large frame still arriving: collect its reads, join them once
            data = b"".join(self._tail)
            self._tail = []
        count, stop, need, error, detail = self._splitter.split(data, self.max_size)
        if count and not self._on_frames(data, count):
            return
        if error:
            self._fail(*_error_reason(error, detail, self.max_size))
        elif stop < len(data):
            self._tail = [data[stop:]]
            self._tail_size = len(data) - stop
            self._tail_need = need

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))
        if not self._lost.done():
            self._lost.set_result(None)
        self._wake()

    def pause_writing(self) -> None:  # sends are small requests: nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # -- public ---------------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the connection ended (close handshake done, failed or dropped)."""
        return self._lost.done()

    @property
    def close_code(self) -> int | None:
        """The code of the close frame received (``None`` before, 1006 when the connection dropped without one)."""
        if not self.closed:
            return None
        return self._rcvd.code if self._rcvd is not None else CloseCode.ABNORMAL_CLOSURE

    async def recv_batch(self) -> list[bytes]:
        """Every message received since the last call (at least one), oldest first; text and binary as bytes.

        Raises :class:`~websockets.exceptions.ConnectionClosed` once the connection ended and nothing is left.
        """
        ready = await self._take()
        if len(ready) == 1:
            return ready[0].payloads()
        out: list[bytes] = []
        for batch in ready:
            out += batch.payloads()
        return out

    async def recv_raw(self) -> RawBatch:
        """Every message received since the last call (at least one) as one :class:`RawBatch`: the received
        bytes and each payload's offsets in them, oldest first; no payload is copied (several reads received
        before the caller woke up are joined into one buffer).

        Raises :class:`~websockets.exceptions.ConnectionClosed` once the connection ended and nothing is left.
        """
        return RawBatch.join(await self._take())

    async def _take(self) -> list[RawBatch]:
        while not self._ready:
            if self._lost.done():
                raise self._closed_exc()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        out = self._ready
        self._ready = []
        self._ready_count = 0
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        return out

    async def send(self, message: str | bytes) -> None:
        """Send a text message (``str``) or a binary one (``bytes``), masked as a client must."""
        if not self._open:
            raise self._closed_exc()
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        self._flush_writes()

    async def ping(self, data: bytes = b"") -> None:
        """Send a ping frame (the answering pong sets :attr:`last_pong`)."""
        if self._open:
            self.protocol.send_ping(data)
            self._flush_writes()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait until the server closes (the caller bounds the wait)."""
        if self._open:
            self._send_close(code, reason)
        with contextlib.suppress(Exception):
            await asyncio.shield(self._lost)

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        await asyncio.shield(self._lost)

    def start_keepalive(self, interval_s: float | None, timeout_s: float | None) -> None:
        """Ping every ``interval_s``; fail the connection (1011) when a pong takes longer than ``timeout_s``."""
        if interval_s is None:
            return
        self._keepalive = asyncio.get_running_loop().call_later(interval_s, self._keepalive_tick, interval_s, timeout_s)

    # -- internals ------------------------------------------------------------------------------------------
    def _handshake_data(self, data: bytes) -> None:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _MAX_HEADERS:
                self._handshake_failed(InvalidMessage("handshake response headers too long"))
            else:
                self._head = head
            return
        self._head = b""
        self.protocol.receive_data(head[: end + 4])
        events = self.protocol.events_received()
        self._flush_writes()
        if self.protocol.state is not OPEN or not events or not isinstance(events[0], Response):
            exc = self.protocol.handshake_exc or InvalidMessage("did not receive a valid HTTP response")
            self._handshake_failed(exc)
            return
        self._open = True
        self.handshake.set_result(events[0])
        rest = head[end + 4 :]
        if rest:
            self.data_received(rest)

    def _handshake_failed(self, exc: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc)
        self.transport.abort()

    def _on_frames(self, data: bytes, count: int) -> bool:
        """Deliver the first ``count`` frames the splitter found in ``data``, act on control frames; False when
        one of them ended the connection.

        Runs of complete text/binary frames become :class:`RawBatch` views of ``data``; a control frame, a
        fragment or a text payload with non-ASCII bytes is handled on its own between them.
        """
        splitter = self._splitter
        flags = splitter.flags[:count]
        # the usual read: whole data messages, ASCII text
        simple = not self._fragments and bool(np.all((flags == _FIN | _OP_TEXT) | (flags == _FIN | _OP_BINARY)))
        ok = True
        if simple:
            self._deliver(RawBatch(data, splitter.starts[:count].copy(), splitter.ends[:count].copy()))
        else:
            ok = self._on_mixed(data, flags.tolist(), splitter.starts[:count].copy(), splitter.ends[:count].copy())
        if self._ready_count >= _PAUSE_AT and not self._paused and not self._dead:
            self._paused = True
            self.transport.pause_reading()
        self._wake()
        return ok

    def _on_mixed(self, data: bytes, flags: list[int], starts: _Offsets, ends: _Offsets) -> bool:
        run = 0  # first frame of the current run of whole data messages
        for k, flag in enumerate(flags):
            opcode = flag & 0x0F
            if not self._fragments and flag in (_FIN | _OP_TEXT, _FIN | _OP_BINARY):
                continue
            if k > run:
                self._deliver(RawBatch(data, starts[run:k], ends[run:k]))
            run = k + 1
            payload = data[starts[k] : ends[k]]
            if flag == _FIN | _NON_ASCII | _OP_TEXT and not self._fragments:
                try:
                    payload.decode()
                except UnicodeDecodeError:
                    self._fail(1007, "invalid UTF-8 in a text message")
                    return False
                self._deliver(RawBatch(data, starts[k : k + 1], ends[k : k + 1]))
            elif opcode >= 8:
                if not self._control(opcode, payload):
                    return False
            elif not self._fragment(opcode, flag >= _FIN, payload):
                return False
        if len(flags) > run:
            self._deliver(RawBatch(data, starts[run:], ends[run:]))
        return True

    def _deliver(self, batch: RawBatch) -> None:
        self._ready.append(batch)
        self._ready_count += len(batch)

    def _fragment(self, opcode: int, fin: bool, payload: bytes) -> bool:
        """A data frame outside the fast case: the start, middle or end of a fragmented message, or binary."""
        if opcode == _OP_CONT:
            if not self._fragments:
                self._fail(1002, "continuation frame without a message to continue")
                return False
        elif self._fragments:
            self._fail(1002, "new message while a fragmented one is incomplete")
            return False
        else:
            self._fragment_opcode = opcode
            self._fragment_size = 0
        self._fragment_size += len(payload)
        if self._fragment_size > self.max_size:
            self._fail(1009, f"message exceeds the limit of {self.max_size} bytes")
            return False
        self._fragments.append(payload)
        if not fin:
            return True
        message = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_opcode == _OP_TEXT and not message.isascii():
            try:
                message.decode()
            except UnicodeDecodeError:
                self._fail(1007, "invalid UTF-8 in a text message")
                return False
        self._deliver(RawBatch(message, np.zeros(1, np.int64), np.array([len(message)], np.int64)))
        return True

    def _control(self, opcode: int, payload: bytes) -> bool:
        """Answer a ping, note a pong, complete the closing handshake; False when the connection ended."""
        if opcode == _OP_PING:
            if self._open:
                self.protocol.send_pong(payload)
                self._flush_writes()
            return True
        if opcode == _OP_PONG:
            self.last_pong = time.monotonic()
            self._ping_sent = 0.0
            return True
        if len(payload) == 1:
            self._fail(1002, "close frame with a one-byte payload")
            return False
        try:
            self._rcvd = Close.parse(payload) if payload else Close(CloseCode.NO_STATUS_RCVD, "")
        except Exception:  # the library validates the code and the UTF-8 reason
            self._fail(1002, "invalid close frame")
            return False
        self._rcvd_first = self._sent is None
        if self._open:
            code = self._rcvd.code if payload else None
            self._open = False
            if self._sent is None:
                self.protocol.send_close(code, self._rcvd.reason if code is not None else "")
                self._sent = self.protocol.close_sent
                self._flush_writes()
        self._dead = True
        self.transport.close()  # the server has closed its side; RFC 6455 lets the client close TCP now
        return False

    def _send_close(self, code: int, reason: str) -> None:
        self._open = False
        with contextlib.suppress(Exception):
            self.protocol.send_close(code, reason)
            self._sent = self.protocol.close_sent
            self._flush_writes()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): send a close frame with ``code``, stop reading."""
        if self._open:
            self._send_close(code, reason)
        self._dead = True
        self._tail = []
        self._fragments = []
        self.transport.close()
        self._wake()

    def _flush_writes(self) -> None:
        data = self.protocol.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(b"".join(data))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _keepalive_tick(self, interval_s: float, timeout_s: float | None) -> None:
        if not self._open:
            return
        now = time.monotonic()
        if self._ping_sent and timeout_s is not None and now - self._ping_sent > timeout_s:
            self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            return
        if not self._ping_sent:
            self._ping_sent = now
            self.protocol.send_ping(os.urandom(4))
            self._flush_writes()
        self._keepalive = asyncio.get_running_loop().call_later(interval_s, self._keepalive_tick, interval_s, timeout_s)

    def _closed_exc(self) -> ConnectionClosed:
        ok = (1000, 1001)
        rcvd, sent = self._rcvd, self._sent
        first = self._rcvd_first if rcvd is not None and sent is not None else None
        if rcvd is not None and rcvd.code in ok and (sent is None or sent.code in ok):
            return ConnectionClosedOK(rcvd, sent, first)
        return ConnectionClosedError(rcvd, sent, first)


async def open_feed(
    url: str,
    *,
    max_size: int = 1 << 20,
    open_timeout: float | None = 10.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    ssl: ssl_module.SSLContext | None = None,
) -> FeedConnection:
    """Open a :class:`FeedConnection` to ``url`` (``ws://`` or ``wss://``) and complete the opening handshake.

    Raises ``OSError`` when the server cannot be reached, ``TimeoutError`` after ``open_timeout`` seconds,
    :class:`~websockets.exceptions.InvalidURI` for a bad URL and
    :class:`~websockets.exceptions.InvalidHandshake` when the server's answer is not a valid WebSocket upgrade.
    No extension is offered, so frames arrive uncompressed.
    """
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    context: ssl_module.SSLContext | None = None
    if uri.secure:
        context = ssl or ssl_module.create_default_context()

    def factory() -> FeedConnection:
        return FeedConnection(ClientProtocol(uri, max_size=max_size), max_size)

    async def opening() -> FeedConnection:
        kwargs: dict[str, Any] = {"ssl": context, "server_hostname": uri.host} if context is not None else {}
        _, conn = await loop.create_connection(factory, uri.host, uri.port, **kwargs)
        try:
            await conn.handshake
        except BaseException:
            conn.transport.abort()
            raise
        return conn

    conn = await asyncio.wait_for(opening(), open_timeout)
    conn.start_keepalive(ping_interval, ping_timeout)
    return conn
