"""``run()``: the one async entry point the CLI, notebooks and tests share.

config → plan → provider and client → engine with observers → manifest.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ._client import ChatClient
from ._engine import Engine
from ._errors import ConfigError
from ._events import Observer, RunFinished, RunStarted
from ._files import create_run_dir, point_latest
from ._manifest import ManifestObserver, RunManifest
from ._outputs import OutputWriter
from ._plan import Plan, load_plan
from ._provider import Endpoint, choose_provider, open_client
from ._sim._settings import resolve_sim_settings


async def run(
    topics: str | Path,
    *,
    chain: str | Path | None = None,
    out: str | Path = "outputs",
    concurrency: int | None = None,
    sequential: bool = False,
    provider: str = "auto",
    limit: int | None = None,
    sim: Mapping[str, Any] | None = None,
    observers: Sequence[Observer] = (),
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunManifest:
    """Run the chain over every topic in ``topics`` and return the run's manifest.

    Writes ``<out>/<run-id>/`` (articles, stage outputs, ``run.json``) and points
    ``<out>/latest`` at it. Raises ``ConfigError`` — before any call is made — when a
    config, agent or topics file is wrong. A failing topic does not raise: it is recorded
    in the manifest as ``failed``.

    ``client`` replaces the provider (for tests and custom transports); ``sim`` overrides
    simulated-provider settings like the ``serve-sim`` flags do; ``environ`` defaults to
    ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    plan = load_plan(topics, chain=chain, limit=limit)
    if sequential and concurrency not in (None, 1):
        raise ConfigError(
            "--sequential runs one chain at a time",
            field="--concurrency",
            hint="drop --concurrency, or drop --sequential",
        )
    width = 1 if sequential else (plan.chain.concurrency if concurrency is None else concurrency)
    if width < 1:
        raise ConfigError("must be at least 1", field="--concurrency")

    async with AsyncExitStack() as stack:
        endpoint: Endpoint
        if client is None:
            chosen = choose_provider(provider, environ)
            sim_settings = None
            if chosen == "simulated":
                sim_settings = resolve_sim_settings(
                    plan.chain.simulated,
                    flags=sim,
                    environ=environ,
                    source=f"{plan.chain_file} simulated:",
                )
            openai_client, endpoint = await stack.enter_async_context(
                open_client(
                    chosen,
                    concurrency=min(width, len(plan.topics)),
                    request_timeout=plan.chain.timeout,
                    environ=environ,
                    sim_settings=sim_settings,
                )
            )
            client = openai_client
        else:
            endpoint = Endpoint("custom", str(getattr(client, "base_url", "")))
        manifest = await _execute(plan, client, endpoint, Path(out), width, sequential, observers)
    return manifest


async def _execute(
    plan: Plan,
    client: ChatClient,
    endpoint: Endpoint,
    out: Path,
    width: int,
    sequential: bool,
    observers: Sequence[Observer],
) -> RunManifest:
    run_id, run_dir = create_run_dir(out)
    point_latest(out, run_id)
    manifest = ManifestObserver(
        run_dir / "run.json",
        plan.topics,
        topics_file=plan.topics_file,
        chain_file=plan.chain_file,
        output_dir=run_dir.resolve(),
    )
    engine = Engine(
        plan.stages,
        client=client,
        concurrency=min(width, len(plan.topics)),
        observers=[OutputWriter(run_dir), manifest, *observers],
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
            topics=len(plan.topics),
            stages=[s.name for s in plan.stages],
        )
    )
    async with _finish_on_exit(engine):
        await engine.run_pass(plan.topics)
    assert manifest.manifest is not None  # set by RunStarted above
    return manifest.manifest


@asynccontextmanager
async def _finish_on_exit(engine: Engine) -> AsyncIterator[None]:
    """Always close the run: ``finished`` normally, ``interrupted`` on Ctrl-C/cancellation,
    so run.json never stays ``running`` for a run that has stopped."""
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.shield(engine.emit(RunFinished(engine.clock(), "interrupted")))
        raise
    await engine.emit(RunFinished(engine.clock(), "finished"))
