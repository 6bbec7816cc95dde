"""RFC 6455 conformance of :mod:`live._ws` (the feed client's own receive loop) against a real ``websockets`` server.

The server side is the ``websockets`` library on loopback; protocol violations it would never commit are written
to its transport as raw bytes after the handshake.  What the client sent back is read from the server's protocol
state (close frame received, pongs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidHandshake
from websockets.frames import Frame, Opcode

from live._ws import FeedConnection, FrameError, open_feed, split_frames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

Handler = Callable[[ServerConnection], Awaitable[None]]


async def _with_server(handler: Handler, client: Callable[[str], Awaitable[None]]) -> list[ServerConnection]:
    seen: list[ServerConnection] = []

    async def wrapped(ws: ServerConnection) -> None:
        seen.append(ws)
        with contextlib.suppress(ConnectionClosed):
            await handler(ws)
            await ws.wait_closed()

    async with serve(wrapped, "127.0.0.1", 0, ping_interval=None, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await asyncio.wait_for(client(f"ws://127.0.0.1:{port}/feed"), 10)
        for ws in seen:
            await asyncio.wait_for(ws.wait_closed(), 5)
    return seen


async def _receive_all(conn: FeedConnection) -> tuple[list[bytes], ConnectionClosed]:
    got: list[bytes] = []
    while True:
        try:
            got.extend(await conn.recv_batch())
        except ConnectionClosed as exc:
            return got, exc


def _server_close_code(ws: ServerConnection) -> int | None:
    rcvd = ws.protocol.close_rcvd
    return None if rcvd is None else rcvd.code


def test_every_length_class_and_fragmented_messages_arrive_intact() -> None:
    sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 300_000]  # 7-bit, 16-bit and 64-bit length fields
    texts = ["x" * n for n in sizes]
    received: list[bytes] = []
    errors: list[ConnectionClosed] = []

    async def handler(ws: ServerConnection) -> None:
        for text in texts:
            await ws.send(text)
        await ws.send(b"\x00\x01binary")
        await ws.send(["frag", "mented ", "mess\u00e9ge"])  # one text message in three frames (non-ASCII too)
        await ws.send(iter([b"bin", b"ary"]))
        await ws.close(1000, "done")

    async def client(url: str) -> None:
        conn = await open_feed(url, max_size=1 << 20, ping_interval=None)
        got, exc = await _receive_all(conn)
        received.extend(got)
        errors.append(exc)

    asyncio.run(_with_server(handler, client))
    assert received == [t.encode() for t in texts] + [b"\x00\x01binary", "fragmented mess\u00e9ge".encode(), b"binary"]
    assert isinstance(errors[0], ConnectionClosedOK)
    assert errors[0].rcvd is not None
    assert errors[0].rcvd.code == 1000
    assert errors[0].rcvd.reason == "done"


def test_ping_is_answered_with_pong_and_client_sends_are_masked_text() -> None:
    latencies: list[float] = []
    requests: list[str] = []
    pongs: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        requests.append(str(await ws.recv()))
        waiter = await ws.ping(b"check")
        latencies.append(await asyncio.wait_for(waiter, 5))  # resolves only when the matching pong arrives
        await ws.send("after ping")
        requests.append(str(await ws.recv()))  # the client's own ping was answered by the library in between
        await ws.close(1001, "going away")

    async def client(url: str) -> None:
        conn = await open_feed(url, ping_interval=None)
        await conn.send('{"op":"subscribe"}')
        got: list[bytes] = []
        while not got:
            got.extend(await conn.recv_batch())
        assert got == [b"after ping"]
        await conn.ping(b"mine")
        for _ in range(100):
            if conn.last_pong:
                break
            await asyncio.sleep(0.01)
        pongs.append(conn.last_pong)
        await conn.send("bye")
        _, exc = await _receive_all(conn)
        assert exc.rcvd is not None
        assert exc.rcvd.code == 1001

    seen = asyncio.run(_with_server(handler, client))
    assert requests == ['{"op":"subscribe"}', "bye"]  # the server (which unmasks and checks) read them
    assert latencies
    assert latencies[0] >= 0
    assert pongs[0] > 0
    assert _server_close_code(seen[0]) == 1001  # the client echoed the close code


def test_client_close_completes_the_handshake() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("hello")
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    async def client(url: str) -> None:
        conn = await open_feed(url, ping_interval=None)
        assert await conn.recv_batch() == [b"hello"]
        await asyncio.wait_for(conn.close(1000, "client done"), 5)
        assert conn.closed
        with pytest.raises(ConnectionClosedOK):
            await conn.recv_batch()

    seen = asyncio.run(_with_server(handler, client))
    assert _server_close_code(seen[0]) == 1000


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x81\x82abcdxy", 1002),  # a masked frame from the server
        (b"\xc1\x01x", 1002),  # RSV1 without a negotiated extension
        (b"\x83\x01x", 1002),  # reserved data opcode 3
        (b"\x8b\x00", 1002),  # reserved control opcode 11
        (b"\x09\x00", 1002),  # fragmented ping
        (b"\x89\x7e\x00\x80" + b"p" * 128, 1002),  # ping with a 128-byte payload (control frames stop at 125)
        (b"\x80\x01x", 1002),  # continuation with no message started
        (b"\x01\x01a\x81\x01b", 1002),  # a new text message while a fragmented one is open
        (b"\x88\x01\x03", 1002),  # close frame with a one-byte payload
        (b"\x81\x02\xff\xfe", 1007),  # text that is not UTF-8
        (b"\x01\x01\xc3\x80\x01\x28", 1007),  # fragmented text, broken UTF-8 once assembled
        (b"\x81\x7f" + (1 << 63).to_bytes(8, "big"), 1002),  # 64-bit length with the top bit set
    ],
)
def test_protocol_violations_fail_the_connection(raw: bytes, code: int) -> None:
    outcome: list[ConnectionClosed] = []
    received: list[bytes] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send("ok before")
        await asyncio.sleep(0.05)
        ws.transport.write(raw)
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    async def client(url: str) -> None:
        conn = await open_feed(url, ping_interval=None)
        got, exc = await _receive_all(conn)
        received.extend(got)
        outcome.append(exc)

    seen = asyncio.run(_with_server(handler, client))
    assert received == [b"ok before"]  # what came before the violation is still delivered
    assert isinstance(outcome[0], ConnectionClosedError)
    assert outcome[0].sent is not None
    assert outcome[0].sent.code == code
    assert _server_close_code(seen[0]) == code


@pytest.mark.parametrize("fragmented", [False, True])
def test_oversize_message_is_rejected_with_1009(fragmented: bool) -> None:
    outcome: list[ConnectionClosed] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send("small")
        big = "y" * 5_000
        await ws.send([big[:2_500], big[2_500:]] if fragmented else big)
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    async def client(url: str) -> None:
        conn = await open_feed(url, max_size=4_096, ping_interval=None)
        got, exc = await _receive_all(conn)
        assert got == [b"small"]
        outcome.append(exc)

    seen = asyncio.run(_with_server(handler, client))
    assert outcome[0].sent is not None
    assert outcome[0].sent.code == 1009
    assert _server_close_code(seen[0]) == 1009


def test_keepalive_fails_a_connection_whose_pongs_stop() -> None:
    outcome: list[ConnectionClosed] = []

    async def handler(ws: ServerConnection) -> None:
        send_frame = ws.protocol.send_frame

        def no_pongs(frame: Frame) -> None:  # a peer that never answers pings
            if frame.opcode is not Opcode.PONG:
                send_frame(frame)

        ws.protocol.send_frame = no_pongs  # type: ignore[method-assign]
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    async def client(url: str) -> None:
        conn = await open_feed(url, ping_interval=0.05, ping_timeout=0.1)
        _, exc = await _receive_all(conn)
        outcome.append(exc)

    asyncio.run(_with_server(handler, client))
    assert outcome[0].sent is not None
    assert outcome[0].sent.code == 1011


def test_handshake_refused_raises_invalid_handshake() -> None:
    async def main() -> None:
        from websockets.http11 import Response

        def refuse(connection: ServerConnection, request: object) -> Response:
            return connection.respond(404, "no such feed\n")

        async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            with pytest.raises(InvalidHandshake):
                await open_feed(f"ws://127.0.0.1:{port}/x", open_timeout=5)

    asyncio.run(main())


def test_split_frames_keeps_an_incomplete_frame_for_the_next_read() -> None:
    data = b"\x81\x03abc" + b"\x81\x7e\x01\x00" + b"z" * 100  # second frame announces 256 bytes, 100 arrived
    frames, end = split_frames(data, 0, 1 << 20)
    assert frames == [(1, True, b"abc")]
    assert end == 5
    with pytest.raises(FrameError) as info:
        split_frames(b"\x81\x7e\x01\x00", 0, 255)
    assert info.value.code == 1009
