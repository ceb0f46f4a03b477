"""Progress on a terminal: a bar for the run and one per stage, redrawn a few times a second.

The event loop only counts (``Tally.add``) and queues the lines to print; rich's refresh
thread draws, at ``refresh_per_second``, and prints the queued lines above the bars. The
display is transient: at the run's end the bars give way to one static line, so the
summary table that follows on stdout is never interleaved with a redraw.

``progress_observer`` chooses: these bars on an interactive terminal, the plain lines of
``ProgressPrinter`` anywhere else (CI logs, pipes, ``TERM=dumb``).
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from rich.console import Console, Group, RenderableType
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..engine._events import (
    ChainFinished,
    Event,
    Observer,
    RetryPassStarted,
    RunFinished,
    RunStarted,
)
from ._console import (
    ProgressPrinter,
    Tally,
    failure_line,
    final_line,
    header_lines,
    retry_line,
    topic_line,
)
from ._format import duration

log = structlog.get_logger()

_LABEL_MAX = 16  # a long stage name is cut, so the bars keep their place


class _Live(Live):
    """rich's Live that first prints the lines queued by the event loop, above the display,
    each time it redraws: printing from the loop would render the bars there too.

    A failure to draw is kept in ``error``, never raised: the refresh thread would die
    with a traceback over the display, and ``stop()`` must still restore the terminal."""

    def __init__(self, pending: deque[Text], **kwargs: Any) -> None:
        self.pending = pending
        self.error: Exception | None = None
        super().__init__(**kwargs)

    def refresh(self) -> None:
        if self.error is not None:
            return
        try:
            with self._lock:
                if self.pending:
                    # One print for every line queued since the last frame.
                    lines = [self.pending.popleft() for _ in range(len(self.pending))]
                    self.console.print(Group(*lines))
                super().refresh()
        except Exception as exc:
            self.error = exc


class _StderrProxy(FileProxy):
    """sys.stderr while the bars show: what others write there is printed above them.

    rich's own proxy (Live's ``redirect_stderr``) has no ``encoding``, so click takes it for
    a misconfigured stream and writes to its ``buffer`` — the real stderr's, straight
    through the bars; ``click.echo(err=True)`` is how the CLI answers a Ctrl-C.
    """

    # typeshed calls these writable attributes; on io.TextIOBase they are read-only.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        encoding: str = getattr(self.rich_proxied_file, "encoding", None) or "utf-8"
        return encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        errors: str | None = getattr(self.rich_proxied_file, "errors", None)
        return errors


class LiveProgress:
    """An observer drawing a run's progress on a terminal with rich.

    Header lines when the run starts; then, redrawn in place: the topics finished of all
    (restored ones included; a retry pass takes its topics back), a bar per stage with its
    calls in flight, the calls, 429s, waits, tokens, cost, elapsed time and ETA. A failed
    chain prints a line above the bars as it happens (every finished topic with
    ``verbose >= 1``). At ``RunFinished`` the bars give way to one final line.

    If drawing fails, the run goes on: the display stops, says so once in the log, and
    stays quiet.
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        verbose: int = 0,
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.verbose = verbose
        self.refresh_per_second = refresh_per_second
        self.clock = clock
        self.tally: Tally | None = None
        self._t0 = 0.0
        self._pending: deque[Text] = deque()
        self._live: _Live | None = None
        self._proxy: _StderrProxy | None = None
        self._quiet = False

    async def on_event(self, event: Event) -> None:
        if self._quiet:
            return
        try:
            self._on(event)
            if self._live is not None and self._live.error is not None:
                raise self._live.error
        except Exception as exc:  # a display must never fail the run
            self._give_up(exc)

    def _on(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
            return
        tally = self.tally
        if tally is None:
            return
        tally.add(event)
        if isinstance(event, ChainFinished):
            if self.verbose >= 1:
                style = "" if event.status == "succeeded" else "red"
                self._pending.append(Text(topic_line(tally, event), style=style))
            elif event.status != "succeeded":
                self._pending.append(_failure(event))
        elif isinstance(event, RetryPassStarted):
            self._pending.append(Text(retry_line(event), style="yellow"))
        elif isinstance(event, RunFinished):
            self._stop()
            style = "green" if event.status == "finished" and not tally.failed else "yellow"
            self.console.print(Text(final_line(tally, event), style=style))
            self.tally = None

    def _start(self, event: RunStarted) -> None:
        self._stop()  # a run that never said it finished
        self.tally = Tally(event)
        self._t0 = self.clock()
        for line in header_lines(event):
            self.console.print(Text(line), highlight=False)
        self._live = _Live(
            self._pending,
            console=self.console,
            get_renderable=self._board,
            transient=True,
            refresh_per_second=self.refresh_per_second,
            redirect_stdout=False,  # stdout is the summary's, perhaps a file
            redirect_stderr=False,  # see _StderrProxy
        )
        self._live.start(refresh=True)
        if self.console.file is sys.stderr:
            # Other writes to our stderr (the Ctrl-C notice) go above the bars, not through.
            self._proxy = _StderrProxy(self.console, sys.stderr)
            sys.stderr = self._proxy
        # Whatever happens to the run, the terminal gets its cursor back.
        atexit.register(self._restore)

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is None:
            return
        atexit.unregister(self._restore)
        proxy, self._proxy = self._proxy, None
        try:
            live.stop()  # draws once more: the queued lines are printed, then the bars cleared
        finally:
            if proxy is not None:
                if sys.stderr is proxy:
                    sys.stderr = proxy.rich_proxied_file
                proxy.flush()  # a last line without its newline
        if live.error is not None:
            raise live.error

    def _restore(self) -> None:
        with contextlib.suppress(Exception):
            self._stop()

    def _give_up(self, exc: Exception) -> None:
        self._quiet = True
        self._restore()
        with contextlib.suppress(Exception):  # the log may go to the same broken terminal
            log.warning("progress.display_failed", error=repr(exc))

    def _board(self) -> RenderableType:
        """The bars, as they are now (called by the refresh thread)."""
        tally = self.tally
        if tally is None:
            return ""
        elapsed = self.clock() - self._t0
        digits = len(str(tally.total))
        labels = ["topics", *(_cut(s) for s in tally.stages)]
        label_width = max(map(len, labels))
        count_width = 2 * digits + 1
        # What is left once the label, the count and ~28 columns of notes are placed.
        bar_width = min(40, max(10, self.console.width - label_width - count_width - 28))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=label_width, no_wrap=True)
        grid.add_column(width=bar_width, no_wrap=True)
        grid.add_column(width=count_width, justify="right", no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        notes = Text.assemble(
            (f" {tally.failed} failed", "red" if tally.failed else "dim"),
            *([(f", {tally.skipped} skipped", "yellow")] if tally.skipped else []),
            (f" · {tally.chains} in flight", "dim"),
            *([(f" · retry pass {tally.retry_pass}", "yellow")] if tally.retry_pass else []),
        )
        grid.add_row(
            Text("topics", style="bold"),
            _bar(tally.finished, tally.total, bar_width),
            f"{tally.finished}/{tally.total}",
            notes,
        )
        for stage, label in zip(tally.stages, labels[1:], strict=True):
            done, calling = tally.stage_done[stage], tally.calling[stage]
            # Chains at this stage but not calling wait for the rate limiter or a backoff.
            waiting = tally.at_stage[stage] - calling
            grid.add_row(
                label,
                _bar(done, tally.total, bar_width),
                f"{done}/{tally.total}",
                Text.assemble(
                    (f" {calling} calling", "" if calling else "dim"),
                    *([(f", {waiting} waiting", "yellow")] if waiting > 0 else []),
                ),
            )
        eta = tally.eta(elapsed)
        calls = [tally.calls_text(), *filter(None, [tally.waits_text()])]
        spent = [f"{tally.tokens:,} tokens", tally.cost_text(), f"{duration(elapsed)} elapsed"]
        spent.append(f"ETA {duration(eta) if eta is not None else '…'}")
        return Group(grid, _dim(" · ".join(calls)), _dim(" · ".join(spent)))


def _bar(completed: int, total: int, width: int) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=min(completed, total), width=width)


