"""Coinbase's connection-wide ``sequence_num``: a jump means lost messages, so the connection's books are flagged.

Messages are the recorded level2 fixtures in ``tests/resources/messages/coinbase.jsonl`` (a snapshot with
``sequence_num`` 0 and an update with ``sequence_num`` 1), fed to the connector's message handler directly.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson

from arbkit.schema import QuoteFlag
from live.batcher import FeedItem
from live.connector import Connector, ConnectorConfig, _Link, _Slot

MESSAGES = Path(__file__).parents[2] / "resources" / "messages" / "coinbase.jsonl"


def _recorded(channel: str) -> dict[str, Any]:
    with MESSAGES.open() as f:
        for line in f:
            item = json.loads(line)
            if item["channel"] == channel:
                raw = item.get("raw_text")
                return orjson.loads(raw) if raw else dict(item["raw"])
    raise LookupError(channel)


def test_sequence_jump_flags_the_connections_books_until_a_snapshot() -> None:
    snapshot = _recorded("level2 (l2_data snapshot)")
    update = _recorded("level2 (l2_data update)")
    later = {**update, "sequence_num": 7}  # numbers 2..6 never arrived

    async def main() -> tuple[Connector, list[FeedItem]]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        cfg = ConnectorConfig("coinbase", "ws://127.0.0.1:9/x", ("BTC/USD",), channel="level2")
        c = Connector(cfg, queue, clock=lambda: 1_775_572_201_500_000_000)  # received as recorded (not stale)
        slot = _Slot(["BTC/USD"])
        link = _Link(object(), forwarding=True)  # type: ignore[arg-type]  # no socket needed by the handler
        slot.link = link
        for msg in (snapshot, update, later):
            await c._on_message(slot, link, orjson.dumps(msg))
        await asyncio.sleep(0)  # rows are handed over once per event-loop turn
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return c, items

    c, items = asyncio.run(main())
    quotes = [row for table, rows in items if table == "quotes" for row in rows]
    assert len(quotes) == 3
    assert quotes[0][9] == 0
    assert (quotes[1][4], quotes[1][5], quotes[1][6], quotes[1][7]) == (68900.0, 2.0, 68901.5, 1.2)  # fixture
    assert quotes[1][9] == 0
    assert quotes[2][9] & QuoteFlag.RESYNCING, "after the jump the book is not trusted"
    assert c.stats.sequence_gaps == 1
    assert c.books.needs_resync() == [("coinbase", "BTC/USD")]
    assert c.books.counters.gaps == 1
