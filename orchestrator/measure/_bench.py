"""``bench()``: a sweep of batch sizes × concurrency, each cell timed next to its theory.

On the simulated provider every call takes exactly ``latency`` simulated seconds (no
jitter by default), so a cell's theoretical time is ``ceil(topics / concurrency) × chain
time`` and any gap is the tool's own overhead. Time is scaled per cell (see
``time_scales``); results are reported in simulated seconds. Each cell is a
complete run of its own (fresh client and server, no reuse), keeping only its ``run.json``.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from .._errors import ConfigError
from .._files import atomic_write_text, create_run_dir
from ..engine._events import Observer
from ..provider._client import ChatClient
from ..session._setup import RunSetup, prepare
from ._bench_model import BenchCell, BenchReport
from ._bench_report import render_csv, render_markdown, render_svg
from ._schedule import rounds, uniform_time

DEFAULT_SIZES = (10, 50, 100)
DEFAULT_CONCURRENCY = (1, 5, 10, 25)
DEFAULT_LATENCY = 10.0
DEFAULT_TARGET_S = 120.0

# A scaled call must still last long enough for the tool's own work to stay small beside
# it. That work does not scale with simulated time: about a millisecond of CPU per call,
# queued when many calls are answered together, plus opening a connection per chain in
# flight when a run starts. So, by default, each run gets a time scale of its own, giving
# every call at least FLOOR_BASE + FLOOR_PER_CHAIN × concurrency real seconds, and calls in
# the cheap low-concurrency runs share what is left of the target. Results are reported
# in simulated seconds, which the scale does not change.
FLOOR_BASE_S = 0.12
FLOOR_PER_CHAIN_S = 0.06


CellDone = Callable[[BenchCell, BenchReport], Awaitable[None] | None]


async def bench(
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    latency: float | None = None,
    jitter: float | None = None,
    time_scale: float | None = None,
    target_s: float | None = None,
    chain: str | Path | None = None,
    topics: str | Path | None = None,
    provider: str = "auto",
    rpm: int | None = None,
    tpm: int | None = None,
    out: str | Path = "outputs",
    observers: Sequence[Observer] = (),
    on_cell: CellDone | None = None,
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> BenchReport:
    """Run the sweep and return its report; writes ``<out>/bench-<id>/`` with ``bench.md``,
    ``bench.svg``, ``bench.csv``, ``bench.json`` and each cell's ``run.json``.

    ``latency``/``jitter`` (simulated seconds per call, default 10 and 0) and
    ``time_scale`` apply to the simulated provider only. Without ``time_scale`` each cell
    gets a scale of its own: every call at least its floor of real seconds, the cheaper
    cells sharing ``target_s`` (default 120). With a real provider the theory uses each
    cell's median measured chain time. ``rpm``/``tpm`` limit every model as in ``run()``
    (the theory does not account for them). ``topics`` supplies the topics (as many as the
    largest size); by default they are generated. ``on_cell`` hears each finished cell.
    """
    _check_sweep(sizes, concurrency, latency, jitter, time_scale, target_s)
    sizes, concurrency = sorted(set(sizes)), sorted(set(concurrency))
    root = Path(out)
    simulator_flags = (latency, jitter, time_scale) != (None, None, None)
    latency = DEFAULT_LATENCY if latency is None else latency
    with tempfile.TemporaryDirectory(prefix="orchestrate-bench-") as tmp:
        generated = Path(tmp) / "topics.yaml"
        if topics is None:
            generated.write_text(_generated_topics(max(sizes)), encoding="utf-8")
        # Every check runs before the bench folder appears, on every topic the sweep uses;
        # each run then takes the first n topics and its own width and time scale.
        probe = prepare(
            generated if topics is None else topics,
            chain=chain,
            provider=provider,
            limit=max(sizes),
            rpm=rpm,
            tpm=tpm,
            sim={
                "latency_mean": latency,
                "latency_jitter": 0.0 if jitter is None else jitter,
                "per_output_token": 0.0,
            },
            client=client,
            environ=environ,
        )
        if len(probe.plan.topics) < max(sizes):
            raise ConfigError(
                f"has {len(probe.plan.topics)} topics; the largest batch size needs {max(sizes)}",
                file=probe.plan.topics_file,
                hint="add topics, lower --sizes, or leave out --topics to generate them",
            )
        simulated = probe.provider == "simulated"
        if not simulated and simulator_flags:
            raise ConfigError(
                f"applies to the simulated provider only; this bench runs on {probe.provider}",
                field="--latency/--jitter/--time-scale",
                hint="drop those flags, or pass --provider simulated",
            )
        bench_id, bench_dir = create_run_dir(root, prefix="bench-")
        if topics is None:  # kept beside the results, and named in each run.json
            shutil.copyfile(generated, bench_dir / "topics.yaml")
            probe = replace(probe, plan=replace(probe.plan, topics_file=bench_dir / "topics.yaml"))
    stages = len(probe.plan.stages)
    chain_time = stages * latency
    cells = [(n, c) for n in sizes for c in concurrency]
    if not simulated:
        scales = dict.fromkeys(cells, 1.0)
    elif time_scale is not None:
        scales = dict.fromkeys(cells, time_scale)
    else:
        target = DEFAULT_TARGET_S if target_s is None else target_s
        scales = time_scales(cells, stages=stages, latency=latency, target_s=target)
    jitter = (0.0 if jitter is None else jitter) if simulated else None

    report = BenchReport(
        bench_id=bench_id,
        created_at=datetime.now().astimezone(),
        provider=probe.provider,
        endpoint="",
        planned=len(cells),
        chain_file=str(probe.plan.chain_file),
        stages=[s.name for s in probe.plan.stages],
        sizes=list(sizes),
        concurrency=list(concurrency),
        latency_s=latency if simulated else None,
        jitter_s=jitter,
        time_scale=time_scale if simulated else 1.0,
        scaling=(
            "real time"
            if not simulated
            else f"one simulated second lasting {time_scale:.4g} real seconds"
            if time_scale is not None
            else f"time-scaled per run so each call lasts at least {FLOOR_BASE_S:g} + "
            f"{FLOOR_PER_CHAIN_S:g} × concurrency real seconds "
            f"(the {min(scales.values()):.4g}–{max(scales.values()):.4g} real seconds per "
            "simulated second of each run are in bench.csv)"
        ),
        theory=(
            f"ceil(topics ÷ concurrency) × chain time ({stages} stages × {latency:g} s "
            f"= {chain_time:g} s)"
            if simulated
            else "ceil(topics ÷ concurrency) × the cell's median chain time"
        ),
    )
    for n, c in cells:
        setup = _cell_setup(probe, topics=n, width=c, time_scale=scales[n, c])
        cell, endpoint = await _run_cell(
            setup,
            bench_dir,
            time_scale=scales[n, c],
            chain_time=chain_time,
            simulated=simulated,
            observers=observers,
        )
        report.cells.append(cell)
        # Each run starts a simulated server of its own, on a port of its own.
        report.endpoint = "127.0.0.1, a simulated server per run" if simulated else endpoint
        if on_cell is not None:
            done = on_cell(cell, report)
            if done is not None:
                await done
        _write(bench_dir, report)  # partial results survive an interrupted sweep
    return report


async def _run_cell(
    setup: RunSetup,
    bench_dir: Path,
    *,
    time_scale: float,
    chain_time: float,
    simulated: bool,
    observers: Sequence[Observer],
) -> tuple[BenchCell, str]:
    n, c = len(setup.plan.topics), setup.width
    name = f"n{n}-c{c}"
    manifest = await setup.execute(
        f"{bench_dir.name}-{name}",
        bench_dir / "cells" / name,
        observers=observers,
        write_outputs=False,
        warm_up=True,  # the first call's one-off costs are not the schedule's
    )
    real = manifest.wall_time_s or 0.0
    measured = real / time_scale
    if not simulated:
        chains = [t.latency_s for t in manifest.topics if t.latency_s is not None]
        chain_time = statistics.median(chains) if chains else 0.0
    theoretical = uniform_time(n, c, chain_time)
    cell = BenchCell(
        topics=n,
        concurrency=c,
        measured_s=round(measured, 3),
        theoretical_s=round(theoretical, 3),
        deviation_pct=round(100 * (measured / theoretical - 1), 2) if theoretical else 0.0,
        chain_time_s=round(chain_time, 3),
        real_s=round(real, 3),
        time_scale=round(time_scale, 6),
        calls=manifest.totals.calls,
        failed=manifest.totals.failed,
        run_json=f"cells/{name}/run.json",
    )
    return cell, manifest.endpoint


def time_scales(
    cells: Sequence[tuple[int, int]], *, stages: int, latency: float, target_s: float
) -> dict[tuple[int, int], float]:
    """A time scale per (topics, concurrency) run: each call at least its floor of real
    seconds, and the sweep's theory as close to ``target_s`` as the floors allow."""
    floors = {(n, c): (FLOOR_BASE_S + FLOOR_PER_CHAIN_S * c) / latency for n, c in cells}

    def total(base: float) -> float:
        return sum(rounds(n, c) * stages * latency * max(base, floors[n, c]) for n, c in cells)

    lo, hi = 0.0, target_s / (stages * latency)  # at `hi` one round alone lasts target_s
    if total(lo) < target_s:
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if total(mid) < target_s else (lo, mid)
    return {cell: max(lo, floors[cell]) for cell in cells}


