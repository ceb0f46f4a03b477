"""``trace.json``: spans in the Chrome Trace Event format, which Perfetto and
chrome://tracing open, and which ``orchestrate trace`` and the report read back.

Layout, so that the picture tells a fan from a staircase at a glance:

- track 0, ``run``: the run span and instants such as a retry pass starting;
- tracks 1..N, ``lane k``: chains laid out greedily on the lowest free lane, with their
  stages, waits and calls nested inside — a fan fills many lanes, a staircase one;
- counters ``chains queued for a slot`` and ``calls in flight``: time spent queued is drawn
  there rather than as bars, so ten chains queued by a sequential run are not ten lanes.

Every complete event (``"ph": "X"``) carries its span's attributes in ``args`` plus the
span's own fields under ``orchestrate.span.*``, which is what makes the file loadable again.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from .._errors import ConfigError
from .._files import atomic_write_text
from ._spans import QUEUED, WAIT_KIND, Marker, Span, SpanKind

FORMAT = "orchestrate-trace/1"
_KINDS = frozenset(get_args(SpanKind))
_PID = 1
_ID, _PARENT, _KIND, _STATUS, _ERROR, _TOPIC = (
    f"orchestrate.span.{k}" for k in ("id", "parent", "kind", "status", "error", "topic")
)


@dataclass(frozen=True, slots=True)
class Trace:
    """A run's spans, read back from ``trace.json``. ``epoch`` is the UNIX time of t=0."""

    run_id: str
    epoch: float
    spans: tuple[Span, ...]
    markers: tuple[Marker, ...]


def assign_lanes(spans: Iterable[Span]) -> dict[int, int]:
    """Chain span id → lane (1-based): each chain on the lowest lane free when it starts."""
    chains = sorted((s for s in spans if s.kind == "chain"), key=lambda s: (s.start, s.id))
    busy: list[tuple[float, int]] = []  # (end, lane)
    free: list[int] = []
    lanes: dict[int, int] = {}
    opened = 0
    for chain in chains:
        while busy and busy[0][0] <= chain.start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            opened += 1
            lane = opened
        lanes[chain.id] = lane
        end = chain.end if chain.end is not None else math.inf
        heapq.heappush(busy, (end, lane))
    return lanes


def chain_of(spans: Sequence[Span]) -> dict[int, int]:
    """Span id → the id of the chain it belongs to (spans outside any chain are absent)."""
    owner: dict[int, int] = {}
    for span in sorted(spans, key=lambda s: s.id):  # a parent is opened before its children
        if span.kind == "chain":
            owner[span.id] = span.id
        elif span.parent in owner:
            owner[span.id] = owner[span.parent]
    return owner


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def _steps(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, int]]:
    """How many intervals are open over time, as (time, count) at every change."""
    changes: list[tuple[float, int]] = []
    for start, end in intervals:
        if end > start:
            changes += [(start, 1), (end, -1)]
    changes.sort(key=lambda c: (c[0], c[1]))  # ends before starts at the same instant
    steps: list[tuple[float, int]] = []
    count = 0
    for at, delta in changes:
        count += delta
        if steps and steps[-1][0] == at:
            steps[-1] = (at, count)
        else:
            steps.append((at, count))
    return steps


def is_slot_wait(span: Span) -> bool:
    return span.kind == "wait" and span.attributes.get(WAIT_KIND) == "slot"


def queue_intervals(spans: Iterable[Span]) -> list[tuple[float, float]]:
    """When each chain waited for a slot: from ``start - queued_s`` to ``start``."""
    return [
        (max(0.0, s.start - float(s.attributes.get(QUEUED, 0.0))), s.start)
        for s in spans
        if s.kind == "chain"
    ]