def _dim(text: str) -> Text:
    return Text(text, style="dim", no_wrap=True, overflow="ellipsis")


def _cut(label: str) -> str:
    return label if len(label) <= _LABEL_MAX else label[: _LABEL_MAX - 1] + "…"


def _failure(event: ChainFinished) -> Text:
    """A failure line: the topic and error are data (``Text`` never reads markup). It may
    wrap: the reason is worth reading whole, and it scrolls away above the bars."""
    mark, _, rest = failure_line(event).partition(" ")
    return Text.assemble((mark, "bold red"), " ", rest)


def progress_observer(*, stream: TextIO | None = None, verbose: int = 0) -> Observer:
    """The progress display for ``stream`` (default stderr): live bars on an interactive
    terminal, plain lines at a modest rate anywhere else (CI logs, pipes, ``TERM=dumb``).

    rich decides what is interactive, so its environment switches apply: ``TTY_INTERACTIVE=0``
    forces plain lines, and ``NO_COLOR`` keeps the bars but drops their colours.
    """
    stream = stream if stream is not None else sys.stderr
    if _is_tty(stream):
        console = Console(file=stream)
        if console.is_interactive:  # a terminal, and TERM not "dumb" nor "unknown"
            return LiveProgress(console=console, verbose=verbose)
    return ProgressPrinter(stream=stream, verbose=verbose)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
