"""What a person sees: progress while a run runs, a summary table at its end.

Progress goes to stderr and the summary to stdout, so ``orchestrate run ... > summary.txt``
keeps the results apart from the chatter. ``Tally`` counts what a run has done from its
events; ``ProgressPrinter`` turns it into plain lines for logs and pipes (CI), and
``_live.LiveProgress`` into bars on a terminal.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import TextIO

import structlog
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..engine._events import (
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    ChainStatus,
    Event,
    RetryPassStarted,
    RunFinished,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    TopicRestored,
    Waited,
)
from ..engine._retry import is_quota_error
from ..trace._verdict import Parallelism
from ._manifest import RunManifest, TraceExport

log = structlog.get_logger()


def shorten(text: str, width: int = 80) -> str:
    """One line of at most ``width`` characters: a 2 MB topic must not flood the terminal."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def duration(seconds: float) -> str:
    """``7s``, ``1m40s``, ``2h05m``: short, and the same shape from one line to the next."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Tally:
    """What a run has done so far, counted from its events at O(1) each.

    Both progress displays read it: the plain printer as events arrive, the live one from
    rich's refresh thread. That thread only reads numbers and fixed-key dicts (the stage
    names, set here once), so it never iterates something the event loop is resizing.
    """

    def __init__(self, start: RunStarted) -> None:
        self.start = start
        self.stages = tuple(start.stages)
        self._last_stage = self.stages[-1] if self.stages else None
        self.total = start.topics
        self.succeeded = self.failed = self.skipped = 0
        self.chains = 0  # chains in flight
        self.calls = 0  # calls sent
        self.call_errors = 0  # calls that failed (most are retried)
        self.rate_limited = 0  # answered 429 (an empty account's 429 is not counted)
        self.limiter_s = self.backoff_s = 0.0  # summed over topics
        self.tokens = 0
        self.cost = 0.0
        self.cost_known = True  # False once a call had no price
        self.retry_pass = 0
        self.stage_done = dict.fromkeys(self.stages, 0)  # reused and resumed count too
        self.calling = dict.fromkeys(self.stages, 0)  # calls in flight, per stage
        self.at_stage = dict.fromkeys(self.stages, 0)  # chains in flight, per stage
        # The ETA counts work in stages: settled chains count them all, chains in flight
        # those they finished, so a run of few long chains still gets an estimate early.
        self._settled_units = 0
        self._partial_units = 0
        self._partial: dict[int, int] = {}  # stages finished, per chain in flight
        self._places: dict[int, int] = {}  # settled chains not yet reported: their number

    @property
    def finished(self) -> int:
        """Topics that ran to their end (or were restored), whatever their status."""
        return self.succeeded + self.failed + self.skipped

    def add(self, event: Event) -> None:
        """Count ``event`` in."""
        match event:
            case CallStarted(stage=stage):
                self.calls += 1
                self._bump(self.calling, stage, 1)
            case CallFinished(stage=stage, response=response, cost=cost):
                self._bump(self.calling, stage, -1)
                self.tokens += response.prompt_tokens + response.completion_tokens
                if cost is None:
                    self.cost_known = False
                else:
                    self.cost += cost
            case CallFailed(stage=stage, error=error):
                self._bump(self.calling, stage, -1)
                self.call_errors += 1
                if getattr(error, "status", None) == 429 and not is_quota_error(error):
                    self.rate_limited += 1
            case StageStarted(stage=stage):
                self._bump(self.at_stage, stage, 1)
            case StageErrored(stage=stage):
                self._bump(self.at_stage, stage, -1)
            case StageFinished(topic=topic, stage=stage):
                self._bump(self.at_stage, stage, -1)
                self._bump(self.stage_done, stage, 1)
                if topic.index in self._partial:
                    self._partial[topic.index] += 1
                    self._partial_units += 1
                    if stage == self._last_stage:
                        # Its last stage is done: the chain succeeded, even if a Ctrl-C
                        # ends the run before it says so (the summary counts it done too).
                        self._settle(topic.index, "succeeded")
            case Waited(kind="limiter", started=started, at=at):
                self.limiter_s += at - started
            case Waited(kind="backoff", started=started, at=at):
                self.backoff_s += at - started
            case ChainStarted(topic=topic):
                self.chains += 1
                self._partial[topic.index] = 0
            case ChainFinished(topic=topic, status=status) if topic.index in self._partial:
                self._settle(topic.index, status)
            case TopicRestored(status=status):
                self._count(status)
                if status == "succeeded":
                    for stage in self.stages:
                        self.stage_done[stage] += 1
            case RetryPassStarted(number=number, topics=topics):
                # The pass's topics are to do again: the bar steps back and fills anew.
                self.retry_pass = number
                self.failed = max(0, self.failed - topics)

    @staticmethod
    def _bump(counts: dict[str, int], stage: str, by: int) -> None:
        if stage in counts:  # never a new key: the refresh thread may be reading
            counts[stage] = max(0, counts[stage] + by)

    def _settle(self, index: int, status: ChainStatus) -> None:
        self.chains = max(0, self.chains - 1)
        self._partial_units -= self._partial.pop(index)
        self._settled_units += len(self.stages)
        self._count(status)
        self._places[index] = self.finished

    def place(self, index: int) -> int:
        """Topic ``index``'s number among the finished ones, fixed when its chain settled
        (its last stage may settle it before its ChainFinished is reported)."""
        return self._places.pop(index, self.finished)

    def _count(self, status: ChainStatus) -> None:
        if status == "succeeded":
            self.succeeded += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.skipped += 1

    def eta(self, elapsed: float) -> float | None:
        """Seconds left at the pace so far, None before anything finished."""
        remaining = (self.total - self.finished) * len(self.stages) - self._partial_units
        if remaining <= 0:
            return 0.0
        done = self._settled_units + self._partial_units
        return elapsed * remaining / done if done > 0 else None

    def cost_text(self) -> str:
        return f"${self.cost:.4f}" if self.cost_known else "cost unknown"

    def topics_text(self) -> str:
        """``120/1000 topics done, 3 failed``"""
        text = f"{self.finished}/{self.total} topics done, {self.failed} failed"
        return text + (f", {self.skipped} skipped" if self.skipped else "")

    def calls_text(self) -> str:
        """``360 calls (12 errors, 5 × 429)``"""
        text = f"{self.calls:,} calls"
        if not self.call_errors:
            return text
        limited = f", {self.rate_limited} × 429" if self.rate_limited else ""
        errors = f"{self.call_errors:,} error" + ("s" if self.call_errors != 1 else "")
        return f"{text} ({errors}{limited})"

    def waits_text(self) -> str | None:
        """``waits: limiter 1.2s, backoff 3.0s``, the ones that happened."""
        waits = [(self.limiter_s, "limiter"), (self.backoff_s, "backoff")]
        parts = [f"{name} {seconds:.1f}s" for seconds, name in waits if seconds >= 0.05]
        return "waits: " + ", ".join(parts) if parts else None


def header_lines(event: RunStarted) -> list[str]:
    """What a run says first: what runs, where, within which budget."""
    mode = "sequential" if event.mode == "sequential" else "parallel"
    mode += f", concurrency {event.concurrency}"
    what = "resuming run" if event.session > 1 else "run"
    lines = [
        f"{what} {event.run_id}: {event.topics} topic(s) × {len(event.stages)} stage(s) "
        f"({' → '.join(event.stages)}), {mode}",
    ]
    own = dict(event.endpoints)
    if len(own) < len(event.stages):  # some stages call the run's provider
        others = " (other stages)" if own else ""
        lines.append(f"provider: {event.provider} at {event.endpoint}{others}")
    lines += [f"provider: openai at {url} ({stage})" for stage, url in own.items()]
    if event.max_cost is not None:
        lines.append(f"budget: ${event.max_cost:g}")
    return lines


def status_line(tally: Tally, elapsed: float) -> str:
    """``[ 12s] 120/1000 topics done, 3 failed · 10 in flight · 360 calls · ... · ETA 1m40s``"""
    parts = [tally.topics_text(), f"{tally.chains} in flight", tally.calls_text()]
    waits = tally.waits_text()
    parts += [waits] if waits else []
    parts += [f"{tally.tokens:,} tokens", tally.cost_text()]
    eta = tally.eta(elapsed)
    parts += [f"ETA {duration(eta)}"] if eta is not None else []
    return f"[{duration(elapsed):>4}] " + " · ".join(parts)


def final_line(tally: Tally, event: RunFinished) -> str:
    """The run's last progress line: how it ended and what it did."""
    elapsed = event.at - tally.start.at
    parts = [tally.topics_text(), tally.calls_text(), f"{tally.tokens:,} tokens", tally.cost_text()]
    return f"[{duration(elapsed):>4}] run {event.status}: " + " · ".join(parts)


