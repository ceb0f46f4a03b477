"""``orchestrate bench`` and ``orchestrate serve-sim``: the commands around the simulator."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import click

from ..config._sim_settings import SimSettings, resolve_sim_settings
from ..measure._bench import bench as run_bench
from ..measure._bench_model import BenchCell, BenchReport
from ..measure._bench_report import print_bench
from ..plan._plan import find_chain, load_chain
from ..provider._endpoints import PROVIDER_CHOICES
from ..provider.sim._server import SimServer
from ._support import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error, run_async


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


@click.command("bench")
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

    sys.exit(run_async(go, saved=saved))


def _sim_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--flag`` per SimSettings field, so the flags can never drift from the model."""
    for name, field in reversed(SimSettings.model_fields.items()):
        flag = f"--{name.replace('_', '-')}"
        help_text = f"{field.description} [default: {field.default}]"
        # `int | None` takes int; a bool is an on/off pair; unset flags stay None so the
        # environment and the chain file still apply.
        kinds = [a for a in get_args(field.annotation) if a is not type(None)]
        kind: Any = kinds[0] if kinds else field.annotation
        if get_origin(field.annotation) is Literal:  # a fixed set of words
            kind = click.Choice(get_args(field.annotation))
        if kind is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
        else:
            option = click.option(flag, name, type=kind, default=None, help=help_text)
        command = option(command)
    return command


@click.command("serve-sim")
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
        sys.exit(run_async(go, saved=lambda: "simulated provider stopped"))
    except OSError as exc:
        print_error(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        sys.exit(EXIT_USAGE)
