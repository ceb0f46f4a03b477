"""A bench sweep as people and programs read it: ``bench.md``, ``bench.csv``, ``bench.svg``
and the terminal table. Pure rendering of a ``BenchReport``."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ._plot import Series, line_chart_svg

if TYPE_CHECKING:
    from ._bench_model import BenchCell, BenchReport

CSV_FIELDS = (
    "topics",
    "concurrency",
    "measured_s",
    "theoretical_s",
    "deviation_pct",
    "chain_time_s",
    "real_s",
    "time_scale",
    "calls",
    "failed",
)


def _unit(r: BenchReport) -> str:
    return "simulated" if r.latency_s is not None else "real"


def _rows(r: BenchReport) -> list[tuple[str, ...]]:
    return [
        (
            str(c.topics),
            str(c.concurrency),
            f"{c.measured_s:,.1f}",
            f"{c.measured_s / 60:,.2f}",
            f"{c.theoretical_s:,.1f}",
            f"{c.theoretical_s / 60:,.2f}",
            f"{c.deviation_pct:+.1f}%",
            f"{c.real_s:.2f}",
            str(c.failed) if c.failed else "",
        )
        for c in r.cells
    ]


def _headers(r: BenchReport) -> tuple[str, ...]:
    unit = "sim s" if r.latency_s is not None else "s"
    return (
        "topics",
        "-c",
        f"measured {unit}",
        "min",
        f"theory {unit}",
        "min",
        "off by",
        "real s",
        "failed",
    )


def describe(r: BenchReport) -> str:
    """What was swept, on what, in one paragraph."""
    if r.latency_s is not None:
        calls = (
            f"every call takes {r.latency_s:g} simulated seconds"
            + (f" (± {r.jitter_s:g} s jitter)" if r.jitter_s else ", no jitter")
            + f", {r.scaling}"
        )
    else:
        calls = "calls take whatever the provider takes; times are real seconds"
    return (
        f"Batch sizes {', '.join(map(str, r.sizes))} × concurrency "
        f"{', '.join(map(str, r.concurrency))} through {' → '.join(r.stages)} on the "
        f"{r.provider} provider: {calls}. Theoretical time = {r.theory}."
    )


def verdict(r: BenchReport) -> str:
    worst = r.worst_deviation_pct
    if worst is None:
        return "No cell finished."
    cell = max(r.cells, key=lambda c: abs(c.deviation_pct))
    return (
        f"Every cell is within {worst:.1f}% of its theoretical time "
        f"(the furthest: {cell.topics} topics at concurrency {cell.concurrency}, "
        f"{cell.deviation_pct:+.1f}%)."
    )


def render_markdown(r: BenchReport) -> str:
    unit = _unit(r)
    lines = [
        f"# Bench: time vs concurrency, {len(r.cells)} runs"
        + ("" if len(r.cells) == r.planned else f" of {r.planned} (interrupted)"),
        "",
        describe(r),
        "",
        f"**{verdict(r)}**",
        "",
        f"Times are in {unit} seconds, and in minutes beside them; `-c` is the concurrency, "
        "`real s` the wall time the run took.",
        "",
        "| " + " | ".join(_headers(r)) + " |",
        "|" + "---:|" * len(_headers(r)),
        *("| " + " | ".join(row) + " |" for row in _rows(r)),
        "",
        *(
            ["![time vs concurrency, measured and theoretical](bench.svg)", ""]
            if any(c.measured_s > 0 for c in r.cells)
            else []
        ),
        "Each row is a separate run with its own client; nothing is reused between them. "
        "`bench.csv` and `bench.json` hold the raw numbers; `cells/*/run.json` each run's "
        "manifest.",
        "",
    ]
    return "\n".join(lines)


def render_csv(r: BenchReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for cell in r.cells:
        writer.writerow(cell.model_dump(include=set(CSV_FIELDS)))
    return buffer.getvalue()


def render_svg(r: BenchReport) -> str | None:
    """The plot, or None while no cell has a time to plot."""
    by_size: dict[int, list[BenchCell]] = {}
    for cell in r.cells:
        by_size.setdefault(cell.topics, []).append(cell)
    series = []
    for size, cells in by_size.items():
        # A log axis has no room for 0 (a cell that did nothing): leave such points out.
        cells = sorted((c for c in cells if c.measured_s > 0), key=lambda c: c.concurrency)
        if not cells:
            continue
        group = f"{size} topics"
        series.append(Series(group, [(c.concurrency, c.measured_s) for c in cells], group=group))
        series.append(
            Series(
                f"{group} (theory)",
                [(c.concurrency, c.theoretical_s) for c in cells],
                dashed=True,
                group=group,
            )
        )
    if not series:
        return None
    return line_chart_svg(
        series,
        title="Time vs concurrency per batch size",
        x_label="concurrency (chains at once)",
        y_label=f"wall time ({_unit(r)} s)",
        log_x=True,
        log_y=True,
    )


def print_bench(r: BenchReport, folder: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"bench · {r.provider} · {_unit(r)} seconds")
    for header in _headers(r):
        table.add_column(header, justify="right")
    for row in _rows(r):
        table.add_row(*row)
    console.print(table)
    console.print(describe(r), highlight=False)
    console.print(verdict(r), highlight=False)
    console.print(f"Report, plot and data: {folder}", highlight=False, markup=False)
