"""The bus between engine stages and processes: batches of rows (Polars frames) on named topics.

Two implementations share the `Bus` protocol:

* `InProcessBus` (the default): asyncio queues, for one process.
* `RedisStreamBus`: Redis Streams with consumer groups, for engines sharded over several processes.

Semantics (both)
----------------
* A message is one frame, encoded as Arrow IPC stream bytes, so it round-trips exactly (decimals, lists of
  structs, unsigned ints).  Publishing with ``table=`` validates the frame first and stamps the table name, and
  readers validate it again.
* Consumer groups: each message of a topic is delivered to one consumer of each group.  A consumer reads with
  `Bus.read`, handles, then `Bus.ack`s.  Delivery is **at least once**: a message not acked (its consumer died)
  stays pending and another consumer takes it over with `Bus.claim_stale` after ``min_idle_ms``.  Handlers must
  therefore be idempotent; `Deduplicator` drops message ids already handled in this process, and storage writes
  are upserts by record id (`live.storage.PostgresStore`), so a redelivery is harmless.
* Redis streams are capped (``XADD MAXLEN ~ max_len``): the bus never grows without bound, and a consumer lagging
  by more than the cap loses the oldest messages.

Examples
--------
>>> import asyncio, polars as pl
>>> async def demo() -> int:
...     bus = InProcessBus()
...     await bus.ensure_group("opps", "storage")
...     await bus.publish("opps", pl.DataFrame({"x": [1, 2]}))
...     messages = await bus.read("opps", "storage", "c1")
...     await bus.ack("opps", "storage", [m.id for m in messages])
...     return messages[0].frame.height
>>> asyncio.run(demo())
2
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from arbkit.schema import TABLES, Table, validate

__all__ = [
    "Bus",
    "Deduplicator",
    "InProcessBus",
    "Message",
    "RedisStreamBus",
    "consume",
    "decode_frame",
    "encode_frame",
]


@dataclass(frozen=True, slots=True)
class Message:
    """One delivered batch: the bus's message ``id``, its ``topic``, the ``frame`` and its table name (or None)."""

    id: str
    topic: str
    frame: pl.DataFrame
    table: str | None = None


def encode_frame(frame: pl.DataFrame) -> bytes:
    """Arrow IPC stream bytes of ``frame`` (uncompressed: cheaper than the network for small batches)."""
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    return buffer.getvalue()


def decode_frame(data: bytes) -> pl.DataFrame:
    """Inverse of `encode_frame`."""
    return pl.read_ipc_stream(data)


def _checked(frame: pl.DataFrame, table: str | None) -> pl.DataFrame:
    return frame if table is None else validate(frame, TABLES[table])


class Bus(Protocol):
    """Topics of frames with consumer groups and at-least-once delivery (see the module docstring)."""

    async def publish(self, topic: str, frame: pl.DataFrame, *, table: Table | None = None) -> str:
        """Append ``frame`` to ``topic``; returns the message id.  ``table`` validates and stamps the frame."""
        ...

    async def ensure_group(self, topic: str, group: str) -> None:
        """Create ``group`` on ``topic`` if absent; a new group starts at the beginning of the topic."""
        ...

    async def read(
        self, topic: str, group: str, consumer: str, *, count: int = 16, block_ms: int | None = None
    ) -> list[Message]:
        """Up to ``count`` new messages for ``consumer``; waits up to ``block_ms`` for one (None: no wait)."""
        ...

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> int:
        """Mark messages handled; returns how many were pending."""
        ...

    async def claim_stale(
        self, topic: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 16
    ) -> list[Message]:
        """Take over messages delivered to any consumer of ``group`` but not acked for ``min_idle_ms``."""
        ...

    async def pending(self, topic: str, group: str) -> int:
        """Number of delivered, unacknowledged messages of ``group``."""
        ...


