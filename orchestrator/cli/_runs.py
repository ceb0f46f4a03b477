"""``orchestrate runs``: the runs in an outputs root, newest first, as a table or as JSON."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from .._errors import ConfigError, StoreError
from ..report._format import duration
from ..session._runs import RunListing, RunSummary, list_runs
from ._support import EXIT_OK, EXIT_USAGE, print_error

_UNCUT = 1000  # columns: wider than any row, so only a terminal's width wraps one
_STYLES = {
    "finished": "green",
    "running": "cyan",
    "interrupted": "yellow",
    "stopped": "yellow",
    "crashed": "red",
    "failed": "red",
}


@click.command("runs")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("outputs"),
    show_default=True,
    metavar="DIR",
    help="Outputs root the runs were made in (the --out of `orchestrate run`).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    metavar="N",
    help="Show the N newest runs.",
)
@click.option("--all", "show_all", is_flag=True, help="Show every run (overrides --limit).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON array on stdout, and nothing else."
)
def runs_command(out: Path, limit: int, show_all: bool, as_json: bool) -> None:
    """List the runs in an outputs root (--out), newest first: when each started, how it
    ended, topics done and failed, wall time, cost, and the command that resumes it when
    it can be.

    A run marked running whose process is gone is shown as crashed, and can be resumed.

    \b
    Examples:
      orchestrate runs
      orchestrate runs --out results --all
      orchestrate runs --json | jq '.[] | select(.resumable) | .resume_command'
    """
    try:
        listing = list_runs(out, limit=None if show_all else limit)
    except ConfigError as exc:
        print_error(exc.render())
        sys.exit(EXIT_USAGE)
    except StoreError as exc:  # corrupt, locked or too new: the user's to fix
        print_error(str(exc))
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps([run.as_json() for run in listing.runs], indent=2))
    else:
        console = Console(highlight=False)
        if console.is_terminal:
            print_runs(listing, out, console=console)
        else:  # a file or a pipe: no command cut to 80 columns, no lines padded with spaces
            buffer = io.StringIO()
            print_runs(listing, out, console=Console(file=buffer, width=_UNCUT, highlight=False))
            click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))
    sys.exit(EXIT_OK)


def print_runs(listing: RunListing, out: Path, *, console: Console) -> None:
    """The table of runs, then a line per run with a note. Ids, paths and notes come from
    files: data, never rich markup.

    A resume command folded over lines is no use, so where the table with them is wider than
    the terminal they go under it, one per line.
    """
    if not listing.runs:
        console.print(f"no runs in {escape(str(out))} yet")
        return
    table = _table(listing, out, commands=True)
    wide = console.options.update_width(_UNCUT)
    if Measurement.get(console, wide, table).maximum <= console.width:
        console.print(table)
    else:
        console.print(_table(listing, out, commands=False))
        resumable = [run for run in listing.runs if run.resumable]
        if resumable:
            console.print("to resume:")
        for run in resumable:
            console.print(f"  {escape(run.resume_command or f'{run.run_id}: see below')}")
    for run in listing.runs:
        if run.notes:
            console.print(f"[dim]* {escape(run.run_id)}: {escape('; '.join(run.notes))}[/dim]")
    if len(listing.runs) < listing.total:
        console.print(
            f"the {len(listing.runs)} newest of {listing.total} runs; --all lists every one"
        )


def _table(listing: RunListing, out: Path, *, commands: bool) -> Table:
    # No vertical rules, so that a command selected with the mouse copies clean.
    table = Table(
        title=f"runs in {escape(str(out))}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in ("run id", "started", "status", "done/failed"):
        table.add_column(name, no_wrap=True)
    table.add_column("wall", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    if commands:
        table.add_column("resumable", no_wrap=True)
    now = datetime.now().astimezone()
    for run in listing.runs:
        cells = [
            escape(run.run_id),
            _started(run.started_at, now),
            _status(run),
            _topics(run),
            duration(run.wall_time_s, precise=True) if run.wall_time_s is not None else "-",
            "-" if run.cost is None else f"${run.cost:.4f}",
        ]
        if commands:
            cells.append(_resumable(run))
        table.add_row(*cells)
    return table


def _resumable(run: RunSummary) -> str:
    if run.resume_command is not None:
        return escape(run.resume_command)
    return "from Python*" if run.resumable else "no"


def _started(moment: datetime, now: datetime) -> str:
    """Local time, as ``ls -l`` shortens it: the year only when it is not this one's."""
    local = moment.astimezone(now.tzinfo)
    return local.strftime("%m-%d %H:%M" if local.year == now.year else "%Y-%m-%d")


def _status(run: RunSummary) -> str:
    mark = "*" if run.notes else ""  # explained under the table
    return f"[{_STYLES.get(run.status, 'default')}]{escape(run.status)}[/]{mark}"


def _topics(run: RunSummary) -> str:
    def n(value: int | None) -> str:
        return "-" if value is None else str(value)

    if run.succeeded is None and run.failed is None and run.topics is None:
        return "-"
    return f"{n(run.succeeded)}/{n(run.failed)} of {n(run.topics)}"
