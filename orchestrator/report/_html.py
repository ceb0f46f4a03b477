"""``report.html``: one self-contained page per run — the verdict, the totals, the waterfall
as inline SVG, the per-topic table and the failures.

No network at all: inline CSS and SVG, no fonts or images, so the file opens anywhere and
can be mailed around. Jinja2 autoescapes every topic, error and model string. Hover details
are SVG ``<title>`` children, so the page needs no script; the one small script only
measures what was drawn (``data-*`` on ``<body>``), which the browser test reads.

The waterfall is drawn from the same ``Waterfall`` as ``orchestrate trace``: rows in the
order of ``picture.bars``, colours from ``picture.colour``. Past ``MAX_BARS`` calls one
row per call is too tall to read and slow to draw, so the page shows calls in flight per
stage over time (``picture.in_flight``) and lists the slowest calls instead.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import jinja2

from ..trace._waterfall import Bar, Waterfall
from ._run_json import RunManifest, TopicRecord

MAX_BARS = 2000
SLOWEST = 20
WIDTH, LEFT, RIGHT = 1200.0, 280.0, 16.0  # SVG user units; LEFT is the label gutter
COLUMNS = 300  # time slices of the in-flight and queued tracks
QUEUE_TOP, QUEUE_H = 28.0, 36.0  # the "queued for a slot" track, above the calls
ROWS_TOP = QUEUE_TOP + QUEUE_H + 14.0
FLIGHT_H, FLIGHT_GAP = 56.0, 16.0  # one aggregated row per stage
_LABEL_CHARS = 44

Scale = Callable[[float], float]  # seconds → x in SVG units


@functools.cache
def _template() -> jinja2.Template:
    text = files("orchestrator.report").joinpath("_report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    return env.from_string(text)


def render_report(picture: Waterfall, manifest: RunManifest) -> str:
    """The HTML of ``report.html`` for a run: its picture (from its spans) and manifest."""
    topics = {t.index: t.topic for t in manifest.topics}
    aggregated = len(picture.bars) > MAX_BARS
    draw = _aggregated(picture) if aggregated else _waterfall(picture, topics)
    return _template().render(
        m=manifest,
        p=picture.parallelism,
        wall=_s(manifest.wall_time_s if manifest.wall_time_s is not None else picture.wall),
        calls=len(picture.bars),
        max_bars=MAX_BARS,
        columns=COLUMNS,
        aggregated=aggregated,
        draw=draw,
        legend=[(stage, picture.colour(stage)) for stage in picture.all_stages()],
        slowest=[_slow(b, topics) for b in picture.slowest(SLOWEST)] if aggregated else [],
        rows=[_topic_row(t, manifest.stages) for t in manifest.topics],
        failures=[t for t in manifest.topics if t.status == "failed"],
        s=_s,
        clip=_clip,
        usd=_usd,
    )


def _waterfall(picture: Waterfall, topics: dict[int, str]) -> dict[str, Any]:
    """One row per call, in the order of ``picture.bars`` (by start)."""
    n = len(picture.bars)
    row = max(3.0, min(16.0, 1200.0 / max(n, 1)))
    height = ROWS_TOP + n * row + 30.0
    x, span = _scale(picture)
    patterns: dict[str, str] = {}
    bars = []
    for i, bar in enumerate(picture.bars):
        colour = picture.colour(bar.stage)
        failed = bar.status != "ok"
        if failed:
            colour = patterns.setdefault(colour, f"fail{len(patterns)}")
        width = max(0.75, x(bar.end) - x(bar.start))
        left = min(x(bar.start), WIDTH - RIGHT - width)
        label = f"{bar.slug} · {bar.stage}" + (f" #{bar.attempt}" if bar.attempt > 1 else "")
        bars.append(
            {
                "x": f"{left:.2f}",
                "y": f"{ROWS_TOP + i * row + row * 0.1:.2f}",
                "w": f"{width:.2f}",
                "h": f"{row * 0.8:.2f}",
                "fill": f"url(#{colour})" if failed else colour,
                "failed": failed,
                "label": _clip(label) if row >= 10 else None,
                "title": _bar_title(bar, topics),
            }
        )
    return {
        **_frame(picture, x, span, height, bottom=ROWS_TOP + n * row),
        "row": row,
        "bars": bars,
        "patterns": [(pid, colour) for colour, pid in patterns.items()],
    }


def _aggregated(picture: Waterfall) -> dict[str, Any]:
    """Calls in flight over time, as ``orchestrate trace`` summarises them: one row per stage
    (the chain's, then any other a call names) on one scale so stages compare, then all
    calls on their own."""
    x, span = _scale(picture)
    counts = Counter(b.stage for b in picture.bars)
    series = [
        (s, picture.colour(s), picture.in_flight(COLUMNS, s), counts[s])
        for s in picture.all_stages()
    ]
    shared = max((max(v, default=0.0) for _, _, v, _ in series), default=0.0)
    everything = picture.in_flight(COLUMNS)
    series.append(("all calls", "#555555", everything, len(picture.bars)))
    rows = []
    for i, (name, colour, values, count) in enumerate(series):
        base = ROWS_TOP + i * (FLIGHT_H + FLIGHT_GAP) + FLIGHT_H
        peak = max(values, default=0.0)
        top = (peak if name == "all calls" else shared) or 1.0
        rows.append(
            {
                "name": name,
                "peak": f"{peak:.1f}",
                "colour": colour,
                "base": f"{base:.2f}",
                "d": _area(values, base, FLIGHT_H / top, x, span),
                "title": f"{name}: {count:,} calls; at most {peak:.1f} in flight on average "
                f"over a {span / COLUMNS:.3g} s slice",
            }
        )
    bottom = ROWS_TOP + len(series) * (FLIGHT_H + FLIGHT_GAP)
    return {**_frame(picture, x, span, bottom + 30.0, bottom=bottom), "rows": rows}


def _frame(
    picture: Waterfall, x: Scale, span: float, height: float, *, bottom: float
) -> dict[str, Any]:
    """What both views share: size, time axis, the queued track and retry-pass markers."""
    queued = picture.queued_in(COLUMNS)
    peak = max(queued, default=0.0)
    base = QUEUE_TOP + QUEUE_H
    step = _step(span)
    return {
        "width": WIDTH,
        "height": f"{height:.2f}",
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "bottom": f"{bottom:.2f}",
        "ticks": [
            (f"{x(i * step):.2f}", f"{round(i * step, 6):g} s")
            for i in range(int(span / step + 1e-9) + 1)
        ],
        "queue_base": base,
        "queue_peak": f"{peak:.1f}",
        "queue_d": _area(queued, base, QUEUE_H / peak, x, span) if peak > 0 else "",
        "queue_title": f"chains queued for a slot: at most {peak:.1f} at once on average, "
        f"{sum(e - s for s, e in picture.queued):.2f} s queued in all"
        if peak > 0
        else "no chain waited for a slot",
        "markers": [(f"{x(m.at):.2f}", _clip(m.name, 24), m.name) for m in picture.markers],
    }


def _scale(picture: Waterfall) -> tuple[Scale, float]:
    """Seconds → x, over the run's wall time (or the last call, if the run span is missing)."""
    span = picture.wall if picture.wall > 0 else max((b.end for b in picture.bars), default=0)
    span = span if span > 0 else 1.0
    per = (WIDTH - RIGHT - LEFT) / span

    def x(seconds: float) -> float:
        return LEFT + min(max(seconds, 0.0), span) * per

    return x, span


def _area(values: list[float], base: float, per: float, x: Scale, span: float) -> str:
    """An SVG path that steps through ``values`` (one per equal time slice) above ``base``."""
    width = span / len(values)
    points = [f"M{x(0):.2f},{base:.2f}"]
    for i, v in enumerate(values):
        y = f"{base - v * per:.2f}"
        points.append(f"L{x(i * width):.2f},{y}L{x((i + 1) * width):.2f},{y}")
    return "".join(points) + f"L{x(span):.2f},{base:.2f}Z"


def _step(span: float, ticks: int = 8) -> float:
    """A round tick spacing (1, 2 or 5 × 10^k seconds) giving about ``ticks`` ticks."""
    raw = span / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)


