"""The ``orchestrate`` command: a thin shell over the library's ``run()``.

Exit codes: 0 all topics done · 1 some topics failed or were not run · 2 usage or config
error · 130 interrupted. Config errors print ``file:line: field: message`` and a hint, never
a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..measure._compare import compare as compare_topics
from ..measure._compare_report import print_comparison
from ..report._live import progress_observer
from ..session._run import resume as resume_run
from ..session._run import run as run_topics
from ._completion import completion_command
from ._init import init_command
from ._options import output_options, run_shape_options, shared_run_options, trace_options
from ._runs import runs_command
from ._schema import schema_command
from ._support import (
    EXIT_FAILED,
    EXIT_OK,
    RunFolder,
    configure_logging,
    drive,
    run_async,
    verbosity,
)
from ._tools import bench_command, serve_sim
from ._trace import trace_command
from ._validate import validate_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="orchestrate", prog_name="orchestrate")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Run a chain of LLM agents (Research → Write → Edit by default) over every topic in a
    YAML file, concurrently.

    \b
    Example:
      orchestrate run configs/topics.example.yaml
    """
    ctx.ensure_object(dict)["verbose"] = verbose
    configure_logging(verbose)


@main.command("run")
@click.argument("topics", type=click.Path(path_type=Path, dir_okay=False))
@run_shape_options
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
@shared_run_options
@output_options
@trace_options
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
    as_json: bool,
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
        quiet=quiet,
        as_json=as_json,
        start=lambda observers, control, progress: run_topics(
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
            progress=progress,
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
@output_options
@trace_options
def resume_run_command(
    run_id: str,
    out: Path,
    concurrency: int | None,
    max_cost: float | None,
    retry_passes: int | None,
    quiet: bool,
    as_json: bool,
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
        quiet=quiet,
        as_json=as_json,
        start=lambda observers, control, progress: resume_run(
            run_id,
            out=out,
            concurrency=concurrency,
            max_cost=max_cost,
            retry_passes=retry_passes,
            observers=observers,
            progress=progress,
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
@shared_run_options
@output_options
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
    as_json: bool,
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
            observers=[folder],
            progress=False if quiet else progress_observer(verbose=verbosity()),
        )
        modes = (report.sequential, report.parallel)
        failed = any(m is None or m.failed or m.skipped for m in modes)
        if as_json:
            click.echo(report.model_dump_json(indent=2))
        else:
            print_comparison(report, str(out / report.compare_id / "report.md"))
        return EXIT_FAILED if failed else EXIT_OK

    sys.exit(run_async(go, saved=folder.saved_message, as_json=as_json))


main.add_command(validate_command)
main.add_command(init_command)
main.add_command(runs_command)
main.add_command(schema_command)
main.add_command(completion_command)
main.add_command(bench_command)
main.add_command(serve_sim)
main.add_command(trace_command)
