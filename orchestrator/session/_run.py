"""``run()`` and ``resume()``: the async entry points the CLI, notebooks and tests share.

config → plan (``prepare``) → the store and a run folder → provider and client → engine with
observers → manifest.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._files import create_run_dir, point_latest
from ..engine._control import RunControl
from ..engine._events import Observer
from ..provider._client import ChatClient
from ..report._run_json import RunManifest, TraceExport, write_manifest
from ..report._trace_files import TraceOptions
from ..store._records import RunRecord
from ..store._resume import ResumeState, find_resumable, load_state, plan_hash, session_settings
from ..store._store import Store
from ..trace._otel import OtlpExport, otlp_export
from ._progress import with_progress
from ._setup import RunSetup, prepare

STORE_FILE = "state.db"
EXPORT_FLUSH_LIMIT = 2.0  # seconds the span export may take to deliver what is left


async def run(
    topics: str | Path,
    *,
    chain: str | Path | None = None,
    out: str | Path = "outputs",
    concurrency: int | None = None,
    sequential: bool = False,
    provider: str = "auto",
    limit: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    retry_passes: int | None = None,
    max_cost: float | None = None,
    resume: bool = False,
    fresh: bool = False,
    sim: Mapping[str, Any] | None = None,
    observers: Sequence[Observer] = (),
    progress: Observer | bool = True,
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
    control: RunControl | None = None,
    trace_content: bool = False,
    otlp_endpoint: str | None = None,
) -> RunManifest:
    """Run the chain over every topic in ``topics`` and return the run's manifest.

    Writes ``<out>/<run-id>/`` (articles, stage outputs, ``run.json``) and points
    ``<out>/latest`` at it. Raises ``ConfigError`` — before any call is made — when a
    config, agent or topics file is wrong. A failing topic does not raise: it is recorded
    in the manifest as ``failed``.

    ``rpm``/``tpm`` set the rate limits of every model (over the chain's ``limits:``);
    ``retry_passes`` overrides the chain's. ``client`` replaces the provider (for tests and
    custom transports); ``sim`` overrides simulated-provider settings like the ``serve-sim``
    flags do; ``environ`` defaults to ``os.environ``.

    Every finished stage is committed to ``<out>/state.db`` before its chain goes on. A
    stage whose request was answered before is served from there (``fresh=True`` calls it
    again). ``resume=True`` continues the newest unfinished run of the same topics file, in
    its own folder, if there is one. ``max_cost`` (USD) starts no chain that could pass it.
    ``control`` lets a signal handler interrupt the run gracefully (see ``RunControl``).

    ``observers`` hear every event of the run (see ``Observer``). ``progress`` shows it
    while it runs on stderr: live bars on a terminal, plain lines at a modest rate anywhere
    else, a notebook included (``False``: nothing; or pass an observer of your own).

    Every run writes ``trace.json``, ``report.html`` and ``events.jsonl``; prompts and
    outputs appear in them only with ``trace_content=True``. ``otlp_endpoint`` (an OTLP/HTTP
    traces URL; needs the ``otel`` extra) also exports every span as it ends.
    """
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
        fresh=fresh,
        sim=sim,
        client=client,
        environ=environ,
    )
    # Everything the user could have got wrong is checked; only now do the store and a run
    # folder appear.
    out = Path(out)
    async with _exporting(otlp_endpoint) as export, await _open_store(out) as store:
        state = None
        if resume:
            earlier = find_resumable(store, setup.plan.topics_file)
            if earlier is not None:
                state = load_state(store, earlier, setup.plan, setup.settings())
                saved_budget = earlier.settings.get("max_cost")
                if setup.max_cost is None and saved_budget is not None:
                    # The run's own budget, as its first session was given it.
                    setup = replace(setup, max_cost=saved_budget, budget_source="--max-cost")
        return await _session(
            setup,
            out,
            store,
            state,
            observers=with_progress(observers, progress),
            control=control,
            trace_content=trace_content,
            export=export,
        )


@asynccontextmanager
async def _exporting(endpoint: str | None) -> AsyncIterator[OtlpExport | None]:
    """The span export to ``endpoint`` (ConfigError before anything starts if it cannot
    be), shut down however the session ends. A session that ends normally flushes it first
    and records what it delivered (``_flush``)."""
    export = otlp_export(endpoint) if endpoint else None
    try:
        yield export
    finally:
        if export is not None and not export.closed:
            await asyncio.to_thread(export.close, EXPORT_FLUSH_LIMIT)


async def _flush(export: OtlpExport, manifest: RunManifest) -> None:
    """Deliver what is left of the export, within its limit and outside the run's wall
    time, and record in run.json how many spans reached the endpoint."""
    report = await asyncio.to_thread(export.close, EXPORT_FLUSH_LIMIT)
    manifest.trace_export = TraceExport(
        endpoint=report.endpoint,
        spans=report.spans,
        delivered=report.delivered,
        undelivered=report.undelivered,
        flush_s=round(report.flush_s, 3),
        error=report.error,
        dropped=report.dropped,
        failed=report.failed,
    )
    write_manifest(Path(manifest.output_dir) / "run.json", manifest)


async def _open_store(out: Path, *, must_exist: bool = False) -> Store:
    """The outputs root's store, opened off the event loop: a locked file may take up to
    its busy timeout, and Ctrl-C must still be heard meanwhile."""
    path = out / STORE_FILE
    if must_exist and not path.is_file():
        raise ConfigError(
            f"no state store at {path}: no run was made with this --out",
            field="--out",
            hint="pass the --out the run used",
        )
    return await asyncio.to_thread(Store.open, path)


async def resume(
    run_id: str,
    *,
    out: str | Path = "outputs",
    concurrency: int | None = None,
    max_cost: float | None = None,
    retry_passes: int | None = None,
    observers: Sequence[Observer] = (),
    progress: Observer | bool = True,
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
    control: RunControl | None = None,
    trace_content: bool = False,
    otlp_endpoint: str | None = None,
) -> RunManifest:
    """Continue run ``run_id`` of the outputs root ``out`` where it stopped, with the
    settings it started with (``concurrency``, ``max_cost`` and ``retry_passes`` may be
    changed). ConfigError when it cannot be resumed: unknown, finished, still running, or
    its topics, chain or agents changed since. Observers, progress and tracing work as in
    ``run()``; the trace
    files describe this session."""
    out = Path(out)
    async with (
        _exporting(otlp_endpoint) as export,
        await _open_store(out, must_exist=True) as store,
    ):
        record = store.get_run(run_id)
        if record is None:
            known = [r.run_id for r in store.runs()[:5]]
            raise ConfigError(
                f"no run {run_id!r} in {out / STORE_FILE}",
                field="RUN_ID",
                hint=f"recent runs: {', '.join(known)}" if known else "check --out",
            )
        saved = record.settings
        provider = saved.get("provider", "auto")
        if provider == "custom" and client is None:
            raise ConfigError(
                f"run {run_id} used a client passed in by a program; pass it again",
                field="client",
            )
        setup = prepare(
            saved["topics"],
            chain=saved["chain"],
            concurrency=concurrency if concurrency is not None else saved.get("concurrency"),
            sequential=bool(saved.get("sequential")) and concurrency in (None, 1),
            # As the run asked (auto stays auto): its resolved provider would lose the
            # stages with an endpoint of their own, which only --provider simulated drops.
            provider="auto" if provider == "custom" else saved.get("provider_requested", provider),
            limit=saved.get("limit"),
            rpm=saved.get("rpm"),
            tpm=saved.get("tpm"),
            retry_passes=retry_passes if retry_passes is not None else saved.get("retry_passes"),
            max_cost=max_cost if max_cost is not None else saved.get("max_cost"),
            fresh=bool(saved.get("fresh")),
            sim=saved.get("sim"),
            client=client,
            environ=environ,
        )
        state = load_state(store, record, setup.plan, setup.settings())
        return await _session(
            setup,
            out,
            store,
            state,
            observers=with_progress(observers, progress),
            control=control,
            trace_content=trace_content,
            export=export,
        )


async def _session(
    setup: RunSetup,
    out: Path,
    store: Store,
    state: ResumeState | None,
    *,
    observers: Sequence[Observer],
    control: RunControl | None,
    trace_content: bool = False,
    export: OtlpExport | None = None,
) -> RunManifest:
    """One session of a run: a new one, or a resumed one in its own folder."""
    if state is None:
        run_id, run_dir = create_run_dir(out)
        first_started = datetime.now(UTC)
    else:
        run_id, run_dir = state.run.run_id, Path(state.run.run_dir)
        first_started = state.run.started_at
        claimed = await asyncio.to_thread(
            store.claim_run, state.run, pid=os.getpid(), host=socket.gethostname()
        )
        if not claimed:
            raise ConfigError(
                f"run {run_id} is being resumed by another process right now",
                field="RUN_ID",
                hint="wait for that session to end; `orchestrate runs` shows its status",
            )
    point_latest(out, run_id)
    now = datetime.now(UTC)
    store.start_run(
        RunRecord(
            run_id=run_id,
            topics_file=str(setup.plan.topics_file.resolve()),
            plan_hash=plan_hash(setup.plan),
            run_dir=str(run_dir),
            status="running",
            started_at=first_started,
            updated_at=now,
            pid=os.getpid(),
            host=socket.gethostname(),
            settings=session_settings(setup.settings(), state, now),
        )
    )
    tracing = TraceOptions(content=trace_content, sinks=(export,) if export else ())
    try:
        manifest = await setup.execute(
            run_id,
            run_dir,
            observers=observers,
            store=store,
            resume=state,
            control=control,
            tracing=tracing,
        )
    except asyncio.CancelledError:
        # Interrupted before the run itself began (the provider starting): say so, rather
        # than leave a row that looks like a crash. Once begun, the run closes itself.
        await asyncio.shield(store.set_status(run_id, "interrupted"))
        raise
    if export is not None:
        await _flush(export, manifest)
    return manifest
