"""The options several ``orchestrate`` commands share, declared once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..provider._endpoints import PROVIDER_CHOICES
from ._support import configure_logging


def _more_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """``-v`` after the command counts as much as before it: ``orchestrate run x -v``."""
    if value:
        ctx.ensure_object(dict)
        total = ctx.obj.get("verbose", 0) + value
        ctx.obj["verbose"] = total
        configure_logging(total)


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-q``, ``-v`` and ``--json``: how much a command says, and in which form."""
    options = [
        click.option(
            "-q", "--quiet", is_flag=True, help="No progress on stderr; only the results."
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            expose_value=False,
            callback=_more_verbose,
            help="More detail on stderr: -v a line per finished topic and info logs, -vv debug.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print one JSON summary on stdout at the end, and nothing else on stdout.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_shape_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How wide a run goes and what it may spend: ``run`` and ``validate`` share them, so
    that what validate checks is what the run would meet."""
    options = [
        click.option(
            "-c",
            "--concurrency",
            type=click.IntRange(min=1),
            help="Chains in flight at once (default: the chain file's `concurrency`).",
        ),
        click.option(
            "--sequential", is_flag=True, help="One chain at a time (same code, one worker)."
        ),
        click.option(
            "--max-cost",
            type=click.FloatRange(min=0, min_open=True),
            help="Budget in USD: start no chain that could take the run's spend past it.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def shared_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``run`` and ``compare`` share, declared once."""
    options = [
        click.option(
            "--chain",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Chain file (default: the topics file's `chain:`, ./configs/chain.yaml, "
            "or the packaged default).",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path, file_okay=False),
            default=Path("outputs"),
            show_default=True,
            help="Outputs root: everything goes to a new folder inside it.",
        ),
        click.option(
            "--provider",
            type=click.Choice(PROVIDER_CHOICES),
            default="auto",
            show_default=True,
            help="auto: openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else simulated.",
        ),
        click.option("--limit", type=click.IntRange(min=1), help="Run only the first N topics."),
        click.option(
            "--rpm",
            type=click.IntRange(min=1),
            help="Requests per minute allowed for every model (default: the chain's "
            "`limits:`, else learned from the provider's headers).",
        ),
        click.option(
            "--tpm", type=click.IntRange(min=1), help="Tokens per minute for every model."
        ),
        click.option(
            "--retry-passes",
            type=click.IntRange(min=0),
            help="Passes over chains that still failed on transient errors, after all "
            "others finished (default: the chain's `retry_passes`, 1).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def content_from_env(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """The flag, or OpenTelemetry's own switch for GenAI content, in any of its spellings
    (the instrumentations use true/false and NO_CONTENT/SPAN_ONLY/EVENT_ONLY/SPAN_AND_EVENT)."""
    setting = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value or setting.strip().lower() in _CONTENT_ON


_CONTENT_ON = frozenset({"true", "1", "yes", "span_only", "event_only", "span_and_event"})


def trace_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How ``run`` and ``resume`` trace, declared once."""
    options = [
        click.option(
            "--trace-content",
            is_flag=True,
            callback=content_from_env,
            help="Record prompts and outputs in the spans and events.jsonl (off: they may "
            "be private). Also on with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT "
            "set to true or SPAN_ONLY/EVENT_ONLY/SPAN_AND_EVENT.",
        ),
        click.option(
            "--otlp-endpoint",
            metavar="URL",
            help="Also export spans to this OTLP/HTTP traces URL, e.g. "
            "http://localhost:4318/v1/traces (needs: pip install 'orchestrate[otel]').",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