def failure_line(event: ChainFinished) -> str:
    """``FAIL topic-slug  stage: reason``, or ``SKIP`` for a chain halted before sending."""
    mark = "SKIP" if event.status == "skipped" else "FAIL"
    return f"{mark} {event.topic.slug}  {event.failed_stage}: {shorten(event.error or '', 300)}"


def topic_line(tally: Tally, event: ChainFinished) -> str:
    """``ok   [ 3/10] topic-slug  1.2s``: one line per finished topic (``-v``)."""
    width = len(str(tally.total))
    mark = {"succeeded": "ok  ", "failed": "FAIL", "skipped": "SKIP"}[event.status]
    line = f"{mark} [{tally.place(event.topic.index):>{width}}/{tally.total}] {event.topic.slug}"
    line += f"  {event.at - event.started:.1f}s"
    if event.status != "succeeded":
        line += f"  {event.failed_stage}: {shorten(event.error or '', 300)}"
    return line


def retry_line(event: RetryPassStarted) -> str:
    return f"retry pass {event.number}: {event.topics} failed topic(s) again"


class ProgressPrinter:
    """Progress as plain lines, for logs and pipes (CI): the run's header, a status line at
    most every ``interval`` seconds, a line per failure as it happens, retry passes, and a
    final status line. ``verbose >= 1`` adds a line per finished topic.

    Time is the run's own clock, read from the events: no timer, no thread. A status line
    is due when an event arrives ``interval`` seconds after the last one; a run that
    sends nothing for a while prints nothing for a while. Writing never fails the run: if
    the stream breaks, the printer says so once in the log and goes quiet.
    """

    def __init__(
        self, *, stream: TextIO | None = None, interval: float = 10.0, verbose: int = 0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.verbose = verbose
        self.tally: Tally | None = None
        self._next = 0.0
        self._quiet = False

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    async def on_event(self, event: Event) -> None:
        if self._quiet:
            return
        try:
            self._on(event)
        except Exception as exc:  # a display must never fail the run
            self._quiet = True
            with contextlib.suppress(Exception):  # the log may go to the same broken stream
                log.warning("progress.failed", error=repr(exc))

    def _on(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.tally = Tally(event)
            self._next = event.at + self.interval
            for line in header_lines(event):
                self._print(line)
            return
        tally = self.tally
        if tally is None:
            return
        tally.add(event)
        if isinstance(event, ChainFinished):
            if self.verbose >= 1:
                self._print(topic_line(tally, event))
            elif event.status != "succeeded":
                self._print(failure_line(event))
        elif isinstance(event, RetryPassStarted):
            self._print(retry_line(event))
        elif isinstance(event, RunFinished):
            self._print(final_line(tally, event))
            self.tally = None
            return
        at: float | None = getattr(event, "at", None)  # TopicRestored has no time
        if at is not None and at >= self._next:
            self._next = at + self.interval
            self._print(status_line(tally, at - tally.start.at))


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
