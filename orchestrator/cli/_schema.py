"""``orchestrate schema [DIR]``: JSON Schemas of the config files, for editors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from .._errors import ConfigError
from ..config._schema import SCHEMA_FILES, schema_text, schemas, write_schemas
from ._support import EXIT_OK, EXIT_USAGE, print_error

HEADER = "# yaml-language-server: $schema="


@click.command("schema")
@click.argument("folder", metavar="[DIR]", default="schemas", type=click.Path(path_type=Path))
@click.option(
    "--print",
    "kind",
    type=click.Choice(list(SCHEMA_FILES)),
    help="Print this one schema on stdout instead of writing files.",
)
@click.pass_context
def schema_command(ctx: click.Context, folder: Path, kind: str | None) -> None:
    """Write the JSON Schemas of agent, chain and topics files into DIR (default: schemas),
    for completion and checking in editors that use the YAML language server (e.g. VS Code's
    YAML extension). A YAML file uses one when its first line names it, relative to the file:

    \b
      # yaml-language-server: $schema=../schemas/chain.schema.json

    \b
    Examples:
      orchestrate schema
      orchestrate schema .vscode/schemas
      orchestrate schema --print topics > topics.schema.json
    """
    if kind is not None:
        if ctx.get_parameter_source("folder") is not ParameterSource.DEFAULT:
            print_error("give DIR or --print, not both\n  hint: --print writes no files")
            sys.exit(EXIT_USAGE)
        click.echo(schema_text(schemas()[SCHEMA_FILES[kind]]), nl=False)
        sys.exit(EXIT_OK)
    try:
        written = write_schemas(folder)
    except ConfigError as exc:
        print_error(exc.render())
        sys.exit(EXIT_USAGE)
    for path in written:
        click.echo(str(path))
    click.echo(_how_to_use(folder / SCHEMA_FILES["chain"]))
    sys.exit(EXIT_OK)


def _how_to_use(chain_schema: Path) -> str:
    """One line with the header a project's configs/chain.yaml would carry."""
    try:
        target = Path(os.path.relpath(chain_schema, "configs")).as_posix()
    except ValueError:  # Windows: another drive has no relative path
        target = chain_schema.resolve().as_uri()
    return (
        f"use: make `{HEADER}{target}` the first line of configs/chain.yaml (the path is "
        "relative to the YAML file; agent.schema.json is for agents/*.yaml, "
        "topics.schema.json for topics files)"
    )