def _write(bench_dir: Path, report: BenchReport) -> None:
    atomic_write_text(bench_dir / "bench.json", report.model_dump_json(indent=2) + "\n")
    atomic_write_text(bench_dir / "bench.csv", render_csv(report))
    svg = render_svg(report)
    if svg is not None:
        atomic_write_text(bench_dir / "bench.svg", svg)
    atomic_write_text(bench_dir / "bench.md", render_markdown(report))


def _check_sweep(
    sizes: Sequence[int],
    concurrency: Sequence[int],
    latency: float | None,
    jitter: float | None,
    time_scale: float | None,
    target_s: float | None,
) -> None:
    def refuse(field: str, message: str, hint: str) -> None:
        raise ConfigError(message, field=field, hint=hint)

    if not sizes or any(n < 1 for n in sizes):
        refuse("--sizes", f"every batch size must be at least 1, got {list(sizes)}", "e.g. 10,50")
    if not concurrency or any(c < 1 for c in concurrency):
        refuse(
            "--concurrency",
            f"every concurrency must be at least 1, got {list(concurrency)}",
            "e.g. 1,5,10",
        )
    if latency is not None and latency <= 0:
        refuse("--latency", f"must be above 0, got {latency}", "the theory divides by it")
    if jitter is not None and jitter < 0:
        refuse("--jitter", f"must be 0 or more, got {jitter}", "0 makes every call equal")
    if time_scale is not None and time_scale < 1e-6:
        refuse(
            "--time-scale",
            f"must be at least 0.000001, got {time_scale}",
            "0.01 makes a simulated second last 10 ms",
        )
    if target_s is not None and target_s <= 0:
        refuse("--target", f"must be above 0 seconds, got {target_s}", "the default is 120")
    if target_s is not None and time_scale is not None:
        refuse(
            "--target",
            "cannot be combined with --time-scale, which fixes every run's scale",
            "drop one of them",
        )


def _cell_setup(setup: RunSetup, *, topics: int, width: int, time_scale: float) -> RunSetup:
    """The checked sweep narrowed to one run: its first ``topics`` topics, ``width`` chains
    at once, and (simulated) its own time scale."""
    sim = setup.sim_settings
    if sim is not None:
        sim = sim.model_copy(update={"time_scale": time_scale})
    plan = replace(setup.plan, topics=setup.plan.topics[:topics])
    return replace(setup, plan=plan, width=width, sim_settings=sim)


def _generated_topics(count: int) -> str:
    lines = [
        "# Generated by `orchestrate bench`: one topic per chain in the largest batch.",
        "topics:",
    ]
    lines += [
        f'  - "Benchmark topic {i:04d}: the history of item {i}"' for i in range(1, count + 1)
    ]
    return "\n".join(lines) + "\n"
