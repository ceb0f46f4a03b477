"""A virtual-time event loop: ``loop.time()`` is virtual, and when the loop would wait for a
timer, time jumps there instead of sleeping. Limiters (ours and aiolimiter, which both read
``loop.time()``) are driven by it with no real sleeps — the idea of aiolimiter's own
``MockLoopTime`` and of the looptime plugin, in a few lines."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__(selectors.DefaultSelector())
        self._virtual_now = 0.0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> list[Any]:
            events = real_select(0)
            # A little time passes on every turn, as on a real loop; without it a timer
            # computed a hair early (float error) would re-arm at the same instant forever.
            self._virtual_now += 1e-6
            if not events and timeout is not None and timeout > 0:
                self._virtual_now += timeout
            return events

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual_now


def run_virtual(coro: Coroutine[Any, Any, T], *, limit: float = 3600) -> T:
    """Run ``coro`` on a fresh virtual-time loop (failing if it takes more than ``limit``
    virtual seconds)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, limit))
    finally:
        loop.close()
