"""The waterfall in the terminal: one row per call on a shared time axis, or — past a few
dozen calls — one row per stage showing how many calls were in flight over time.

It draws ``_waterfall.Waterfall``, the same model the HTML report draws, so both show one
picture. Every line is built to the console's width (never wrapped by the terminal), and text
from the run (run id, slugs) is data, never rich markup. Colour is left to the console: a
``Console`` that has no colour (``NO_COLOR``, not a terminal) prints the same characters
without styles.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor, log10

from rich.console import Console
from rich.style import Style
from rich.text import Text

from ._waterfall import Bar, Waterfall

_EIGHTHS = " ▏▎▍▌▋▊▉█"  # left-aligned blocks, 0/8 to 8/8 of a cell: the sub-cell end of a bar
_SPARK = " ▁▂▃▄▅▆▇█"  # density of calls in flight, scaled to a row's peak
_WAIT = "░"  # limiter and backoff waits before a call
_FAILED = "✗"
_MARKER = "↻"  # a retry pass starting
_STATS = 21  # "12.3s 1.2k→400 0.8s": latency 5, tokens 9, wait 5, two spaces
_SHOWN_WAIT = 0.05  # shorter waits round to 0.0s: neither drawn nor printed
_TICK_GAP = 8  # at least this many columns between tick labels

_RED = Style(color="red")
_DIM = Style(dim=True)
_VERDICT = {"fan": Style(color="green", bold=True), "staircase": Style(color="red", bold=True)}
_BETWEEN = Style(color="yellow", bold=True)

Cell = tuple[str, Style | None]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each column of a row goes: mark (1), label, bar, stats, one space between."""

    label: int
    stage: int  # the stage's part of the label, so stage names line up
    bar: int
    stats: int  # 0: no room for stats
    scale: float  # bar cells per second

    @classmethod
    def fit(cls, width: int, picture: Waterfall) -> _Layout:
        stats = _STATS if width >= 60 else 6 if width >= 40 else 0
        label = max(8, min(36, width * 9 // 40 + 1))  # 19 at 80 columns, 28 at 120
        bar = width - 1 - label - 1 - (stats + 1 if stats else 0)
        if bar < 10:  # very narrow: give the label's room to the bar
            label = max(4, label - (10 - bar))
            bar = max(1, width - 1 - label - 1 - (stats + 1 if stats else 0))
        stage = max((len(_stage_name(b)) for b in picture.bars), default=0)
        wall = picture.wall
        stage = min(stage, max(label // 2, label - 9))  # leave the slug 8 characters
        return cls(label, stage, bar, stats, bar / wall if wall > 0 else 0.0)

    def cell(self, t: float) -> int:
        return min(self.bar - 1, max(0, int(t * self.scale)))


def render_waterfall(
    picture: Waterfall, console: Console, *, max_rows: int = 40, show_all: bool = False
) -> None:
    """Print ``picture`` to ``console``: every call when there are at most ``max_rows`` of
    them (or ``show_all``), else calls in flight per stage and the five slowest calls."""
    layout = _Layout.fit(console.width, picture)
    rows = [_header(picture)]
    if not picture.bars:
        rows.append(Text("no calls were made"))
    elif show_all or len(picture.bars) <= max_rows:
        rows += [*_axis(picture, layout), *(_call_row(picture, b, layout) for b in picture.bars)]
    else:
        rows += [*_axis(picture, layout), *_summary(picture, layout)]
    for row in rows:  # cut, never wrapped: a wrapped row would break the time axis
        row.truncate(console.width, overflow="ellipsis")
        console.print(row, no_wrap=True, overflow="ellipsis", crop=True, highlight=False)
    for prose in (_legend(picture), _verdict(picture), _numbers(picture)):
        if prose is not None:
            console.print(prose, highlight=False)  # wrapped at the console's width


def _header(picture: Waterfall) -> Text:
    failed = sum(b.status == "error" for b in picture.bars)
    parts = [
        f"{picture.wall:.1f}s wall",
        f"{len(picture.bars)} calls" + (f" ({failed} failed)" if failed else ""),
        f"{picture.lanes} lane{'s' if picture.lanes != 1 else ''}",
    ]
    text = Text("run ", style="bold")
    text.append(picture.run_id, style="bold")
    text.append("  " + " · ".join(parts))
    return text


def _axis(picture: Waterfall, layout: _Layout) -> list[Text]:
    """Tick labels in seconds (and the stats' headings), then a ruler with retry passes."""
    indent = " " * (1 + layout.label + 1)
    labels = [" "] * layout.bar
    ruler = ["─"] * layout.bar
    step = _nice_step(picture.wall * _TICK_GAP / layout.bar) if picture.wall > 0 else 0.0
    free = 0  # the first column a new label may use
    t = 0.0
    while step and t <= picture.wall + 1e-9:
        column = layout.cell(t)
        ruler[column] = "┬"
        label = f"{round(t, 6):g}s"
        at = min(column, layout.bar - len(label))  # the last label ends at the edge
        if at >= free:
            labels[at : at + len(label)] = label
            free = at + len(label) + 1
        t += step
    top = Text(indent + "".join(labels))
    if layout.stats == _STATS:
        top.append(" " + f"{'lat':>5} {'tokens':>9} {'wait':>5}", style=_DIM)
    elif layout.stats:
        top.append(" " + f"{'lat':>6}", style=_DIM)
    bottom = Text(indent)
    cells: list[Cell] = [(c, _DIM) for c in ruler]
    for marker in picture.markers:
        cells[layout.cell(marker.at)] = (_MARKER, Style(color="yellow", bold=True))
    bottom.append_text(_cells(cells))
    return [top, bottom]


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``raw``."""
    power = 10.0 ** floor(log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def _call_row(picture: Waterfall, bar: Bar, layout: _Layout) -> Text:
    failed = bar.status == "error"
    row = Text(_FAILED if failed else " ", style=_RED if failed else "")
    row.append(_label(bar, layout), style=_RED if failed else "")
    row.append(" ")
    row.append_text(_cells(_bar_cells(bar, layout, Style(color=picture.colour(bar.stage)))))
    if layout.stats:
        row.append(" " + _stats(bar, layout.stats))
    return row


def _stage_name(bar: Bar) -> str:
    return bar.stage + (f"#{bar.attempt}" if bar.attempt > 1 else "")


def _label(bar: Bar, layout: _Layout) -> str:
    """``slug stage#attempt`` in exactly ``layout.label`` cells: the slug gives way first,
    then the stage's name, never the attempt."""
    attempt = f"#{bar.attempt}" if bar.attempt > 1 else ""
    stage = (_fit(bar.stage, layout.stage - len(attempt)) + attempt).ljust(layout.stage)
    slug = _fit(bar.slug or f"topic {bar.topic}", layout.label - layout.stage - 1)
    return f"{slug.ljust(layout.label - layout.stage - 1)} {stage}"[: layout.label]


def _fit(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _bar_cells(bar: Bar, layout: _Layout, style: Style) -> list[Cell]:
    """The call as blocks from its start to its end (eighths at the end), after a faint run of
    ``░`` for the seconds it waited on the rate limiter or backoff before it."""
    cells: list[Cell] = [(" ", None)] * layout.bar
    a = max(0.0, bar.start * layout.scale)
    b = min(float(layout.bar), max(a, bar.end * layout.scale))
    first = min(layout.bar - 1, int(a))
    if b - a < 1 / 8:
        cells[first] = ("▏", style)  # too short to measure: still a visible call
    else:
        for column in range(first, min(int(b), layout.bar)):
            cells[column] = ("█", style)
        eighths = round((b - int(b)) * 8)
        if int(b) < layout.bar and eighths:
            cells[int(b)] = (_EIGHTHS[eighths], style)
        if a - first >= 0.5:
            cells[first] = ("▐", style)  # starts in the cell's right half
    if bar.waited >= _SHOWN_WAIT:
        faint = style + _DIM
        for column in range(int(max(0.0, bar.start - bar.waited) * layout.scale), first):
            cells[column] = (_WAIT, faint)
    return cells


def _cells(cells: list[Cell]) -> Text:
    """Cells as text, one span per run of a style (not per cell: less to send a terminal)."""
    text = Text()
    run, style = "", None
    for char, cell_style in cells:
        if cell_style != style and run:
            text.append(run, style=style or "")
            run = ""
        run, style = run + char, cell_style
    text.append(run, style=style or "")
    return text


def _stats(bar: Bar, width: int) -> str:
    latency = _seconds(bar.latency)
    if width < _STATS:
        return f"{latency:>{width}}"
    tokens = "-"
    if bar.input_tokens is not None or bar.output_tokens is not None:
        tokens = f"{_count(bar.input_tokens)}→{_count(bar.output_tokens)}"
    waited = _seconds(bar.waited) if bar.waited >= _SHOWN_WAIT else ""
    return f"{latency:>5} {tokens:>9} {waited:>5}"


def _seconds(s: float) -> str:
    if s < 99.95:
        return f"{s:.1f}s"
    return f"{s:.0f}s" if s < 9999.5 else f"{s / 60:.0f}m"


def _count(n: int | None) -> str:
    """At most four characters: 950, 1.2k, 12k, 123k, 1.2M."""
    if n is None:
        return "?"
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
    return str(n)


def _summary(picture: Waterfall, layout: _Layout) -> list[Text]:
    """Calls in flight per stage (on one scale, so stages compare), all calls and chains
    queued for a slot (each on its own scale), then the slowest calls in full."""
    columns = layout.bar
    per_stage = [(s, picture.in_flight(columns, s)) for s in picture.all_stages()]
    stage_peak = max((max(v, default=0.0) for _, v in per_stage), default=0.0)
    rows: list[Text] = []
    for stage, values in per_stage:
        count = sum(b.stage == stage for b in picture.bars)
        colour = Style(color=picture.colour(stage))
        rows.append(_density(f"{stage} ×{count}", values, stage_peak, colour, layout))
    everything = picture.in_flight(columns)
    rows.append(_density("all calls", everything, max(everything), None, layout))
    queued = picture.queued_in(columns)
    rows.append(_density("queued", queued, max(queued), _DIM, layout))
    slowest = picture.slowest(5)
    rows.append(Text(f"{len(slowest)} slowest calls:", style=_DIM))
    rows.extend(_call_row(picture, bar, layout) for bar in slowest)
    rows.append(Text(f"{len(picture.bars)} calls summarised; --all draws every call", style=_DIM))
    return rows


def _density(
    name: str, values: list[float], top: float, style: Style | None, layout: _Layout
) -> Text:
    cells: list[Cell] = []
    for v in values:
        level = 0 if v <= 0 or top <= 0 else max(1, round(v / top * (len(_SPARK) - 1)))
        cells.append((_SPARK[level], style))
    row = Text(" " + _fit(name, layout.label).rjust(layout.label) + " ")
    row.append_text(_cells(cells))
    if layout.stats:
        peak, mean = max(values, default=0.0), sum(values) / len(values) if values else 0.0
        said = f"max {_number(peak)} avg {_number(mean)}"
        said = said if layout.stats == _STATS else _number(peak)
        row.append(" " + said.rjust(layout.stats))
    return row


def _number(x: float) -> str:
    return f"{x:.0f}" if x >= 99.5 else f"{x:.1f}"


def _legend(picture: Waterfall) -> Text:
    text = Text()
    for stage in picture.all_stages():
        text.append("█ ", style=Style(color=picture.colour(stage)))
        text.append(stage + "  ")
    text.append(_WAIT + " waited  ", style=_DIM)
    text.append(_FAILED + " failed", style=_RED)
    if picture.markers:
        text.append("  " + _MARKER + " " + ", ".join(m.name for m in picture.markers))
    return text


def _verdict(picture: Waterfall) -> Text | None:
    """The explanation, its verdict (the words before the first colon) styled."""
    p = picture.parallelism
    if not p.explanation:
        return None
    text = Text(p.explanation)
    colon = p.explanation.find(":")
    if p.verdict is not None and p.explanation.startswith(p.verdict) and colon > 0:
        text.stylize(_VERDICT.get(p.verdict, _BETWEEN), 0, colon)
    return text


def _numbers(picture: Waterfall) -> Text | None:
    p = picture.parallelism
    said = [
        f"{name} {value}"
        for name, value in (
            ("effective parallelism", None if p.effective is None else f"{p.effective:.2f}"),
            ("peak", p.peak),
            ("allowed", p.allowed),
            ("chains", p.chains),
            ("wait share", None if p.wait_share is None else f"{p.wait_share:.0%}"),
        )
        if value is not None
    ]
    return Text(" · ".join(said), style=_DIM) if said else None
