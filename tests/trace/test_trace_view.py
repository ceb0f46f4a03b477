"""The terminal waterfall: a row per call on one time axis, or a summary past max_rows."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

import orchestrator
from orchestrator.trace._chrome_trace import load_trace
from orchestrator.trace._spans import Marker
from orchestrator.trace._verdict import assess
from orchestrator.trace._view import render_waterfall
from orchestrator.trace._waterfall import Bar, Waterfall, waterfall

STAGES = ("research", "write", "edit")
BLOCKS = "█▐▏▎▍▌▋▊▉"
CALL_ROW = re.compile(r"^[ ✗]t\d+ ")  # the slugs below are t0, t1, ...
REAL_ROW = re.compile(rf"^[ ✗]\S+ (research|write|edit)(#\d+)? +[░{BLOCKS}]")


def call(
    topic: int,
    start: float,
    end: float,
    *,
    stage: str = "research",
    attempt: int = 1,
    waited: float = 0.0,
    status: str = "ok",
) -> Bar:
    return Bar(
        topic=topic,
        slug=f"t{topic}",
        stage=stage,
        attempt=attempt,
        model="gpt-4o-mini",
        start=start,
        end=end,
        waited=waited,
        input_tokens=None if status == "error" else 300,
        output_tokens=None if status == "error" else 1200,
        cost=None,
        status=status,
        error="HTTP 500" if status == "error" else None,
        lane=1,
    )


def picture(
    bars: list[Bar],
    *,
    allowed: int = 10,
    wall: float | None = None,
    markers: tuple[Marker, ...] = (),
    run_id: str = "20261122-000000-abcd",
) -> Waterfall:
    """A waterfall as ``_waterfall`` would build it, with the real verdict for its bars."""
    wall = wall if wall is not None else max(b.end for b in bars)
    chains = len({b.topic for b in bars})
    return Waterfall(
        run_id=run_id,
        wall=wall,
        stages=STAGES,
        bars=tuple(sorted(bars, key=lambda b: (b.start, b.topic))),
        lanes=min(allowed, chains),
        queued=((0.0, wall / 2),),
        markers=markers,
        parallelism=assess(
            calls=[(b.start, b.end) for b in bars],
            wall=wall,
            allowed=allowed,
            chains=chains,
            chain_time=sum(b.end - b.start + b.waited for b in bars),
            limiter_wait=0.0,
            backoff_wait=sum(b.waited for b in bars),
        ),
    )


def render(
    w: Waterfall,
    *,
    width: int = 80,
    colour: bool = False,
    max_rows: int = 40,
    show_all: bool = False,
) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=colour,
        color_system="truecolor" if colour else None,
    )
    render_waterfall(w, console, max_rows=max_rows, show_all=show_all)
    return out.getvalue()


def call_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if CALL_ROW.match(line)]


def blocks(row: str) -> tuple[int, int]:
    """The first and last column of the bar drawn in a row."""
    columns = [i for i, ch in enumerate(row) if ch in BLOCKS]
    return columns[0], columns[-1]


def staircase(n: int = 10) -> Waterfall:
    return picture([call(i, i * 1.0, i * 1.0 + 1.0) for i in range(n)], allowed=1)


def fan(n: int = 8) -> Waterfall:
    return picture([call(i, 0.001 * i, 2.0 + 0.001 * i) for i in range(n)], allowed=n)


def many(n: int = 120) -> Waterfall:
    """n calls: n/3 chains of three stages, ten at a time."""
    bars = []
    for i in range(n // 3):
        t0 = (i // 10) * 3.0
        for k, stage in enumerate(STAGES):
            bars.append(call(i, t0 + k, t0 + k + 0.9 + 0.01 * (i % 7), stage=stage))
    return picture(bars)


def test_small_run_draws_one_row_per_call_in_start_order() -> None:
    w = fan(6)
    rows = call_rows(render(w))
    assert [row.split()[0] for row in rows] == [b.slug for b in w.bars]


def test_header_names_run_wall_calls_and_lanes() -> None:
    first = render(fan(6)).splitlines()[0]
    assert first.startswith("run 20261122-000000-abcd")
    assert "2.0s wall" in first and "6 calls" in first and "6 lanes" in first


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("build", [fan, staircase, many])
@pytest.mark.parametrize("show_all", [False, True])
def test_no_line_is_wider_than_the_console(
    build: Callable[[], Waterfall], width: int, show_all: bool
) -> None:
    w = build()
    long = replace(w.bars[0], slug="x" * 300, stage="a-very-long-stage-name", attempt=12)
    w = picture([*w.bars, long], run_id="r" * 200)
    lines = render(w, width=width, show_all=show_all).splitlines()
    assert max(cell_len(line) for line in lines) <= width


def test_axis_labels_ticks_in_seconds_over_the_bar_area() -> None:
    axis = render(staircase()).splitlines()[1]
    assert re.search(r"^ +0s +5s +10s", axis)
    assert "lat" in axis and "tokens" in axis and "wait" in axis


def test_staircase_bars_start_where_the_previous_ended() -> None:
    rows = call_rows(render(staircase()))
    spans = [blocks(row) for row in rows]
    assert len(spans) == 10
    for (_, last), (first, _) in zip(spans, spans[1:], strict=False):
        assert 0 <= first - last <= 1  # the same cell, or the next one


def test_fan_bars_start_and_end_in_the_same_columns() -> None:
    spans = {blocks(row) for row in call_rows(render(fan()))}
    assert len(spans) == 1


def test_bars_span_the_axis_in_proportion_to_latency() -> None:
    """A 1 s call of a 10 s run takes about a tenth of the bar area."""
    w = picture([call(0, 0.0, 1.0), call(1, 0.0, 10.0)])
    short, long = (blocks(row) for row in call_rows(render(w)))
    assert long[1] - long[0] + 1 == pytest.approx(10 * (short[1] - short[0] + 1), abs=4)


def test_wait_before_a_call_is_drawn_faint_and_printed() -> None:
    w = picture([call(0, 0.0, 10.0), call(1, 4.0, 6.0, waited=2.0)])
    row = call_rows(render(w))[1]
    first, _ = blocks(row)
    assert row[first - 4 : first] == "░░░░"  # 2 s at 38 cells over 10 s: 7.6 cells, at least 4
    assert row.rstrip().endswith("2.0s")


def test_stats_show_latency_tokens_in_and_out() -> None:
    row = call_rows(render(fan(2)))[0]
    assert re.search(r"2\.0s +300→1\.2k", row)


def test_failed_call_is_marked_and_a_retry_shows_its_attempt() -> None:
    w = picture([call(0, 0.0, 0.5, status="error"), call(0, 1.0, 2.0, attempt=2)])
    failed, retried = call_rows(render(w))
    assert failed.startswith("✗t0") and "research" in failed
    assert retried.startswith(" t0") and "research#2" in retried
    assert "(1 failed)" in render(w).splitlines()[0]


def test_retry_pass_marker_sits_on_the_axis_and_in_the_legend() -> None:
    w = picture([call(i, i, i + 1.0) for i in range(4)], markers=(Marker(2.0, "retry pass 1 (2)"),))
    lines = render(w).splitlines()
    assert "↻" in lines[2]
    assert any("↻ retry pass 1 (2)" in line for line in lines)


def test_above_max_rows_summarises_each_stage_and_the_slowest_calls() -> None:
    text = render(many(120), max_rows=40)
    lines = text.splitlines()
    for name in ("research ×40", "write ×40", "edit ×40", "all calls", "queued"):
        row = next(line for line in lines if line.strip().startswith(name))
        assert re.search(r"max [\d.]+ avg [\d.]+$", row)
        assert any(ch in "▁▂▃▄▅▆▇█" for ch in row)
    assert "5 slowest calls:" in text
    assert len(call_rows(text)) == 5
    assert "120 calls summarised; --all draws every call" in text


def test_show_all_draws_every_call_past_max_rows() -> None:
    assert len(call_rows(render(many(120), max_rows=40, show_all=True))) == 120


def test_verdict_explanation_and_numbers_end_the_picture() -> None:
    text = render(staircase())
    flat = " ".join(text.split())
    assert "staircase: effective parallelism 1.00" in flat
    assert "concurrency 1 set the pace" in flat
    assert "effective parallelism 1.00 · peak 1 · allowed 1 · chains 10 · wait share 0%" in flat


def test_legend_names_every_stage() -> None:
    legend = next(line for line in render(fan()).splitlines() if "░ waited" in line)
    assert "█ research" in legend and "█ write" in legend and "█ edit" in legend


def test_bars_take_their_stage_colour_only_on_a_colour_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = fan(2)
    research = "38;2;78;121;167"  # STAGE_COLOURS[0], #4e79a7
    assert research in render(w, colour=True)
    assert "\x1b[" not in render(w)  # not a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    assert research not in render(w, colour=True)


def test_run_text_is_printed_literally_not_as_markup() -> None:
    w = picture([call(0, 0.0, 1.0)], run_id="[bold]odd[/bold]")
    assert "run [bold]odd[/bold]" in render(w)


def test_a_run_without_calls_says_so() -> None:
    w = Waterfall(
        run_id="r",
        wall=0.0,
        stages=STAGES,
        bars=(),
        lanes=0,
        queued=(),
        markers=(),
        parallelism=assess(
            calls=[],
            wall=0.0,
            allowed=4,
            chains=3,
            chain_time=0.0,
            limiter_wait=0.0,
            backoff_wait=0.0,
        ),
    )
    text = render(w)
    assert "no calls were made" in text


async def test_a_real_run_folder_draws_a_row_per_call_and_its_verdict(project: Path) -> None:
    """From trace.json of a simulated run: a row per call (30), and the run's verdict."""
    manifest = await orchestrator.run(
        "configs/topics.example.yaml", out="outs", concurrency=10, sim={"time_scale": 0.01}
    )
    w = waterfall(load_trace(Path(manifest.output_dir) / "trace.json"))
    text = render(w, width=80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    rows = [line for line in text.splitlines() if REAL_ROW.match(line)]
    assert [row.split()[1] for row in rows] == [b.stage for b in w.bars]  # 30, in start order
    assert f"run {manifest.run_id}" in text
    assert w.parallelism.verdict is not None and w.parallelism.verdict in text
