"""``orchestrate validate``: every check a run makes before its first call, and an estimate
of what the run would take — with no call made and nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._errors import ConfigError
from ..report._format import duration
from ..session._estimate import Estimate, estimate
from ..session._setup import RunSetup, prepare
from ._options import run_shape_options, shared_run_options
from ._support import EXIT_OK, EXIT_USAGE, print_error


@click.command("validate")
@click.argument("topics", type=click.Path(path_type=Path, dir_okay=False))
@run_shape_options
@shared_run_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the checks' result and the estimate as one JSON object on stdout.",
)
def validate_command(
    topics: Path,
    concurrency: int | None,
    sequential: bool,
    max_cost: float | None,
    chain: Path | None,
    out: Path,
    provider: str,
    limit: int | None,
    rpm: int | None,
    tpm: int | None,
    retry_passes: int | None,
    as_json: bool,
) -> None:
    """Check TOPICS, its chain, agents and the flags as `orchestrate run` would, and
    estimate the run: calls, tokens per stage, cost and wall time under the concurrency and
    rate limits. No model is called and nothing is written. Exit 0 when all is well, 2 on
    the first problem (file, line and field, and how to fix it).

    Takes the same options as `run`, so that what it checks is what that run would meet.

    \b
    Examples:
      orchestrate validate configs/topics.example.yaml
      orchestrate validate my-topics.yaml -c 20 --rpm 500 --tpm 200000
      OPENAI_API_KEY=sk-... orchestrate validate my-topics.yaml --max-cost 5 --json
    """
    if out.exists() and not out.is_dir():
        print_error(f"--out: {out} is a file, not a folder: a run could not write there")
        sys.exit(EXIT_USAGE)
    try:
        setup = prepare(
            topics,
            chain=chain,
            concurrency=concurrency,
            sequential=sequential,
            provider=provider,
            limit=limit,
            rpm=rpm,
            tpm=tpm,
            retry_passes=retry_passes,
            max_cost=max_cost,
        )
        guess = estimate(setup)
    except ConfigError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": _error_data(exc)}, indent=2))
        print_error(exc.render())
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(_json(setup, guess), indent=2))
    else:
        _print(setup, guess, Console(highlight=False))
    sys.exit(EXIT_OK)


def _error_data(exc: ConfigError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "file": exc.file,
        "line": exc.line,
        "field": exc.field,
        "hint": exc.hint,
    }


def _endpoint_lines(setup: RunSetup) -> list[str]:
    if setup.provider == "simulated":
        default = "simulated (built in, no key needed)"
    else:
        default = f"{setup.provider} at {setup.endpoint_label}"
    if not setup.endpoints:
        return [default]
    lines = [f"{name}: openai at {url}" for name, url in setup.endpoints.items()]
    if setup.uses_default:
        lines.append(f"other stages: {default}")
    return lines


def _print(setup: RunSetup, guess: Estimate, console: Console) -> None:
    plan = setup.plan
    stages = " → ".join(s.name for s in plan.stages)
    console.print(f"[green]ok[/green] topics: {guess.topics} in {escape(str(plan.topics_file))}")
    console.print(f"[green]ok[/green] chain: {escape(str(plan.chain_file))} ({escape(stages)})")
    console.print(
        "[green]ok[/green] agents, templates (rendered for every kind of topic), limits, "
        "prices" + (", budget" if setup.max_cost is not None else "")
    )
    for line in _endpoint_lines(setup):
        console.print(f"[green]ok[/green] provider: {escape(line)}")
    table = Table(title="estimate (no call made)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("stage", no_wrap=True)
    table.add_column("model", no_wrap=True, min_width=max(len(s.model) for s in guess.stages))
    for name in ("calls", "tokens in", "tokens out", "cost", "per call"):
        table.add_column(name, justify="right")
    for s in guess.stages:
        table.add_row(
            escape(s.name),
            escape(s.model),
            f"{s.calls:,}",
            f"{s.prompt_tokens:,}",
            f"{s.completion_tokens:,}",
            _usd(s.cost),
            f"{s.latency_s:.1f}s",
        )
    table.add_row(
        "total",
        "",
        f"{guess.calls:,}",
        f"{guess.prompt_tokens:,}",
        f"{guess.completion_tokens:,}",
        _usd(guess.cost),
        "",
        style="bold",
    )
    console.print(table)
    if guess.retries:
        console.print(f"retries: about {guess.retries:,} (the simulator's fault rates)")
    if guess.max_cost is not None:
        budget = f" (budget ${setup.max_cost:g})" if setup.max_cost is not None else ""
        console.print(
            f"cost: at most {_usd(guess.max_cost)} if every answer used max_tokens{budget}"
        )
    mode = "one chain at a time" if setup.sequential else f"concurrency {setup.width}"
    wall, alone = (duration(s, precise=True) for s in (guess.wall_s, guess.sequential_s))
    console.print(
        f"wall time: about {wall} at {mode}, paced by {escape(guess.paced_by)}"
        + (
            f"; one chain at a time would take about {alone}"
            if not setup.sequential and guess.topics > 1
            else ""
        )
    )
    for note in guess.assumptions:
        console.print(f"[yellow]assumed:[/yellow] {escape(note)}")


def _json(setup: RunSetup, guess: Estimate) -> dict[str, Any]:
    return {
        "ok": True,
        "topics_file": str(setup.plan.topics_file),
        "chain_file": str(setup.plan.chain_file),
        "provider": setup.provider,
        "endpoint": setup.endpoint_label,
        "endpoints": setup.endpoints or None,
        "concurrency": setup.width,
        "sequential": setup.sequential,
        "estimate": {
            "topics": guess.topics,
            "calls": guess.calls,
            "retries": guess.retries,
            "prompt_tokens": guess.prompt_tokens,
            "completion_tokens": guess.completion_tokens,
            "cost_usd": _round(guess.cost),
            "max_cost_usd": _round(guess.max_cost),
            "wall_time_s": round(guess.wall_s, 3),
            "sequential_time_s": round(guess.sequential_s, 3),
            "paced_by": guess.paced_by,
            "assumptions": list(guess.assumptions),
            "stages": [
                {
                    "name": s.name,
                    "model": s.model,
                    "endpoint": s.endpoint,
                    "calls": s.calls,
                    "prompt_tokens": s.prompt_tokens,
                    "completion_tokens": s.completion_tokens,
                    "cost_usd": _round(s.cost),
                    "latency_s": round(s.latency_s, 3),
                }
                for s in guess.stages
            ],
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 9)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"
