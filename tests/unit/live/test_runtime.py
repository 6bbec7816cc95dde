"""live.runtime: the microsecond-timer event loop and the frozen start-up heap; live.batcher.next_item."""

from __future__ import annotations

import asyncio
import gc
import selectors
import socket
import time

import pytest

from live import runtime
from live.batcher import FeedItem, next_item

pytestmark = pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll (Linux) only")


def test_fractional_wait_never_wakes_early_and_sees_readiness() -> None:
    sel = runtime.FineTimerSelector()
    a, b = socket.socketpair()
    try:
        sel.register(a, selectors.EVENT_READ, "a")
        t0 = time.monotonic()
        assert sel.select(0.0004) == []  # nothing ready: waits out the timeout, not less
        assert time.monotonic() - t0 >= 0.0004
        b.send(b"x")
        events = sel.select(0.0004)
        assert [(key.data, mask) for key, mask in events] == [("a", selectors.EVENT_READ)]
        assert [key.data for key, _ in sel.select(0.0)] == ["a"]  # a zero wait polls
    finally:
        sel.close()
        a.close()
        b.close()


def test_loop_timers_fire_in_order_and_not_early() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fired: list[tuple[str, float]] = []
        done = loop.create_future()
        for name, delay in (("late", 0.0021), ("early", 0.0003), ("mid", 0.0012)):
            loop.call_later(delay, lambda n=name, d=delay: fired.append((n, loop.time() - t0 - d)))
        loop.call_later(0.003, done.set_result, None)
        await done
        return fired

    fired = runtime.run(main())
    assert [name for name, _ in fired] == ["early", "mid", "late"]
    assert all(slack >= -1e-6 for _, slack in fired)  # asyncio may run a timer one clock resolution (1 ns) early


def test_run_returns_the_result_on_the_fine_loop() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()._selector).__name__  # type: ignore[attr-defined]

    assert runtime.run(main()) == "FineTimerSelector"


def test_freeze_startup_heap_once() -> None:
    runtime.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    runtime.freeze_startup_heap()  # later calls do nothing
    assert gc.get_freeze_count() == frozen


def test_next_item_returns_waits_and_times_out_without_losing_an_item() -> None:
    async def main() -> list[object]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        out: list[object] = []
        queue.put_nowait(("quotes", [(1,)]))
        out.append(await next_item(queue, 0.01))  # available: at once
        out.append(await next_item(queue, 0.002))  # nothing: None after the timeout
        asyncio.get_running_loop().call_later(0.001, queue.put_nowait, ("quotes", [(2,)]))
        out.append(await next_item(queue, 1.0))  # arrives while waiting
        queue.put_nowait(("quotes", [(3,)]))
        out.append(queue.qsize())
        return out

    assert runtime.run(main()) == [("quotes", [(1,)]), None, ("quotes", [(2,)]), 1]
