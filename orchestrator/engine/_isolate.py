"""Reporting observers that fail are switched off, never the run.

Progress, the trace, the OTel export, the event log and ``failed.yaml`` only *report* what
the run did; a bug or a full disk in one of them must not cost the run its remaining
chains. Each is wrapped in ``Isolated``: its first exception switches it off for the rest of
the run, logs one warning and is recorded in ``Faults`` (run.json ``disabled_observers``,
and the summary). Only saving finished work — the store and the article files — may stop a
run, and those observers are never wrapped.

An observer passed in by a program is wrapped too, except that raising ``OutputError`` or
``StoreError`` still stops the run: that is how an observer that saves results elsewhere
says it can no longer save them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from .._errors import OutputError, StoreError
from ._events import Event, Observer

log = structlog.get_logger()

SAVING_ERRORS: tuple[type[BaseException], ...] = (OutputError, StoreError)


@dataclass(frozen=True, slots=True)
class Fault:
    """One reporting observer switched off: which, on what error, at which event."""

    observer: str
    error: str
    event: str


@dataclass(slots=True)
class Faults:
    """The reporting faults of one run, in the order they happened."""

    items: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        self.items.append(fault)


class Isolated:
    """``observer`` behind a guard: its first failure switches it off (see module doc)."""

    def __init__(
        self,
        observer: Observer,
        name: str,
        faults: Faults,
        *,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.observer = observer
        self.name = name
        self.faults = faults
        self.fatal = fatal
        self.disabled = False

    async def on_event(self, event: Event) -> None:
        if self.disabled:
            return
        try:
            await self.observer.on_event(event)
        except self.fatal:
            raise
        except Exception as exc:
            self.disabled = True
            error = f"{type(exc).__name__}: {exc}"
            self.faults.add(Fault(self.name, error[:500], type(event).__name__))
            log.warning(
                "observer.disabled",
                observer=self.name,
                error=error[:500],
                note="switched off for the rest of the run; the run goes on",
            )


def isolate(
    observers: list[tuple[str, Observer]],
    faults: Faults,
    *,
    fatal: tuple[type[BaseException], ...] = (),
) -> list[Observer]:
    """Wrap each named observer in ``Isolated``."""
    return [Isolated(observer, name, faults, fatal=fatal) for name, observer in observers]


def observer_name(observer: Observer) -> str:
    """A readable name for an observer passed in by a program."""
    return type(observer).__name__
