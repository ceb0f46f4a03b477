"""``orchestrate trace RUN_DIR``: a run's waterfall in the terminal, from its trace.json."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from .._errors import ConfigError
from ..report._trace_files import TRACE_FILE
from ..trace._chrome_trace import load_trace
from ..trace._view import render_waterfall
from ..trace._waterfall import waterfall
from ._support import EXIT_OK, EXIT_USAGE, print_error


@click.command("trace")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--all", "show_all", is_flag=True, help="Draw every call, however many.")
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="Up to this many calls, one row each; above it, calls in flight per stage.",
)
def trace_command(run_dir: Path, show_all: bool, rows: int) -> None:
    """Draw the waterfall of the run in RUN_DIR: one row per call on a shared time axis,
    coloured by stage, with latency, tokens and waits, and the parallelism verdict — a fan
    or a staircase. An outputs root means its latest run.

    \b
    Examples:
      orchestrate trace outputs/latest
      orchestrate trace outputs --all
      orchestrate trace outputs/20261122-153012-a3f9 --rows 100
    """
    path = run_dir / TRACE_FILE
    if not path.exists() and (run_dir / "latest" / TRACE_FILE).exists():
        path = run_dir / "latest" / TRACE_FILE
    try:
        picture = waterfall(load_trace(path))
        render_waterfall(picture, Console(highlight=False), max_rows=rows, show_all=show_all)
    except ConfigError as exc:
        print_error(exc.render())
        sys.exit(EXIT_USAGE)
    except (TypeError, ValueError, AttributeError) as exc:  # a value of the wrong kind
        print_error(
            f"{path}: a span in the trace is damaged ({exc})\n"
            "  hint: give a run folder written by `orchestrate run`"
        )
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK)
