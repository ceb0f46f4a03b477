"""What the ``orchestrate`` commands share: exit codes, error printing, the one
``asyncio.run``, graceful Ctrl-C, and driving one run session to its exit code."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click
import structlog

from ._console import ProgressPrinter, print_summary, resume_command
from ._control import RunControl
from ._errors import ConfigError, RunError, StoreError
from ._events import Event, Observer, RunStarted
from ._manifest import RunManifest

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
NOTHING_STARTED = "nothing was started"


def configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    # The OpenTelemetry exporter logs every failed export through stdlib logging; the run
    # counts them and says so in its summary, so only -v shows them as they happen.
    for noisy in ("opentelemetry", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL if verbose == 0 else level)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def print_error(message: str) -> None:
    click.secho("error: ", fg="red", err=True, nl=False)
    click.echo(message, err=True)


def run_async(make: Callable[[], Coroutine[Any, Any, int]], *, saved: Callable[[], str]) -> int:
    """The one ``asyncio.run`` of the program, with errors turned into exit codes."""
    try:
        return asyncio.run(make())
    except ConfigError as exc:
        print_error(exc.render())
        return EXIT_USAGE
    except StoreError as exc:
        # The store is opened before anything runs: then it is the user's to fix (exit 2).
        print_error(f"{exc}\n  {saved()}")
        return EXIT_USAGE if saved() == NOTHING_STARTED else EXIT_FAILED
    except RunError as exc:
        print_error(f"{exc}\n  {saved()}")
        return EXIT_FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo(f"\ninterrupted: {saved()}", err=True)
        return EXIT_INTERRUPTED


def interruptible(control: RunControl) -> None:
    """Route Ctrl-C (and SIGTERM) to ``control``: the first drains the run, the second
    cancels it; before and after the run itself, an interrupt cancels the program."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal() -> None:
        if not control.watching:
            if control.watched:  # the run is closing: let it save its end
                click.echo("\nsaving the run's end; one moment", err=True)
            else:
                main_task.cancel()
            return
        control.interrupt()
        if control.interrupts == 1:
            click.echo(
                f"\nstopping: nothing new starts; waiting up to {control.grace:.0f}s for the "
                "calls in flight to finish and be saved (Ctrl-C again to stop now)",
                err=True,
            )
        else:
            click.echo("\nstopping now", err=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def drive(
    out: Path,
    quiet: bool,
    start: Callable[[list[Observer], RunControl], Awaitable[RunManifest]],
) -> NoReturn:
    """Run one session (``run`` or ``resume``) with progress and graceful Ctrl-C, and exit
    with the code it deserves."""
    folder = RunFolder(out)

    async def go() -> int:
        control = RunControl()
        interruptible(control)
        observers: list[Observer] = [folder] if quiet else [folder, ProgressPrinter()]
        return finish(await start(observers, control))

    sys.exit(run_async(go, saved=folder.saved_message))


def finish(manifest: RunManifest) -> int:
    """Print the summary; the exit code the run deserves."""
    print_summary(manifest)
    if manifest.status == "interrupted":
        click.echo(
            f"interrupted: finished work is saved in {manifest.output_dir}\n"
            f"  to continue: {resume_command(manifest)}",
            err=True,
        )
        return EXIT_INTERRUPTED
    t = manifest.totals
    return EXIT_OK if t.failed == t.pending == t.skipped == 0 else EXIT_FAILED


class RunFolder:
    """Remembers where the run writes, for the message after Ctrl-C."""

    def __init__(self, out: Path, *, comparison: bool = False) -> None:
        self.out = out
        self.comparison = comparison
        self.run_id: str | None = None

    async def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id

    def saved_message(self) -> str:
        if self.run_id is None:
            return NOTHING_STARTED
        if self.comparison:  # compare-<id>-<mode> runs in compare-<id>/<mode>/
            compare_id, mode = self.run_id.rsplit("-", 1)
            return (
                f"no comparison report was written; the {mode} run's finished topics are "
                f"saved in {self.out / compare_id / mode}"
            )
        return f"finished topics are saved in {self.out / self.run_id}"
