"""What a person sees while a run runs (the summary at its end is ``_summary``).

Progress goes to stderr and the summary to stdout, so ``orchestrate run ... > summary.txt``
keeps the results apart from the chatter. ``Tally`` counts what a run has done from its
events; ``ProgressPrinter`` turns it into plain lines for logs and pipes (CI), and
``_live.LiveProgress`` into bars on a terminal.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TextIO

import structlog

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
from ._format import duration, shorten

log = structlog.get_logger()


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
