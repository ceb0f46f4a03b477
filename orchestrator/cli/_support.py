"""What the ``orchestrate`` commands share: exit codes, error printing, the one
``asyncio.run``, graceful Ctrl-C, and driving one run session to its exit code."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click
import structlog

from .._errors import ConfigError, RunError, StoreError
from ..engine._control import RunControl
from ..engine._events import Event, Observer, RunStarted
from ..report._json_summary import error_summary, run_summary
from ..report._live import progress_observer
from ..report._run_json import RunManifest
from ..report._summary import print_summary, resume_command, resume_command_in

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
        # sys.stderr looked up at each log line: the live display swaps it for a proxy that
        # prints above its bars, and a line written to the real stderr would tear them.
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
    )


def no_color() -> bool:
    """NO_COLOR set to anything but empty turns colour off (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def print_error(message: str) -> None:
    click.secho("error: ", fg="red", err=True, nl=False, color=False if no_color() else None)
    click.echo(message, err=True)


def run_async(
    make: Callable[[], Coroutine[Any, Any, int]],
    *,
    saved: Callable[[], str],
    as_json: bool = False,
) -> int:
    """The one ``asyncio.run`` of the program, with errors turned into exit codes. With
    ``as_json`` a failure also prints its JSON summary on stdout, as a finished run would."""

    def failed(code: int, status: str, message: str, error: ConfigError | None = None) -> int:
        if as_json:
            click.echo(json.dumps(error_summary(code, status, message, saved(), error), indent=2))
        return code

    try:
        return asyncio.run(make())
    except ConfigError as exc:
        print_error(exc.render())
        return failed(EXIT_USAGE, "error", exc.message, exc)
    except StoreError as exc:
        # The store is opened before anything runs: then it is the user's to fix (exit 2).
        print_error(f"{exc}\n  {saved()}")
        code = EXIT_USAGE if saved() == NOTHING_STARTED else EXIT_FAILED
        return failed(code, "error", str(exc))
    except RunError as exc:
        print_error(f"{exc}\n  {saved()}")
        return failed(EXIT_FAILED, "failed", str(exc))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo(f"\ninterrupted: {saved()}", err=True)
        return failed(EXIT_INTERRUPTED, "interrupted", "interrupted")


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


Start = Callable[[list[Observer], RunControl, "Observer | bool"], Awaitable[RunManifest]]


def drive(out: Path, *, quiet: bool, as_json: bool, start: Start) -> NoReturn:
    """Run one session (``run`` or ``resume``) with progress and graceful Ctrl-C, and exit
    with the code it deserves. ``start(observers, control, progress)`` starts it."""
    folder = RunFolder(out)

    async def go() -> int:
        control = RunControl()
        interruptible(control)
        progress = False if quiet else progress_observer(verbose=verbosity())
        return finish(await start([folder], control, progress), as_json=as_json)

    sys.exit(run_async(go, saved=folder.saved_message, as_json=as_json))


def verbosity() -> int:
    """How many ``-v`` the command line holds, before and after the command."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return int(obj.get("verbose", 0)) if isinstance(obj, dict) else 0


def finish(manifest: RunManifest, *, as_json: bool = False) -> int:
    """Print the summary (the table, or with ``as_json`` one JSON object); the exit code
    the run deserves."""
    t = manifest.totals
    if manifest.status == "interrupted":
        code = EXIT_INTERRUPTED
    else:
        code = EXIT_OK if t.failed == t.pending == t.skipped == 0 else EXIT_FAILED
    if as_json:
        click.echo(json.dumps(run_summary(manifest, code), indent=2))
    else:
        print_summary(manifest)
    if manifest.status == "interrupted":
        click.echo(
            f"interrupted: finished work is saved in {manifest.output_dir}\n"
            f"  to continue: {resume_command(manifest)}",
            err=True,
        )
    return code


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
        return (
            f"finished topics are saved in {self.out / self.run_id}\n"
            f"  to continue: {resume_command_in(self.run_id, self.out)}"
        )
