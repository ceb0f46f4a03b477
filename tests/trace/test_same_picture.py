"""The terminal waterfall, report.html and run.json tell the same story about one run: the
report is drawn from the spans in memory as the run ends, ``orchestrate trace`` from
trace.json read back, and both must show the same calls in the same order and places, with
the same verdict the manifest recorded."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

from rich.console import Console

import orchestrator
from orchestrator.trace._chrome_trace import load_trace
from orchestrator.trace._view import render_waterfall
from orchestrator.trace._waterfall import waterfall

BAR = re.compile(
    r'<rect class="bar(?: failed)?" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*>'
    r"<title>(.*?)</title>",
    re.S,
)
ROW = re.compile(r"^[ ✗]\S+ (research|write|edit)(?:#(\d+))? ")


async def test_trace_command_report_and_manifest_show_the_same_run(project: Path) -> None:
    """Same calls, same order, same relative positions, same verdict in all three."""
    manifest = await orchestrator.run(
        "configs/topics.example.yaml", out="outs", concurrency=3, sim={"time_scale": 0.02}
    )
    run_dir = Path(manifest.output_dir)
    picture = waterfall(load_trace(run_dir / "trace.json"))

    out = io.StringIO()
    render_waterfall(picture, Console(file=out, width=120, color_system=None), max_rows=100)
    rows = [m for line in out.getvalue().splitlines() if (m := ROW.match(line))]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    bars = BAR.findall(page)

    assert len(rows) == len(bars) == manifest.totals.calls == 30
    # The same call on each row: the stage and attempt in the terminal, in the report's hover.
    for row, (_, _, title) in zip(rows, bars, strict=True):
        stage_line = html.unescape(title).splitlines()[1]
        assert stage_line.startswith(f"{row.group(1)}, attempt {row.group(2) or 1},")
    # The same places: where a bar starts, as a share of the axis, agrees to a cell or two.
    left = float(re.search(r'data-plot-left="([\d.]+)"', page).group(1))  # type: ignore[union-attr]
    right = float(re.search(r'data-plot-right="([\d.]+)"', page).group(1))  # type: ignore[union-attr]
    ruler = next(line for line in out.getvalue().splitlines() if "┬" in line)
    axis = re.search(r"┬[┬─↻]*", ruler)
    assert axis is not None
    for row, (x, _, _) in zip(rows, bars, strict=True):
        drawn = row.string[axis.start() : axis.end()]
        start_cell = len(drawn) - len(drawn.lstrip(" ░"))
        cells = axis.end() - axis.start()
        assert abs(start_cell / cells - (float(x) - left) / (right - left)) <= 1.5 / cells
    # The same verdict everywhere.
    p = manifest.parallelism
    assert p is not None and p.verdict is not None
    assert picture.parallelism.verdict == p.verdict
    assert picture.parallelism.effective == p.effective
    assert picture.parallelism.peak == p.peak
    assert p.verdict in out.getvalue()
    assert html.escape(p.explanation or "") in page
