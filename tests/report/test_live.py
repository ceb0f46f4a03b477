"""Live progress on a terminal: bars redrawn in place, failures printed above them, nothing
left behind at the end, a display that can never fail the run; and the choice between
bars and plain lines."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import structlog
from rich.console import Console, RenderableType

from orchestrator import ChainFinished, Event, RunFinished, Topic
from orchestrator.report._console import ProgressPrinter
from orchestrator.report._live import LiveProgress, progress_observer

from .test_console import started, synthetic_run

REDRAW = "\x1b[1A\x1b[2K"  # cursor up, erase the line: rich redrawing its live area
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # enough of ECMA-48 for what rich writes


def live(console_file: io.StringIO | None = None) -> tuple[LiveProgress, io.StringIO]:
    out = console_file if console_file is not None else io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system="standard")
    return LiveProgress(console=console, refresh_per_second=20), out


async def feed(observer: LiveProgress, events: list[Event]) -> None:
    for event in events:
        await observer.on_event(event)


async def test_bars_are_drawn_and_give_way_to_one_final_line() -> None:
    progress, out = live()
    await feed(progress, synthetic_run(10, 10.0, fail_every=5)[:-1])
    assert progress._live is not None and progress._live.is_started
    await progress.on_event(RunFinished(10.0, "finished"))
    text = out.getvalue()
    for seen in ("topics", "research", "write", "edit", "━", "10/10", "calling"):
        assert seen in text
    assert progress._live is None  # stopped
    last = " ".join(ANSI.sub("", text[text.rindex(REDRAW) :]).split())
    assert last == (
        "[ 10s] run finished: 10/10 topics done, 2 failed · 28 calls (2 errors, 2 × 429) · "
        "3,900 tokens · $0.0260"
    )
    assert text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l")  # the cursor is back


async def test_failures_are_printed_above_the_bars_one_line_each() -> None:
    progress, out = live()
    await feed(progress, synthetic_run(10, 10.0, fail_every=5))
    plain = ANSI.sub("", out.getvalue())
    fails = re.findall(r"FAIL topic-\d+  write: HTTP 429: slow down \[now\]", plain)
    assert fails == [
        "FAIL topic-4  write: HTTP 429: slow down [now]",
        "FAIL topic-9  write: HTTP 429: slow down [now]",
    ]


async def test_topic_and_error_text_is_never_read_as_markup() -> None:
    progress, out = live()
    topic = Topic(0, "[red]T[/red]", "t")
    error = "HTTP 400: [bold]bad[/bold] [link=x]"
    events: list[Event] = [started(1), ChainFinished(topic, "failed", {}, "research", error, 0, 1)]
    await feed(progress, [*events, RunFinished(1.0, "finished")])
    assert "HTTP 400: [bold]bad[/bold] [link=x]" in out.getvalue()


async def test_verbose_prints_every_finished_topic_above_the_bars() -> None:
    progress, out = live()
    progress.verbose = 1
    await feed(progress, synthetic_run(3, 3.0))
    plain = ANSI.sub("", out.getvalue())
    assert "ok   [1/3] topic-0  1.0s" in plain
    assert "ok   [3/3] topic-2  1.0s" in plain


async def test_a_second_run_gets_its_own_header_and_bars() -> None:
    """``compare`` runs twice with one observer."""
    progress, out = live()
    await feed(progress, synthetic_run(2, 2.0))
    await feed(progress, synthetic_run(2, 2.0))
    assert out.getvalue().count("run rid: 2 topic(s)") == 2
    assert out.getvalue().count("run finished: 2/2 topics done") == 2


class Exploding(LiveProgress):
    """Draws the first frame, then fails as a bug in the drawing code would."""

    frames = 0

    def _board(self) -> RenderableType:
        self.frames += 1
        if self.frames > 2:
            raise ZeroDivisionError("a bug in the display")
        return super()._board()


async def test_a_failure_to_draw_never_reaches_the_run() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    progress = Exploding(console=console, refresh_per_second=0.01)  # only when told
    events = synthetic_run(5, 5.0, fail_every=2)
    with structlog.testing.capture_logs() as logs:
        await feed(progress, events[:10])
        assert progress._live is not None
        progress._live.refresh()  # as rich's refresh thread would: the error is kept
        await feed(progress, events[10:])  # the next event notices it, stops, goes quiet
    assert [entry["event"] for entry in logs] == ["progress.display_failed"]
    assert "ZeroDivisionError" in logs[0]["error"]
    assert progress._live is None
    assert "\x1b[?25h" in out.getvalue()  # the terminal has its cursor back
    assert "run finished" not in out.getvalue()  # quiet from then on


async def test_a_broken_terminal_never_fails_the_run() -> None:
    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("the terminal went away")

    progress, _ = live(Gone())
    with structlog.testing.capture_logs() as logs:
        await feed(progress, synthetic_run(3, 3.0, fail_every=1))
    assert [entry["event"] for entry in logs] == ["progress.display_failed"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_others_writing_to_stderr_print_above_the_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's Ctrl-C notice (click.echo to stderr) must not tear through the bars."""
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = LiveProgress(console=Console(file=sys.stderr, force_terminal=True, width=100))
    await progress.on_event(started(2))
    assert sys.stderr is not terminal
    click.echo("\nstopping: nothing new starts", err=True)
    await progress.on_event(RunFinished(1.0, "interrupted"))
    assert sys.stderr is terminal
    text = terminal.getvalue()
    # The notice came through rich: the bars were lifted (cursor up, erase) to print it.
    assert re.search(r"(\x1b\[1A\x1b\[2K)+\r?\nstopping: nothing new starts\n", text)


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal() -> None:
    assert isinstance(progress_observer(stream=io.StringIO()), ProgressPrinter)


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    """The writing end of a real pseudo-terminal."""
    main, secondary = pty.openpty()
    with os.fdopen(secondary, "w") as stream, os.fdopen(main, "rb"):
        yield stream


