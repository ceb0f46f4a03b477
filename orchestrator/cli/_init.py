"""``orchestrate init [DIR]``: a project folder with the default agents and configs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from .._errors import ConfigError
from ..config._init import init_project
from ._support import EXIT_OK, EXIT_USAGE, print_error

# What to run once the folder is there; the command works because a run finds
# ./configs/chain.yaml, whose agents_dir (../agents) is the ./agents init wrote.
_FIRST_RUN = "orchestrate run configs/topics.example.yaml"


@click.command("init")
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that exist already.")
def init_command(folder: Path, force: bool) -> None:
    """Write the default agents/ and configs/ (a chain and example topics) into DIR
    (default: the current folder), ready to run and to edit.

    Files already in DIR are left alone; if any file init would write exists, nothing is
    written (--force: overwrite them).

    \b
    Examples:
      orchestrate init my-project
      orchestrate init
      orchestrate init my-project --force
    """
    try:
        written = init_project(folder, force=force)
    except ConfigError as exc:
        print_error(exc.render())
        sys.exit(EXIT_USAGE)
    click.echo(f"wrote {len(written)} files into {folder}")
    here = folder.resolve() == Path.cwd().resolve()
    next_step = _FIRST_RUN if here else f"cd {shlex.quote(str(folder))} && {_FIRST_RUN}"
    click.echo(f"next: {next_step}")
    sys.exit(EXIT_OK)