def to_chrome_trace(
    spans: Sequence[Span], markers: Sequence[Marker], *, run_id: str, epoch: float
) -> dict[str, Any]:
    lanes = assign_lanes(spans)
    owner = chain_of(spans)
    events: list[dict[str, Any]] = [
        _meta("process_name", 0, name=f"orchestrate {run_id}"),
        _meta("thread_name", 0, name="run"),
        _meta("thread_sort_index", 0, sort_index=0),
    ]
    for lane in sorted(set(lanes.values())):
        events.append(_meta("thread_name", lane, name=f"lane {lane}"))
        events.append(_meta("thread_sort_index", lane, sort_index=lane))
    for span in spans:
        if span.end is None or is_slot_wait(span):  # the queue is the counter below
            continue
        chain = owner.get(span.id)
        args = dict(span.attributes)
        args.update({_ID: span.id, _PARENT: span.parent, _KIND: span.kind, _STATUS: span.status})
        if span.error is not None:
            args[_ERROR] = span.error
        if span.topic is not None:
            args[_TOPIC] = span.topic
        ts = _us(span.start)
        events.append(
            {
                "name": span.name,
                "cat": span.kind,
                "ph": "X",
                "ts": ts,
                "dur": max(0.0, round(_us(span.end) - ts, 3)),
                "pid": _PID,
                "tid": lanes.get(chain, 0) if chain is not None else 0,
                "args": args,
            }
        )
    calls = [(s.start, s.end or s.start) for s in spans if s.kind == "call"]
    for name, key, intervals in (
        ("chains queued for a slot", "queued", queue_intervals(spans)),
        ("calls in flight", "calls", calls),
    ):
        for at, count in _steps(intervals):
            events.append(
                {"name": name, "ph": "C", "ts": _us(at), "pid": _PID, "args": {key: count}}
            )
    for marker in markers:
        events.append(
            {"name": marker.name, "ph": "i", "s": "g", "ts": _us(marker.at), "pid": _PID, "tid": 0}
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"format": FORMAT, "run_id": run_id, "epoch": epoch},
    }


def _meta(kind: str, tid: int, **args: Any) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": _PID, "tid": tid, "args": args}


def write_trace(
    path: Path, spans: Sequence[Span], markers: Sequence[Marker], *, run_id: str, epoch: float
) -> None:
    """Write ``trace.json`` atomically (OutputError when it cannot be written)."""
    trace = to_chrome_trace(spans, markers, run_id=run_id, epoch=epoch)
    atomic_write_text(path, json.dumps(trace, ensure_ascii=False, separators=(",", ":")) + "\n")


def load_trace(path: Path) -> Trace:
    """Read a ``trace.json`` written by orchestrate; ConfigError naming the file if it is
    missing or not one of ours."""
    hint = "give a run folder, such as outputs/latest, written by `orchestrate run`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no trace here", file=path, hint=hint) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the trace: {exc}", file=path, hint=hint) from None
    other = data.get("otherData") if isinstance(data, dict) else None
    if not isinstance(other, dict) or other.get("format") != FORMAT:
        raise ConfigError(f"not a trace written by orchestrate ({FORMAT})", file=path, hint=hint)
    try:
        spans, markers = _read_events(data["traceEvents"])
        spans.sort(key=lambda s: s.id)
        run_id, epoch = str(other.get("run_id", "")), float(other.get("epoch", 0.0))
    except KeyError as exc:
        raise ConfigError(f"a trace event lacks {exc}", file=path, hint=hint) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"a trace event is damaged ({exc})", file=path, hint=hint) from None
    return Trace(run_id, epoch, tuple(spans), tuple(markers))


def _read_events(events: list[dict[str, Any]]) -> tuple[list[Span], list[Marker]]:
    spans: list[Span] = []
    markers: list[Marker] = []
    for event in events:
        if event.get("ph") == "i":
            markers.append(Marker(float(event["ts"]) / 1e6, str(event["name"])))
        if event.get("ph") != "X":
            continue
        args = dict(event.get("args") or {})
        start = float(event["ts"]) / 1e6
        parent = args.pop(_PARENT, None)
        span = Span(
            id=int(args.pop(_ID)),
            parent=None if parent is None else int(parent),
            kind=args.pop(_KIND),
            name=str(event["name"]),
            start=start,
            end=start + float(event["dur"]) / 1e6,
            status=args.pop(_STATUS),
            error=args.pop(_ERROR, None),
            topic=args.pop(_TOPIC, None),
            attributes=args,
        )
        if span.kind not in _KINDS:
            raise ValueError(f"unknown span kind {span.kind!r}")
        spans.append(span)
    return spans, markers