# --------------------------------------------------------------------------------------------- in-process
@dataclass
class _Group:
    next_index: int = 0
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (consumer, delivered at)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Topic:
    log: deque[tuple[str, bytes, str | None]] = field(default_factory=deque)
    first_index: int = 0  # absolute index of log[0] (the log is capped)
    groups: dict[str, _Group] = field(default_factory=dict)
    by_id: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)


class InProcessBus:
    """`Bus` over in-memory logs: the default for a single process.

    Frames are encoded like on Redis so both buses behave the same (and a frame mutated after publishing
    cannot change what consumers see).  Each topic keeps at most ``max_len`` messages.
    """

    def __init__(self, max_len: int = 100_000) -> None:
        self.max_len = max_len
        self._topics: dict[str, _Topic] = {}
        self._ids = itertools.count(1)

    def _topic(self, name: str) -> _Topic:
        return self._topics.setdefault(name, _Topic())

    async def publish(self, topic: str, frame: pl.DataFrame, *, table: Table | None = None) -> str:
        if table is not None:
            frame = validate(frame, table)
        t = self._topic(topic)
        message_id = str(next(self._ids))
        data = encode_frame(frame)
        name = table.name if table is not None else None
        t.log.append((message_id, data, name))
        t.by_id[message_id] = (data, name)
        while len(t.log) > self.max_len:
            old_id, _, _ = t.log.popleft()
            t.first_index += 1
            if not any(old_id in g.pending for g in t.groups.values()):
                t.by_id.pop(old_id, None)
        for group in t.groups.values():
            group.changed.set()
        return message_id

    async def ensure_group(self, topic: str, group: str) -> None:
        t = self._topic(topic)
        t.groups.setdefault(group, _Group(next_index=t.first_index))

    async def read(
        self, topic: str, group: str, consumer: str, *, count: int = 16, block_ms: int | None = None
    ) -> list[Message]:
        t = self._topic(topic)
        g = t.groups[group]
        if g.next_index >= t.first_index + len(t.log) and block_ms:
            g.changed.clear()
            try:
                await asyncio.wait_for(g.changed.wait(), block_ms / 1000)
            except TimeoutError:
                return []
        g.next_index = max(g.next_index, t.first_index)
        start = g.next_index - t.first_index
        batch = list(itertools.islice(t.log, start, start + count))
        g.next_index += len(batch)
        now = time.monotonic()
        out: list[Message] = []
        for message_id, data, name in batch:
            g.pending[message_id] = (consumer, now)
            out.append(Message(message_id, topic, _checked(decode_frame(data), name), name))
        return out

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> int:
        g = self._topic(topic).groups[group]
        return sum(g.pending.pop(i, None) is not None for i in ids)

    async def claim_stale(
        self, topic: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 16
    ) -> list[Message]:
        t = self._topic(topic)
        g = t.groups[group]
        now = time.monotonic()
        out: list[Message] = []
        for message_id, (_, since) in list(g.pending.items()):
            if len(out) >= count:
                break
            if (now - since) * 1000 >= min_idle_ms and message_id in t.by_id:
                g.pending[message_id] = (consumer, now)
                data, name = t.by_id[message_id]
                out.append(Message(message_id, topic, _checked(decode_frame(data), name), name))
        return out

    async def pending(self, topic: str, group: str) -> int:
        return len(self._topic(topic).groups[group].pending)


