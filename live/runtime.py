"""Process settings for a low-latency feed: an event loop whose timers keep microseconds, and a frozen start-up heap.

Two things outside the feed's own code put milliseconds between a venue's message and the batch that carries it:

* **Timer resolution.**  On Linux asyncio waits in ``epoll_wait``, whose timeout is whole milliseconds; Python
  rounds a wait up so as never to wake early.  A micro-batch due in 0.3 ms is therefore flushed up to a
  millisecond late whenever no socket wakes the loop first.  :func:`new_event_loop` returns a selector loop whose
  fractional waits are done by ``select()`` on the epoll descriptor itself (microsecond timeout, same readiness),
  so a due batch is flushed on time.  Measured on the 2-core box at 200k msg/s (``benchmarks/bench_live_feed.py``):
  flush lateness p99 ~1.0 -> ~0.3 ms.
* **Full garbage collections.**  :func:`freeze_startup_heap` (see there).

:func:`run` is :func:`asyncio.run` on that loop; the live CLI commands, the simulator and the feed benchmark use it.
"""

from __future__ import annotations

import asyncio
import gc
import math
import select
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["FineTimerSelector", "freeze_startup_heap", "new_event_loop", "run"]

_T = TypeVar("_T")
_FD_SETSIZE = 1024  # select() cannot watch a descriptor at or above this


if hasattr(selectors, "EpollSelector"):

    class FineTimerSelector(selectors.EpollSelector):
        """An epoll selector that waits fractions of a millisecond exactly.

        A wait that is not a whole number of milliseconds first blocks in ``select()`` on the epoll descriptor
        (readable as soon as any registered descriptor is ready; the timeout has microsecond resolution), then
        collects the events with a non-blocking ``epoll_wait``.  Whole-millisecond and unbounded waits, and an
        epoll descriptor beyond ``select()``'s range, go straight to ``epoll_wait`` as before.
        """

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and timeout > 0:
                millis = timeout * 1e3
                epfd = self.fileno()
                if millis != math.floor(millis) and epfd < _FD_SETSIZE:
                    select.select([epfd], [], [], timeout)
                    timeout = 0
            return super().select(timeout)

else:  # pragma: no cover - not Linux: the platform's default selector
    FineTimerSelector = selectors.DefaultSelector  # type: ignore[misc,assignment]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop on :class:`FineTimerSelector` (the platform default loop where epoll is missing)."""
    if not hasattr(selectors, "EpollSelector"):  # pragma: no cover - not Linux
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(FineTimerSelector())


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """:func:`asyncio.run` ``main`` on :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


_heap = {"frozen": False}


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive (imports, compiled code, tables: ~150k objects) out of the
    garbage collector's reach (:func:`gc.freeze`); later calls do nothing.

    CPython's full collections walk every tracked object: with NumPy, Polars and numba loaded one takes 30-60 ms,
    a pause every feed sees as 30-60 ms of latency whenever one runs.  Frozen objects are never scanned again
    (they are still freed by reference counting; only a cycle among them is kept), so a full collection then only
    walks what the running feed made.  :meth:`live.connector.Connector.warm` calls it, after the imports and
    before the first message.
    """
    if _heap["frozen"]:
        return
    _heap["frozen"] = True
    gc.collect()
    gc.freeze()
