"""The ``orchestrate`` command: a thin shell over the library's ``run()``.

Exit codes: 0 all topics done · 1 some topics failed or were not run · 2 usage or config
error · 130 interrupted. Config errors print ``file:line: field: message`` and a hint, never
a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ._cli_support import (
    EXIT_FAILED,
    EXIT_OK,
    RunFolder,
    configure_logging,
    drive,
    run_async,
)
from ._cli_tools import bench_command, serve_sim
from ._cli_trace import trace_command
from ._compare import compare as compare_topics
from ._compare_report import print_comparison
from ._console import ProgressPrinter
from ._events import Observer
from ._provider import PROVIDER_CHOICES
from ._run import resume as resume_run
from ._run import run as run_topics


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="orchestrate", prog_name="orchestrate")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
def main(verbose: int) -> None:
    """Run a chain of LLM agents (Research → Write → Edit by default) over every topic in a
    YAML file, concurrently.

    \b
    Example:
      orchestrate run configs/topics.example.yaml
    """
    configure_logging(verbose)


def _shared_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
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
        click.option("-q", "--quiet", is_flag=True, help="No progress lines; only the results."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _content_from_env(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """The flag, or OpenTelemetry's own switch for GenAI content, in any of its spellings
    (the instrumentations use true/false and NO_CONTENT/SPAN_ONLY/EVENT_ONLY/SPAN_AND_EVENT)."""
    setting = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value or setting.strip().lower() in _CONTENT_ON


_CONTENT_ON = frozenset({"true", "1", "yes", "span_only", "event_only", "span_and_event"})


def _trace_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How ``run`` and ``resume`` trace, declared once."""
    options = [
        click.option(
            "--trace-content",
            is_flag=True,
            callback=_content_from_env,
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


@main.command("run")
@click.argument("topics", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Chains in flight at once (default: the chain file's `concurrency`).",
)
@click.option("--sequential", is_flag=True, help="One chain at a time (same code, one worker).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the newest unfinished run of TOPICS in its own folder (a new run if none).",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Call every stage, even one whose identical request is answered in the store.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    help="Budget in USD: start no chain that could take the run's spend past it.",
)
@_shared_run_options
@_trace_options
def run_command(
    topics: Path,
    chain: Path | None,
    concurrency: int | None,
    sequential: bool,
    out: Path,
    provider: str,
    limit: int | None,
    rpm: int | None,
    tpm: int | None,
    retry_passes: int | None,
    quiet: bool,
    resume: bool,
    fresh: bool,
    max_cost: float | None,
    trace_content: bool,
    otlp_endpoint: str | None,
) -> None:
    """Run the chain over every topic in TOPICS.

    Every finished stage is saved in OUT/state.db before its chain goes on; a stage whose
    request is unchanged since any earlier run is served from there (--fresh: call it
    again). Ctrl-C stops gracefully and prints the command that resumes the run.

    \b
    Examples:
      orchestrate run configs/topics.example.yaml
      orchestrate run configs/topics.example.yaml -c 10
      orchestrate run my-topics.yaml --sequential --out results
      orchestrate run my-topics.yaml -c 64 --rpm 1200 --tpm 200000 --retry-passes 2
      orchestrate run my-topics.yaml --resume
      OPENAI_API_KEY=sk-... orchestrate run my-topics.yaml --max-cost 2.50
    """

    drive(
        out,
        quiet,
        lambda observers, control: run_topics(
            topics,
            chain=chain,
            out=out,
            concurrency=concurrency,
            sequential=sequential,
            provider=provider,
            limit=limit,
            rpm=rpm,
            tpm=tpm,
            retry_passes=retry_passes,
            max_cost=max_cost,
            resume=resume,
            fresh=fresh,
            observers=observers,
            control=control,
            trace_content=trace_content,
            otlp_endpoint=otlp_endpoint,
        ),
    )


@main.command("resume")
@click.argument("run_id")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("outputs"),
    show_default=True,
    help="Outputs root the run is in.",
)
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), help="Chains in flight at once now."
)
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    help="A new budget in USD for the whole run (what it spent so far counts).",
)
@click.option(
    "--retry-passes", type=click.IntRange(min=0), help="Passes over chains that still fail."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines; only the results.")
@_trace_options
def resume_run_command(
    run_id: str,
    out: Path,
    concurrency: int | None,
    max_cost: float | None,
    retry_passes: int | None,
    quiet: bool,
    trace_content: bool,
    otlp_endpoint: str | None,
) -> None:
    """Continue run RUN_ID where it stopped: same id, same folder, same settings.

    Topics it finished stay as they are; stages it finished are not called again. It
    refuses when the topics, the chain or an agent file changed since the run started.

    \b
    Examples:
      orchestrate resume 20261122-153012-a3f9
      orchestrate resume 20261122-153012-a3f9 --out results -c 8 --max-cost 5
    """
    drive(
        out,
        quiet,
        lambda observers, control: resume_run(
            run_id,
            out=out,
            concurrency=concurrency,
            max_cost=max_cost,
            retry_passes=retry_passes,
            observers=observers,
            control=control,
            trace_content=trace_content,
            otlp_endpoint=otlp_endpoint,
        ),
    )


@main.command("compare")
@click.argument("topics", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Chains at once in the parallel run.",
)
@_shared_run_options
def compare_command(
    topics: Path,
    concurrency: int,
    chain: Path | None,
    out: Path,
    provider: str,
    limit: int | None,
    rpm: int | None,
    tpm: int | None,
    retry_passes: int | None,
    quiet: bool,
) -> None:
    """Run TOPICS sequentially, then in parallel, and compare times and outputs.

    Each mode is a separate, complete run (nothing reused between them). Prints a table and
    writes OUT/compare-<id>/report.md, compare.json and both runs' folders.

    \b
    Examples:
      orchestrate compare configs/topics.example.yaml
      orchestrate compare configs/topics.example.yaml -c 5
      OPENAI_API_KEY=sk-... orchestrate compare my-topics.yaml -c 4 --limit 8
    """
    folder = RunFolder(out, comparison=True)

    async def go() -> int:
        observers: list[Observer] = [folder] if quiet else [folder, ProgressPrinter()]
        report = await compare_topics(
            topics,
            chain=chain,
            out=out,
            concurrency=concurrency,
            provider=provider,
            limit=limit,
            rpm=rpm,
            tpm=tpm,
            retry_passes=retry_passes,
            observers=observers,
        )
        print_comparison(report, str(out / report.compare_id / "report.md"))
        modes = (report.sequential, report.parallel)
        failed = any(m is None or m.failed or m.skipped for m in modes)
        return EXIT_FAILED if failed else EXIT_OK

    sys.exit(run_async(go, saved=folder.saved_message))


main.add_command(bench_command)
main.add_command(serve_sim)
main.add_command(trace_command)
