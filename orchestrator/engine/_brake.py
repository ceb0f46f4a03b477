"""How a run slows to a stop: three ways, from gentlest to hardest.

- **stop** (a budget reached, an observer failed): no new chain starts; chains in flight run
  to their end.
- **drain** (Ctrl-C): no new chain, stage, call or retry starts; calls already sent come back
  and are saved. Whatever would start instead *parks* — waits, doing nothing, until whoever
  drained cancels the run — so a parked stage is simply unfinished, and a resume does it.
- **halt** (out of quota): no new call is sent; calls waiting for a rate limiter give up at
  once with ``CallNotSent``, so their topics end as ``skipped``.

It also counts the calls in flight — from sending until the stage is saved — so a drain can
wait for exactly those.
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

from .._errors import CallNotSent
from ..provider._limits import ModelLimiter


class Brake:
    """The stop/drain/halt state of one engine, and the calls it has in flight."""

    def __init__(self) -> None:
        self.stopping = False
        self.draining = False
        self.stop_reason: str | None = None
        self.halt_reason: str | None = None
        self.calls_in_flight = 0
        self._wake: asyncio.Event | None = None  # made on first use, inside the loop
        self._idle: asyncio.Event | None = None

    def stop(self, reason: str | None = None) -> None:
        self.stopping = True
        self.stop_reason = self.stop_reason or reason

    def halt(self, reason: str) -> None:
        self.halt_reason = self.halt_reason or reason
        self.stop(reason)
        if self._wake is not None:
            self._wake.set()

    def drain(self) -> None:
        self.draining = True
        self.stop()
        if self._wake is not None:
            self._wake.set()  # calls waiting for a limiter give up their wait, and park

    async def check(self) -> None:
        """Before starting a stage: park if draining."""
        if self.draining:
            await _park()

    def call_started(self) -> None:
        self.calls_in_flight += 1

    def call_done(self) -> None:
        self.calls_in_flight -= 1
        if self.calls_in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def idle(self) -> None:
        """Return once no call is in flight."""
        if self.calls_in_flight == 0:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        await self._idle.wait()

    async def acquire(self, limiter: ModelLimiter, tokens: int) -> None:
        """Wait for the limiter — unless the run is halted meanwhile (then CallNotSent) or
        drained (then park: the call was never sent)."""
        await self.check()
        if self.halt_reason is None and limiter.ready(tokens):
            await limiter.acquire(tokens)  # goes straight through: no tasks, no loop turn
        elif self.halt_reason is None:
            if self._wake is None:
                self._wake = asyncio.Event()
            waiting = asyncio.ensure_future(limiter.acquire(tokens))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((waiting, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                if not waiting.done():
                    waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                waiting.result()  # re-raises a failure of the limiter itself
            else:
                await self.check()  # woken by a drain: nothing was taken from the limiter
        if self.draining:  # drained while this call took its turn: give the turn back
            limiter.refund(tokens)
            await _park()
        if self.halt_reason is not None:
            raise CallNotSent(f"not sent: {self.halt_reason}")


async def _park() -> NoReturn:
    """Wait, doing nothing, until the draining run is cancelled."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover
