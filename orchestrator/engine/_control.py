"""Stopping a run by hand: the first Ctrl-C drains it, the second cancels it at once.

Draining starts nothing new — no chain, stage, call or retry — and gives the calls already
sent ``grace`` seconds to come back and be saved. Then (or at a second interrupt) the run is
cancelled; its manifest, outputs and store record it as ``interrupted``, and it can be
resumed. The CLI calls ``interrupt()`` from its SIGINT/SIGTERM handlers; a notebook or
another program can call it too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

DEFAULT_GRACE_S = 10.0


class Drainable(Protocol):
    def drain(self) -> None: ...

    async def idle(self) -> None: ...


class RunControl:
    """Interrupts one run at a time; ``interrupts`` counts how often it was asked."""

    def __init__(self, *, grace: float = DEFAULT_GRACE_S) -> None:
        self.grace = grace
        self.interrupts = 0
        self.watched = False  # True once a run was watched: it has begun
        self._engine: Drainable | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelled = False
        self._timer: asyncio.Task[None] | None = None

    @property
    def watching(self) -> bool:
        """True while ``watch`` guards a run."""
        return self._task is not None

    @property
    def interrupted(self) -> bool:
        return self.interrupts > 0

    def interrupt(self) -> None:
        """First call: drain, then cancel after ``grace``; any later call: cancel now.
        With no run watched it does nothing (the CLI cancels the program itself then)."""
        if self._task is None:
            return
        self.interrupts += 1
        if self._engine is None or self.interrupts > 1:
            self._cancel()
            return
        self._engine.drain()
        self._timer = asyncio.get_running_loop().create_task(self._after_grace(self._engine))

    async def _after_grace(self, engine: Drainable) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(engine.idle(), self.grace)
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self._cancelled:
            self._cancelled = True
            self._task.cancel()

    @asynccontextmanager
    async def watch(self, engine: Drainable | None = None) -> AsyncIterator[None]:
        """Guard the current task: an interrupt inside drains ``engine`` (if given) and then
        cancels the task; the cancellation ends here, so the caller goes on to report."""
        task = asyncio.current_task()
        assert task is not None
        self._engine, self._task, self._cancelled = engine, task, False
        self.watched = True
        self.interrupts, self._timer = 0, None  # a control may watch one run after another
        try:
            yield
        except asyncio.CancelledError:
            if not self._cancelled:
                raise  # not ours: someone else cancelled the run
            task.uncancel()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._engine = self._task = self._timer = None