def _bar_title(bar: Bar, topics: dict[int, str]) -> str:
    tokens = (
        f"{bar.input_tokens:,} in / {bar.output_tokens:,} out"
        if bar.input_tokens is not None and bar.output_tokens is not None
        else "—"
    )
    lines = [
        _clip(topics.get(bar.topic, bar.slug), 300),
        f"{bar.stage}, attempt {bar.attempt}, {bar.model or 'model unknown'}",
        f"start {bar.start:.2f} s, latency {bar.latency:.2f} s, waited {bar.waited:.2f} s before",
        f"tokens {tokens}, cost {_usd(bar.cost)}",
    ]
    if bar.status != "ok":
        lines.append(f"failed: {_clip(bar.error or 'error', 400)}")
    return "\n".join(lines)


def _slow(bar: Bar, topics: dict[int, str]) -> dict[str, Any]:
    return {"topic": topics.get(bar.topic, bar.slug), "bar": bar, "title": _bar_title(bar, topics)}


def _topic_row(record: TopicRecord, stages: list[str]) -> dict[str, Any]:
    by_name = {s.name: s for s in record.stages}
    cells = []
    for name in stages:
        st = by_name.get(name)
        if st is None:
            cells.append(("—", "", ""))
        elif st.cached:
            cells.append(("reused", "reused", "served from the store, no call"))
        else:
            text = _s(st.latency_s) + (f" ×{st.attempts}" if st.attempts > 1 else "")
            cells.append((text, "bad" if st.status == "failed" else "", st.error or ""))
    tokens = [(s.prompt_tokens or 0) + (s.completion_tokens or 0) for s in record.stages]
    reused = sum(1 for s in record.stages if s.cached)
    return {"t": record, "tokens": sum(tokens), "cells": cells, "reused": reused}


def _clip(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:,.0f} s"


def _usd(cost: float | None) -> str:
    return "—" if cost is None else f"${cost:,.4f}" if cost < 100 else f"${cost:,.2f}"
