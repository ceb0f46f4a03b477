"""The ``orchestrate`` command: a thin shell over the library's ``run()``.

Exit codes: 0 all topics done · 1 some topics failed or were not run · 2 usage or config
error · 130 interrupted. Config errors print ``file:line: field: message`` and a hint, never
a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, get_args

import click
import structlog

from ._bench import BenchCell, BenchReport
from ._bench import bench as run_bench
from ._bench_report import print_bench
from ._compare import compare as compare_topics
from ._compare_report import print_comparison
from ._console import ProgressPrinter, print_summary, resume_command
from ._control import RunControl
from ._errors import ConfigError, RunError, StoreError
from ._events import Event, Observer, RunStarted
from ._manifest import RunManifest
from ._plan import find_chain, load_chain
from ._provider import PROVIDER_CHOICES
from ._run import resume as resume_run
from ._run import run as run_topics
from ._sim._server import SimServer
from ._sim._settings import SimSettings, resolve_sim_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
NOTHING_STARTED = "nothing was started"


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _error(message: str) -> None:
    click.secho("error: ", fg="red", err=True, nl=False)
    click.echo(message, err=True)


def _run_async(make: Callable[[], Coroutine[Any, Any, int]], *, saved: Callable[[], str]) -> int:
    """The one ``asyncio.run`` of the program, with errors turned into exit codes."""
    try:
        return asyncio.run(make())
    except ConfigError as exc:
        _error(exc.render())
        return EXIT_USAGE
    except StoreError as exc:
        # The store is opened before anything runs: then it is the user's to fix (exit 2).
        _error(f"{exc}\n  {saved()}")
        return EXIT_USAGE if saved() == NOTHING_STARTED else EXIT_FAILED
    except RunError as exc:
        _error(f"{exc}\n  {saved()}")
        return EXIT_FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo(f"\ninterrupted: {saved()}", err=True)
        return EXIT_INTERRUPTED


def _interruptible(control: RunControl) -> None:
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


def _finish(manifest: RunManifest) -> int:
    """Print the summary; the exit code the run deserves."""
    print_summary(manifest)
    if manifest.status == "interrupted":
        click.echo(
            f"interrupted: finished work is saved in {manifest.output_dir}\n"
            f"  to continue: {resume_command(manifest)}",
            err=True,
        )
        return EXIT_INTERRUPTED
    t = manifest.totals
    return EXIT_OK if t.failed == t.pending == t.skipped == 0 else EXIT_FAILED


class _RunFolder:
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
        return f"finished topics are saved in {self.out / self.run_id}"


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
    _configure_logging(verbose)


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

    folder = _RunFolder(out)

    async def go() -> int:
        control = RunControl()
        _interruptible(control)
        observers: list[Observer] = [folder] if quiet else [folder, ProgressPrinter()]
        manifest = await run_topics(
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
        )
        return _finish(manifest)

    sys.exit(_run_async(go, saved=folder.saved_message))


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
def resume_command_(
    run_id: str,
    out: Path,
    concurrency: int | None,
    max_cost: float | None,
    retry_passes: int | None,
    quiet: bool,
) -> None:
    """Continue run RUN_ID where it stopped: same id, same folder, same settings.

    Topics it finished stay as they are; stages it finished are not called again. It
    refuses when the topics, the chain or an agent file changed since the run started.

    \b
    Examples:
      orchestrate resume 20261122-153012-a3f9
      orchestrate resume 20261122-153012-a3f9 --out results -c 8 --max-cost 5
    """
    folder = _RunFolder(out)

    async def go() -> int:
        control = RunControl()
        _interruptible(control)
        observers: list[Observer] = [folder] if quiet else [folder, ProgressPrinter()]
        manifest = await resume_run(
            run_id,
            out=out,
            concurrency=concurrency,
            max_cost=max_cost,
            retry_passes=retry_passes,
            observers=observers,
            control=control,
        )
        return _finish(manifest)

    sys.exit(_run_async(go, saved=folder.saved_message))


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
    folder = _RunFolder(out, comparison=True)

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

    sys.exit(_run_async(go, saved=folder.saved_message))


class _IntList(click.ParamType):  # type: ignore[type-arg]
    """``10,50,100`` → ``[10, 50, 100]``, each at least 1."""

    name = "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers", param, ctx)
        if not numbers or min(numbers) < 1:
            self.fail(f"{value!r}: every number must be at least 1", param, ctx)
        return numbers


@main.command("bench")
@click.option(
    "--sizes",
    type=_IntList(),
    default="10,50,100",
    show_default=True,
    help="Batch sizes (topics per run).",
)
@click.option(
    "-c",
    "--concurrency",
    type=_IntList(),
    default="1,5,10,25",
    show_default=True,
    help="Concurrency levels to try for every batch size.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0, min_open=True),
    help="Simulated seconds per call [default: 10].",
)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0),
    help="Standard deviation of that latency, simulated seconds [default: 0].",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    help="Real seconds per simulated second, for every run [default: a scale per run, each "
    "call at least 0.12 + 0.06 × concurrency real seconds].",
)
@click.option(
    "--target",
    type=click.FloatRange(min=0, min_open=True),
    help="Real seconds the cheaper runs of the sweep share, in theory; runs never go below "
    "their floor, so the default sweep takes about 3.5 minutes [default: 120].",
)
@click.option(
    "--topics",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Topics file to draw from (needs as many as the largest size) [default: generated].",
)
@click.option(
    "--chain",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Chain file (default: ./configs/chain.yaml or the packaged default).",
)
@click.option(
    "--provider",
    type=click.Choice(PROVIDER_CHOICES),
    default="auto",
    show_default=True,
    help="auto: openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else simulated.",
)
@click.option(
    "--rpm", type=click.IntRange(min=1), help="Requests per minute for every model (as in run)."
)
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute for every model.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("outputs"),
    show_default=True,
    help="Outputs root: the sweep goes to OUT/bench-<id>/.",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per run; only the results.")
def bench_command(
    sizes: list[int],
    concurrency: list[int],
    latency: float | None,
    jitter: float | None,
    time_scale: float | None,
    target: float | None,
    topics: Path | None,
    chain: Path | None,
    provider: str,
    rpm: int | None,
    tpm: int | None,
    out: Path,
    quiet: bool,
) -> None:
    """Time a sweep of batch sizes × concurrency against the theory, with a plot.

    On the simulated provider every call takes --latency simulated seconds, so each run's
    theoretical time is ceil(topics / concurrency) × chain time. Writes OUT/bench-<id>/
    with bench.md, bench.svg, bench.csv and bench.json.

    \b
    Examples:
      orchestrate bench
      orchestrate bench --sizes 10,20 -c 1,2,4,8 --target 60
      orchestrate bench --latency 2 --jitter 0.5 --time-scale 0.05
      OPENAI_API_KEY=sk-... orchestrate bench --sizes 4 -c 1,4   # real calls: it costs
    """
    total = len(set(sizes)) * len(set(concurrency))
    started: list[str] = []  # the bench id, once the first run is done

    def progress(cell: BenchCell, report: BenchReport) -> None:
        if quiet:
            return
        done = len(report.cells)
        if done == 1:
            started.append(report.bench_id)
            click.echo(
                f"{report.bench_id}: {total} runs on the {report.provider} provider "
                f"at {report.endpoint}",
                err=True,
            )
        unit = "simulated s" if report.latency_s is not None else "s"
        click.echo(
            f"[{done:>{len(str(total))}}/{total}] {cell.topics} topics, -c {cell.concurrency}: "
            f"{cell.measured_s:,.1f} {unit} (theory {cell.theoretical_s:,.1f}, "
            f"{cell.deviation_pct:+.1f}%) in {cell.real_s:.2f} s",
            err=True,
        )

    async def go() -> int:
        report = await run_bench(
            sizes=sizes,
            concurrency=concurrency,
            latency=latency,
            jitter=jitter,
            time_scale=time_scale,
            target_s=target,
            chain=chain,
            topics=topics,
            provider=provider,
            rpm=rpm,
            tpm=tpm,
            out=out,
            on_cell=progress,
        )
        print_bench(report, str(out / report.bench_id))
        return EXIT_FAILED if any(c.failed for c in report.cells) else EXIT_OK

    def saved() -> str:
        if not started:
            return f"no run finished; see the newest {out}/bench-*/ folder"
        return f"the finished runs are saved in {out / started[0]}"

    sys.exit(_run_async(go, saved=saved))


def _sim_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--flag`` per SimSettings field, so the flags can never drift from the model."""
    for name, field in reversed(SimSettings.model_fields.items()):
        flag = f"--{name.replace('_', '-')}"
        help_text = f"{field.description} [default: {field.default}]"
        # `int | None` takes int; a bool is an on/off pair; unset flags stay None so the
        # environment and the chain file still apply.
        kinds = [a for a in get_args(field.annotation) if a is not type(None)]
        kind = kinds[0] if kinds else field.annotation
        if kind is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
        else:
            option = click.option(flag, name, type=kind, default=None, help=help_text)
        command = option(command)
    return command


