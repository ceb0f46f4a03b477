"""The summary a finished run prints: one table of totals, the verdict, what failed, and
the command that continues the run."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..trace._verdict import Parallelism
from ._format import shorten
from ._run_json import RunManifest, TraceExport


def print_summary(manifest: RunManifest, *, console: Console | None = None) -> None:
    """The table a user reads at the end of a run. Text from topics, errors and paths is
    data, never rich markup."""
    console = console or Console()
    t = manifest.totals
    table = Table(title=f"run {manifest.run_id} ({manifest.status})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "topics",
        f"{t.succeeded} done, {t.failed} failed"
        + (f", {t.skipped} skipped" if t.skipped else "")
        + (f", {t.pending} not run" if t.pending else "")
        + f" of {t.topics}",
    )
    calls = f"{t.calls}"
    details = [
        f"{n} {label}"
        for n, label in (
            (t.retries, "retries"),
            (t.rate_limited, "rate-limited (429)"),
            (t.failed_calls, "failed"),
        )
        if n
    ]
    table.add_row("calls", calls + (f" ({', '.join(details)})" if details else ""))
    if t.recovered:
        table.add_row("recovered", f"{t.recovered} topic(s) succeeded in a retry pass")
    w = t.waits
    table.add_row(
        "waits",
        f"slot {w.slot:.1f}s, rate limiter {w.limiter:.1f}s, backoff {w.backoff:.1f}s "
        "(summed over topics)",
    )
    table.add_row(
        "tokens",
        f"{t.total_tokens:,} ({t.prompt_tokens:,} prompt, {t.completion_tokens:,} completion)",
    )
    if t.reused:
        table.add_row("reused", f"{t.reused} stage(s) served from the store, not called")
    cost = "unknown (a model has no price)" if t.cost is None else f"${t.cost:.4f}"
    if manifest.max_cost is not None:
        cost += f" of a ${manifest.max_cost:g} budget"
    table.add_row("cost", cost)
    wall = manifest.wall_time_s
    sessions = f" over {manifest.sessions} sessions" if manifest.sessions > 1 else ""
    table.add_row("wall time", f"{wall:.1f}s{sessions}" if wall is not None else "-")
    mode = (
        "sequential"
        if manifest.mode == "sequential"
        else f"parallel, concurrency {manifest.concurrency}"
    )
    table.add_row("mode", mode)
    p = manifest.parallelism
    if p is not None:
        table.add_row("parallelism", escape(_parallelism_line(p)))
    table.add_row("provider", escape(f"{manifest.provider} ({manifest.endpoint})"))
    table.add_row("outputs", escape(manifest.output_dir))
    if (Path(manifest.output_dir) / "report.html").exists():
        folder = _short_path(manifest.output_dir)
        table.add_row("trace", escape(f"report.html · orchestrate trace {shlex.quote(folder)}"))
    if manifest.trace_export is not None:
        table.add_row("export", escape(_export_line(manifest.trace_export)))
    if t.warnings:
        cut = [f"{r.slug}/{s.name}" for r in manifest.topics for s in r.stages if s.warning]
        more = f" and {len(cut) - 3} more" if len(cut) > 3 else ""
        table.add_row(
            "[yellow]warnings[/yellow]",
            escape(
                f"{t.warnings} stage(s) accepted with a warning ({', '.join(cut[:3])}{more}): "
                "an answer cut off at max_tokens; see run.json"
            ),
        )
    for fault in manifest.disabled_observers or ():
        table.add_row(
            "[yellow]switched off[/yellow]",
            escape(f"{fault.observer} at {fault.event}: {shorten(fault.error, 160)}"),
        )
    console.print(table)
    if p is not None and p.verdict in ("staircase", "between") and p.explanation:
        verdict, _, rest = p.explanation.partition(": ")
        console.print(f"[yellow]{escape(verdict)}:[/yellow] {escape(rest)}", highlight=False)
    if manifest.stop_reason:
        console.print(f"[red]stopped:[/red] {escape(manifest.stop_reason)}", highlight=False)
    # One line per distinct error, not per topic: a quota stop fails many topics alike.
    by_error: dict[str, list[str]] = {}
    for record in manifest.topics:
        if record.status in ("failed", "skipped") and record.error:
            key = f"{record.failed_stage}: {shorten(record.error, 300)}"
            by_error.setdefault(key, []).append(record.topic)
    for key, topics in list(by_error.items())[:10]:
        names = ", ".join(repr(shorten(t, 40)) for t in topics[:3])
        more = f" and {len(topics) - 3} more" if len(topics) > 3 else ""
        console.print(
            f"[red]{len(topics)} topic(s)[/red] {escape(names + more)} at {escape(key)}",
            highlight=False,
        )
    if len(by_error) > 10:
        console.print(f"... and {len(by_error) - 10} other errors (see run.json)")
    if manifest.status in ("stopped", "failed"):  # interrupted: the CLI says it on stderr
        console.print(f"to continue this run: {escape(resume_command(manifest))}", highlight=False)
    elif manifest.status != "interrupted" and (t.failed or t.skipped or t.pending):
        failed_file = Path(manifest.output_dir) / "failed.yaml"
        console.print(
            f"to run the unfinished topics again: orchestrate run {escape(str(failed_file))}",
            highlight=False,
        )


def _parallelism_line(p: Parallelism) -> str:
    if p.effective is None:
        return "-"
    if not p.peak:
        return p.explanation or "no calls were made"
    numbers = (
        f"effective {p.effective:.1f}, peak {p.peak} of {p.allowed} allowed, "
        f"waits {p.wait_share or 0:.0%} of chain time"
    )
    if p.verdict is None:
        return f"{numbers} ({p.explanation})" if p.explanation else numbers
    return f"{p.verdict}: {numbers}"


def _short_path(path: str) -> str:
    """``path`` relative to the working directory when that is shorter."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return relative if len(relative) < len(path) else path


def _export_line(e: TraceExport) -> str:
    flush = f"flushed in {e.flush_s:.1f}s after the run"
    if e.undelivered == 0:
        return f"{e.delivered} spans sent to {e.endpoint} ({flush})"
    late = e.undelivered - e.dropped - e.failed
    why = [
        *([f"{e.dropped} dropped, the queue full"] if e.dropped else []),
        *([f"{e.failed} in failed exports ({e.error or 'error'})"] if e.failed else []),
        *([f"{late} not confirmed within the limit"] if late > 0 else []),
    ]
    if e.error and not e.failed:
        why.append(f"last error: {e.error}")
    return (
        f"{e.delivered} of {e.spans} spans delivered to {e.endpoint}; "
        f"{e.undelivered} undelivered: {'; '.join(why)} ({flush})"
    )


def resume_command(manifest: RunManifest) -> str:
    """The command that continues this run, ``--out`` included unless it is the default."""
    return resume_command_in(manifest.run_id, Path(manifest.output_dir).parent)


def resume_command_in(run_id: str, out: Path) -> str:
    """``orchestrate resume RUN_ID``, with ``--out`` unless it is the default outputs root."""
    command = f"orchestrate resume {shlex.quote(run_id)}"
    if out.resolve() != Path("outputs").resolve():
        command += f" --out {shlex.quote(str(out))}"
    return command