def test_progress_is_live_bars_on_a_terminal(
    terminal: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(progress_observer(stream=terminal), LiveProgress)
    monkeypatch.setenv("NO_COLOR", "1")  # colours go, the bars stay
    observer = progress_observer(stream=terminal)
    assert isinstance(observer, LiveProgress) and observer.console.no_color


@pytest.mark.parametrize(("name", "value"), [("TERM", "dumb"), ("TTY_INTERACTIVE", "0")])
def test_progress_is_plain_lines_on_a_terminal_that_cannot_redraw(
    terminal: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert isinstance(progress_observer(stream=terminal), ProgressPrinter)


# The real thing: the CLI in a pseudo-terminal, and in pipes.


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCHESTRATE_"))}
    for name in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "COLUMNS"):
        env.pop(name, None)
    # Calls of ~0.3 s: a run of two to three seconds, redrawn several times.
    return {**env, "TERM": "xterm-256color", "ORCHESTRATE_SIM_TIME_SCALE": "0.3"}


RUN = [sys.executable, "-m", "orchestrator", "run", "configs/topics.example.yaml", "-c", "5"]


def run_in_terminal(args: list[str], cwd: Path, *, timeout: float = 60) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr a 100×30 pseudo-terminal; all it wrote."""
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        args, cwd=cwd, env=cli_env(), stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        proc.kill()
        os.close(main)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_the_cli_on_a_real_terminal_redraws_bars_then_prints_the_summary(
    project: Path, tmp_path: Path
) -> None:
    code, text = run_in_terminal([*RUN, "--out", str(tmp_path / "outs")], project)
    assert code == 0, text
    assert "Traceback" not in text
    assert text.count(REDRAW) >= 3 * 5  # several redraws of a six-line area
    plain = ANSI.sub("", text)
    assert re.search(r"topics +━+.* (\d+)/\1 ", plain)  # a full bar at the end
    assert re.search(r"research +━", plain)
    bars_end = text.rindex(REDRAW)
    final = ANSI.sub("", text[bars_end:])
    assert re.search(r"run finished: (\d+)/\1 topics done, 0 failed", final)
    assert final.index("run finished") < final.index("wall time")  # the summary comes last
    assert text.rindex("\x1b[?25h") > text.rindex("\x1b[?25l")  # the cursor is back


def test_the_cli_in_pipes_prints_a_few_plain_lines(project: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*RUN, "--out", str(tmp_path / "outs")],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "\x1b" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("run ") and lines[1].startswith("provider: simulated at")
    assert len(lines) <= 5  # header, maybe a status line, the final line
    assert re.match(r"\[ *\d+s\] run finished: (\d+)/\1 topics done, 0 failed", lines[-1])
    assert "wall time" in proc.stdout
