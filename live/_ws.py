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
* splits the server's frames itself, in one tight loop over each chunk the socket returns (RFC 6455 section
  5.2: 7-, 16- and 64-bit lengths, FIN and continuation frames, control frames interleaved with fragments), and
  hands the reader a *list* of payloads per wake-up (:meth:`FeedConnection.recv_batch`) instead of one message
  per ``await``.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl as ssl_module
import time
from typing import Any

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

__all__ = ["FeedConnection", "FrameError", "open_feed", "split_frames"]

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_MAX_HEADERS = 16 * 1024  # an opening-handshake response larger than this is not a WebSocket server's
# Above this many undelivered payloads the socket stops being read (TCP pushes back on the server).
_PAUSE_AT = 65_536


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
    end is left for the next call (the returned position points at it).
    """
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
            if opcode > _OP_PONG:
                raise FrameError(1002, f"unknown opcode {opcode}", out)
            if not b0 & 0x80 or length > 125:
                raise FrameError(1002, "fragmented or oversized control frame", out)
        elif opcode > _OP_BINARY:
            raise FrameError(1002, f"unknown opcode {opcode}", out)
        append((opcode, b0 >= 0x80, data[start:end]))
        pos = end
    return out, pos


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
        self._tail = b""  # an incomplete frame carried to the next read
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0
        self._ready: list[bytes] = []
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
            data = self._tail + data
        try:
            frames, end = split_frames(data, 0, self.max_size)
        except FrameError as exc:
            if not exc.frames or self._on_frames(exc.frames):
                self._fail(exc.code, exc.reason)
            return
        self._tail = data[end:] if end < len(data) else b""
        if frames:
            self._on_frames(frames)

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

    def _on_frames(self, frames: list[tuple[int, bool, bytes]]) -> bool:
        """Deliver data frames, act on control frames; False when one of them ended the connection."""
        ready = self._ready
        for opcode, fin, payload in frames:
            if opcode == _OP_TEXT and fin and not self._fragments:
                if not payload.isascii():
                    try:
                        payload.decode()
                    except UnicodeDecodeError:
                        self._fail(1007, "invalid UTF-8 in a text message")
                        return False
                ready.append(payload)
            elif opcode >= 8:
                if not self._control(opcode, payload):
                    self._wake()
                    return False
            elif not self._fragment(opcode, fin, payload):
                return False
        if len(ready) >= _PAUSE_AT and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()
        return True

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
        self._ready.append(message)
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
        self._tail = b""
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
