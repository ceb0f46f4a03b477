"""``orchestrate completion SHELL``: the script that gives the shell tab completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
_FILES = {"bash": "~/.bashrc", "zsh": "~/.zshrc", "fish": "~/.config/fish/config.fish"}


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the tab-completion script for SHELL: commands, options, choices and file
    names. Load it in your shell's start-up file, as the examples show.

    \b
    Examples:
      eval "$(orchestrate completion bash)"     # in ~/.bashrc
      eval "$(orchestrate completion zsh)"      # in ~/.zshrc
      orchestrate completion fish > ~/.config/fish/completions/orchestrate.fish
    """
    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None  # every SHELLS entry is one of click's own
    complete = cls(root.command, {}, "orchestrate", "_ORCHESTRATE_COMPLETE")
    click.echo(complete.source())
