"""One execution of a checked plan: the engine with its observers, from ``RunStarted`` to
``RunFinished``, whatever happens in between."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import OrchestrateError, RunError
from ..config._prices import Prices
from ..engine._budget import Budget
from ..engine._control import RunControl
from ..engine._engine import Engine
from ..engine._events import Observer, RunFinished, RunStarted, TopicRestored
from ..engine._isolate import SAVING_ERRORS, Faults, isolate, observer_name
from ..plan._plan import Plan
from ..provider._client import ChatClient, Route
from ..provider._endpoints import Endpoint
from ..provider._limits import Limiters
from ..report._failed import FailedTopicsWriter
from ..report._html import render_report
from ..report._manifest import ManifestObserver
from ..report._outputs import OutputWriter
from ..report._run_json import RunManifest
from ..report._trace_files import EVENTS_FILE, TraceFiles, TraceOptions
from ..store._resume import ResumeState
from ..store._reuse import StoreRecall
from ..store._store import Store
from ..trace._event_log import EventLog
from ..trace._spans import SpanRecorder
from ..trace._waterfall import from_spans
from ._persist import StoreObserver


async def execute_plan(
    plan: Plan,
    *,
    client: ChatClient,
    limiters: Limiters,
    endpoint: Endpoint,
    routes: Mapping[str, Route] | None = None,
    run_id: str,
    run_dir: Path,
    width: int,
    workers: int,
    sequential: bool,
    observers: Sequence[Observer],
    retry_passes: int,
    write_outputs: bool = True,
    prices: Prices | None = None,
    max_cost: float | None = None,
    budget_source: str = "--max-cost",
    fresh: bool = False,
    store: Store | None = None,
    resume: ResumeState | None = None,
    control: RunControl | None = None,
    tracing: TraceOptions | None = None,
) -> RunManifest:
    tracing = tracing or TraceOptions()
    faults = Faults()
    recorder = SpanRecorder(
        chain=plan.chain_file.stem, content=tracing.content, sinks=tracing.sinks
    )
    # The run's picture, drawn once when it ends: run.json takes its verdict, the report
    # draws it.
    picture = functools.cache(lambda: from_spans(recorder.spans, recorder.markers, run_id=run_id))
    manifest = ManifestObserver(
        run_dir / "run.json",
        plan.topics,
        topics_file=plan.topics_file,
        chain_file=plan.chain_file,
        output_dir=run_dir,
        parallelism=lambda: picture().parallelism,
        faults=faults,
        write_at_end=False,
    )
    # Saving finished work may stop the run (the store, the article files); reporting may
    # not: each reporting observer is switched off at its first failure (see _isolate).
    saving: list[Observer] = [StoreObserver(store, run_id, manifest)] if store else []
    reporting: list[tuple[str, Observer]] = []
    if write_outputs:
        saving.append(OutputWriter(run_dir))
        reporting = [
            (
                "failed.yaml",
                FailedTopicsWriter(
                    run_dir / "failed.yaml", plan.topics, chain_file=plan.chain_file
                ),
            ),
            (EVENTS_FILE, EventLog(run_dir / EVENTS_FILE, content=tracing.content)),
            (
                "trace files",
                TraceFiles(
                    run_dir,
                    recorder,
                    manifest,
                    run_id=run_id,
                    picture=picture,
                    report=render_report,
                ),
            ),
        ]
    given = [(observer_name(o), o) for o in observers]
    budget = None
    if max_cost is not None and prices is not None:
        spent = resume.spent if resume else 0.0
        budget = Budget(max_cost, plan.stages, prices, spent=spent, source=budget_source)
    engine = Engine(
        plan.stages,
        client=client,
        concurrency=workers,
        # The recorder first, so the manifest can measure the run's parallelism at its end;
        # then the store: an answer that was paid for is committed before anything else
        # can fail (a full disk writing the stage file); a resume rewrites the files.
        observers=[
            *isolate([("trace", recorder)], faults),
            manifest,
            *saving,
            *isolate(reporting, faults),
            *isolate(given, faults, fatal=SAVING_ERRORS),
        ],
        limiters=limiters,
        retry=plan.chain.retry,
        endpoint=endpoint.base_url,
        identity=endpoint.key,
        routes=routes,
        recall=StoreRecall(store, resumed=resume.stages if resume else None, fresh=fresh)
        if store
        else None,
        prices=prices,
        budget=budget,
    )
    await engine.emit(
        RunStarted(
            run_id=run_id,
            at=engine.clock(),
            wall_start=datetime.now().astimezone(),
            mode="sequential" if sequential else "parallel",
            concurrency=width,
            provider=endpoint.provider,
            endpoint=endpoint.base_url,
            endpoints={name: route.endpoint for name, route in (routes or {}).items()},
            topics=len(plan.topics),
            stages=[s.name for s in plan.stages],
            max_cost=max_cost,
            first_started=resume.run.started_at if resume else None,
            earlier_wall_s=resume.earlier_wall_s if resume else 0.0,
            session=resume.session if resume else 1,
        )
    )
    finished: dict[int, dict[str, Any]] = {}
    if resume is not None:
        finished = resume.finished
        for topic in plan.topics:
            if topic.index in finished:
                record, outputs = finished[topic.index], resume.outputs(topic.index)
                await engine.emit(TopicRestored(topic, "succeeded", record, outputs))
    todo = [t for t in plan.topics if t.index not in finished]
    # The control's own cancellation ends inside `watch`; the run is then closed as
    # interrupted because it was drained, and a cancel can never land on that closing.
    try:
        async with _finish_on_exit(engine), (control or RunControl()).watch(engine):
            await engine.run(todo, retry_passes=retry_passes)
    finally:
        # run.json's last write comes after every observer has seen the end — so it
        # records their faults — and even when one of them failed there.
        if manifest.ended:
            manifest.write_final()
    assert manifest.manifest is not None  # set by RunStarted above
    return manifest.manifest


@asynccontextmanager
async def _finish_on_exit(engine: Engine) -> AsyncIterator[None]:
    """Always close the run — ``finished``, ``stopped`` (quota, budget), ``interrupted``
    (drained by Ctrl-C, or cancelled) or ``failed`` (results could not be saved) — so
    run.json never stays ``running``."""
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.shield(engine.emit(RunFinished(engine.clock(), "interrupted")))
        raise
    except RunError:
        # Saving may be what failed; the original error is the one worth reporting.
        with contextlib.suppress(OrchestrateError):
            await engine.emit(RunFinished(engine.clock(), "failed"))
        raise
    if engine.brake.draining:  # even if every chain in flight finished within the grace
        await engine.emit(RunFinished(engine.clock(), "interrupted"))
    elif engine.stop_reason is not None:
        await engine.emit(RunFinished(engine.clock(), "stopped", engine.stop_reason))
    else:
        await engine.emit(RunFinished(engine.clock(), "finished"))