@main.command("serve-sim")
@click.option(
    "--chain",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Chain file whose `simulated:` section to use (default: ./configs/chain.yaml "
    "or the packaged default).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0 picks a free one).",
)
@_sim_options
def serve_sim(chain: Path | None, host: str, port: int, **flags: Any) -> None:
    """Run the simulated OpenAI-compatible provider on its own, until Ctrl-C.

    Settings come from flags > ORCHESTRATE_SIM_* environment variables > the chain file's
    `simulated:` section > defaults.

    \b
    Example:
      orchestrate serve-sim --port 8000 --latency-mean 2 --time-scale 0.1
      OPENAI_BASE_URL=http://127.0.0.1:8000/v1 orchestrate run configs/topics.example.yaml
    """

    async def go() -> int:
        chain_path = find_chain(None, chain)
        _, config = load_chain(chain_path)
        settings = resolve_sim_settings(
            config.simulated, flags=flags, source=f"{chain_path} simulated:"
        )
        async with SimServer(settings, host=host, port=port) as server:
            click.echo(f"simulated provider listening on {server.base_url}", err=True)
            click.echo(f"  export OPENAI_BASE_URL={server.base_url}", err=True)
            await asyncio.Event().wait()
        return EXIT_OK

    try:
        sys.exit(_run_async(go, saved=lambda: "simulated provider stopped"))
    except OSError as exc:
        _error(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        sys.exit(EXIT_USAGE)
