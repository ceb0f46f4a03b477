"""``events.jsonl``: every event of a run as one structlog JSON line, written as it happens.

Each line has ``event`` (the event's name in snake case), ``timestamp`` (UTC), ``t`` (seconds
from the run's start) and the event's own fields: topics as index and slug, errors as text,
responses as token counts. Prompts and outputs appear only with ``content=True``. A resumed
run appends, so the file tells every session's story in order.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any

import structlog

from .._errors import OutputError
from ..config._topics import Topic
from ..engine._events import Event, RunFinished, RunStarted
from ..provider._client import ChatRequest, ChatResponse

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
_TEXT_FIELDS = frozenset({"output", "outputs", "request"})  # written only with content=True


class EventLog:
    """An Observer writing ``path`` (opened at RunStarted, closed at RunFinished)."""

    def __init__(self, path: Path, *, content: bool = False) -> None:
        self.path = path
        self.content = content
        self._file: IO[str] | None = None
        self._log: Any = None
        self._t0 = 0.0

    async def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._open(event.at)
        if self._log is None:
            return
        name = _SNAKE.sub("_", type(event).__name__).lower()
        try:
            self._log.info(name, **self._fields(event))
        except OSError as exc:
            raise OutputError(self.path, exc.strerror or str(exc)) from exc
        if isinstance(event, RunFinished):
            self.close()

    def _open(self, t0: float) -> None:
        self._t0 = t0
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(self.path, exc.strerror or str(exc)) from exc
        # Its own logger, not the global configuration: -v/-q filter the console, not this.
        self._log = structlog.wrap_logger(
            _BufferedWriter(self._file),
            wrapper_class=structlog.BoundLogger,
            processors=[
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _event_first,
                structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
            ],
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._log = None

    def _fields(self, event: Event) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name in _field_names(event.__class__):
            value = getattr(event, name)
            if name in ("at", "started"):
                fields["t" if name == "at" else "started"] = round(value - self._t0, 6)
            elif name in _TEXT_FIELDS and not self.content:
                if name == "output":
                    fields["output_chars"] = len(value)
            elif name == "record":
                continue  # a resumed stage's earlier record: already in run.json
            else:
                fields[name] = _plain(value)
        return fields


def _event_first(_: Any, __: str, fields: MutableMapping[str, Any]) -> dict[str, Any]:
    """``event`` and ``timestamp`` lead each line, for a reader scanning the file."""
    return {"event": fields.pop("event"), "timestamp": fields.pop("timestamp"), **fields}


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(kind: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


class _BufferedWriter:
    """A structlog logger writing lines to ``file`` and flushing at most every
    ``interval`` seconds (and on close): structlog's WriteLogger flushes every line, a
    system call per event on the run's hot path."""

    def __init__(self, file: IO[str], *, interval: float = 1.0) -> None:
        self._file = file
        self._interval = interval
        self._next_flush = time.monotonic() + interval

    def msg(self, message: str) -> None:
        self._file.write(message + "\n")
        now = time.monotonic()
        if now >= self._next_flush:
            self._file.flush()
            self._next_flush = now + self._interval

    info = msg


def _plain(value: Any) -> Any:
    """JSON-ready data for an event field."""
    match value:
        case Topic():
            return {"index": value.index, "slug": value.slug}
        case ChatResponse():
            return {
                "model": value.model,
                "finish_reason": value.finish_reason,
                "prompt_tokens": value.prompt_tokens,
                "completion_tokens": value.completion_tokens,
                "cached_tokens": value.cached_tokens,
            }
        case ChatRequest():
            return dataclasses.asdict(value)
        case BaseException():
            return f"{type(value).__name__}: {value}"
        case tuple() | list():
            return [_plain(v) for v in value]
        case dict():
            return {str(k): _plain(v) for k, v in value.items()}
        case _:
            return value