# --------------------------------------------------------------------------------------------- Redis Streams
class RedisStreamBus:
    """`Bus` over Redis Streams: ``XADD MAXLEN ~``, ``XREADGROUP``, ``XACK``, ``XAUTOCLAIM``.

    Parameters
    ----------
    redis
        A ``redis.asyncio.Redis`` client owned by the caller, created with ``decode_responses=False`` (payloads
        are binary).
    prefix
        Stream keys are ``<prefix>:bus:<topic>``.
    max_len
        Approximate cap of each stream.
    """

    def __init__(self, redis: Any, prefix: str = "arbkit", *, max_len: int = 100_000) -> None:
        self._redis: Any = redis
        self.prefix = prefix
        self.max_len = max_len

    def stream(self, topic: str) -> str:
        """The Redis key of a topic's stream."""
        return f"{self.prefix}:bus:{topic}"

    async def publish(self, topic: str, frame: pl.DataFrame, *, table: Table | None = None) -> str:
        if table is not None:
            frame = validate(frame, table)
        fields = {b"data": encode_frame(frame), b"table": b"" if table is None else table.name.encode()}
        message_id = await self._redis.xadd(self.stream(topic), fields, maxlen=self.max_len, approximate=True)
        return _text(message_id)

    async def ensure_group(self, topic: str, group: str) -> None:
        try:
            await self._redis.xgroup_create(self.stream(topic), group, id="0", mkstream=True)
        except Exception as exc:  # redis.ResponseError: BUSYGROUP when the group exists
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(
        self, topic: str, group: str, consumer: str, *, count: int = 16, block_ms: int | None = None
    ) -> list[Message]:
        reply = await self._redis.xreadgroup(group, consumer, {self.stream(topic): ">"}, count=count, block=block_ms)
        out: list[Message] = []
        for _, entries in reply or []:
            out.extend(self._message(topic, entry_id, fields) for entry_id, fields in entries)
        return out

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(await self._redis.xack(self.stream(topic), group, *ids))

    async def claim_stale(
        self, topic: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 16
    ) -> list[Message]:
        reply = await self._redis.xautoclaim(
            self.stream(topic), group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        entries = reply[1]  # [next start id, claimed entries, ids deleted by trimming (Redis 7)]
        return [self._message(topic, entry_id, fields) for entry_id, fields in entries if fields]

    async def pending(self, topic: str, group: str) -> int:
        info = await self._redis.xpending(self.stream(topic), group)
        return int(info["pending"])

    def _message(self, topic: str, entry_id: Any, fields: dict[Any, Any]) -> Message:
        data = fields.get(b"data", fields.get("data"))
        raw_table = fields.get(b"table", fields.get("table", b""))
        table = _text(raw_table) or None
        if not isinstance(data, bytes):
            raise TypeError("RedisStreamBus needs a client created with decode_responses=False")
        return Message(_text(entry_id), topic, _checked(decode_frame(data), table), table)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------------------- consumers
class Deduplicator:
    """Remembers the last ``capacity`` handled keys (message ids or record ids) to drop redeliveries.

    >>> seen = Deduplicator(capacity=2)
    >>> [seen.add(k) for k in ("a", "b", "a", "c", "b")]  # "c" evicts "b", the least recently seen
    [True, True, False, True, True]
    >>> "c" in seen
    True
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add(self, key: str) -> bool:
        """Record ``key``; True if it was new, False for a repeat still remembered."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


async def consume(
    bus: Bus,
    topic: str,
    group: str,
    consumer: str,
    handler: Callable[[Message], Awaitable[None]],
    *,
    stop: asyncio.Event,
    claim_idle_ms: int = 30_000,
    count: int = 16,
    block_ms: int = 100,
    dedupe: Deduplicator | None = None,
) -> int:
    """Run one consumer of ``group`` until ``stop`` is set; returns the number of messages handled.

    Each turn first takes over messages left pending by dead consumers for ``claim_idle_ms``, then reads new
    ones.  A message is acked only after ``handler`` returns, so a crash leaves it pending for another
    consumer; a handler exception propagates (the message stays pending).  Messages whose id ``dedupe`` has
    already seen are acked without calling the handler.
    """
    seen = dedupe if dedupe is not None else Deduplicator()
    handled = 0
    await bus.ensure_group(topic, group)
    while not stop.is_set():
        messages = await bus.claim_stale(topic, group, consumer, min_idle_ms=claim_idle_ms, count=count)
        if not messages:
            messages = await bus.read(topic, group, consumer, count=count, block_ms=block_ms)
        for message in messages:
            if message.id not in seen:
                await handler(message)  # record the id only once handled: a failure must not hide a retry
                seen.add(message.id)
                handled += 1
            await bus.ack(topic, group, [message.id])
    return handled
