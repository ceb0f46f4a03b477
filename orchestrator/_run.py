"""``run()``: the one async entry point the CLI, notebooks and tests share.

config → plan → provider and client → engine with observers → manifest.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ._client import ChatClient, ChatRequest
from ._engine import Engine
from ._errors import CallError, ConfigError, OrchestrateError, RunError
from ._events import Observer, RunFinished, RunStarted
from ._failed import FailedTopicsWriter
from ._files import create_run_dir, point_latest
from ._headers import rate_limit_info
from ._limits import Limit, Limiters
from ._manifest import ManifestObserver, RunManifest
from ._outputs import OutputWriter
from ._plan import Plan, load_plan
from ._provider import (
    Endpoint,
    OpenAISettings,
    choose_provider,
    open_client,
    openai_settings,
    redact_url,
)
from ._sim._settings import SimSettings, resolve_sim_settings


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

    ``rpm``/``tpm`` set the rate limits of every model (over the chain's ``limits:``);
    ``retry_passes`` overrides the chain's. ``client`` replaces the provider (for tests and
    custom transports); ``sim`` overrides simulated-provider settings like the ``serve-sim``
    flags do; ``environ`` defaults to ``os.environ``.
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
        sim=sim,
        client=client,
        environ=environ,
    )
    # Everything the user could have got wrong is checked; only now does a run folder appear.
    out = Path(out)
    run_id, run_dir = create_run_dir(out)
    point_latest(out, run_id)
    return await setup.execute(run_id, run_dir, observers=observers)


@dataclass(frozen=True)
class RunSetup:
    """A run that passed every check: the plan, its width, and the provider to reach.

    ``execute`` may be called more than once (``compare`` runs both modes from one setup);
    each call gets fresh limiters and, unless a client is passed, a fresh client — and for
    the simulated provider a fresh server — so one execution never warms up another.
    """

    plan: Plan
    width: int
    sequential: bool
    retry_passes: int
    provider: Literal["openai", "simulated", "custom"]
    openai_config: OpenAISettings | None
    sim_settings: SimSettings | None
    rpm: int | None
    tpm: int | None
    client: ChatClient | None = None  # given by the caller, instead of a provider

    @property
    def workers(self) -> int:
        return min(self.width, len(self.plan.topics))

    def with_width(self, width: int, *, sequential: bool = False) -> RunSetup:
        return replace(self, width=width, sequential=sequential)

    def limiters(self) -> Limiters:
        # The embedded simulator, started without limits, has none: nothing to learn, so
        # no first call goes alone to find out.
        sim = self.sim_settings
        known_unlimited = sim is not None and sim.rpm is sim.tpm is None
        return _limiters(self.plan, rpm=self.rpm, tpm=self.tpm, learn=not known_unlimited)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[ChatClient, Endpoint]]:
        """The client to call (started for this execution) and what it talks to."""
        if self.client is not None:
            url = redact_url(str(getattr(self.client, "base_url", "")))
            yield self.client, Endpoint("custom", url)
            return
        assert self.provider != "custom"
        async with open_client(
            self.provider,
            concurrency=self.workers,
            request_timeout=self.plan.chain.timeout,
            openai=self.openai_config,
            sim_settings=self.sim_settings,
        ) as (openai_client, endpoint):
            yield openai_client, endpoint

    async def execute(
        self,
        run_id: str,
        run_dir: Path,
        *,
        observers: Sequence[Observer] = (),
        write_outputs: bool = True,
        warm_up: bool = False,
    ) -> RunManifest:
        """Run every topic once (plus retry passes) into ``run_dir``; return the manifest.

        ``write_outputs=False`` keeps only ``run.json``: no articles, stage files or
        failed.yaml (``bench`` measures the schedule, not the prose). ``warm_up`` sends one
        tiny call first, outside the run's time, so that what a measurement compares does
        not include the first call's one-off costs: the process's first use of the SDK's
        code paths, and learning the provider's rate limits.
        """
        limiters = self.limiters()
        async with self.connect() as (chat, endpoint):
            if warm_up:
                await _warm_up(chat, limiters, endpoint.base_url, self.plan.stages[0].model)
            return await _execute(
                self.plan,
                client=chat,
                limiters=limiters,
                endpoint=endpoint,
                run_id=run_id,
                run_dir=run_dir,
                width=self.width,
                workers=self.workers,
                sequential=self.sequential,
                observers=observers,
                retry_passes=self.retry_passes,
                write_outputs=write_outputs,
            )


def prepare(
    topics: str | Path,
    *,
    chain: str | Path | None = None,
    concurrency: int | None = None,
    sequential: bool = False,
    provider: str = "auto",
    limit: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    retry_passes: int | None = None,
    sim: Mapping[str, Any] | None = None,
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunSetup:
    """Check everything a run needs — config, agents, topics, flags, provider settings —
    without making a call or creating a folder. Raises ``ConfigError``."""
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

    passes = plan.chain.retry_passes if retry_passes is None else retry_passes
    if passes < 0:
        raise ConfigError(f"must be 0 or more, got {passes}", field="--retry-passes")

    chosen: Literal["openai", "simulated", "custom"] = "custom"
    openai_config = sim_settings = None
    if client is None:
        chosen = choose_provider(provider, environ)
        if chosen == "openai":
            openai_config = openai_settings(environ)
        else:
            sim_settings = resolve_sim_settings(
                plan.chain.simulated,
                flags=sim,
                environ=environ,
                source=f"{plan.chain_file} simulated:",
            )
    setup = RunSetup(
        plan=plan,
        width=width,
        sequential=sequential,
        retry_passes=passes,
        provider=chosen,
        openai_config=openai_config,
        sim_settings=sim_settings,
        rpm=rpm,
        tpm=tpm,
        client=client,
    )
    setup.limiters()  # checks the limits against the stages now, not at the first call
    return setup


async def _warm_up(client: ChatClient, limiters: Limiters, endpoint: str, model: str) -> None:
    """One call of a single token; what it learns of the limits is kept, a failure is not
    (the run meets the same error on its first call, and reports it there)."""
    request = ChatRequest(
        model=model, messages=[{"role": "user", "content": "Reply with OK."}], max_tokens=1
    )
    try:
        response = await client.complete(request)
    except CallError as error:
        limiters.for_model(endpoint, model).answered(rate_limit_info(error.headers), ok=False)
    else:
        limiters.for_model(endpoint, model).answered(rate_limit_info(response.headers), ok=True)


def _limiters(plan: Plan, *, rpm: int | None, tpm: int | None, learn: bool) -> Limiters:
    """The run's limiters: ``--rpm/--tpm`` for every model, else the chain's ``limits:``.

    A stage whose max_tokens alone exceeds its model's whole TPM limit could never be sent:
    that is a config error now, not a hang later.
    """
    for name, value in (("--rpm", rpm), ("--tpm", tpm)):
        if value is not None and value < 1:
            raise ConfigError(f"must be at least 1, got {value}", field=name)
    used = sorted({stage.model for stage in plan.stages})
    for model in plan.chain.limits:
        if model not in used:
            close = difflib.get_close_matches(model, used, n=1)
            raise ConfigError(
                f"no stage uses the model {model!r}, so this limit would do nothing",
                file=plan.chain_file,
                field=f"limits.{model}",
                hint=f"did you mean {close[0]!r}?"
                if close
                else f"the stages use: {', '.join(used)}",
            )
    configured = {m: Limit(v.rpm, v.tpm) for m, v in plan.chain.limits.items()}
    if rpm is not None or tpm is not None:
        configured = {m: Limit(rpm or v.rpm, tpm or v.tpm) for m, v in configured.items()}
        default = Limit(rpm, tpm)
    else:
        default = Limit()
    for stage in plan.stages:
        limit = configured.get(stage.model, default)
        if limit.tpm and stage.max_tokens and stage.max_tokens > limit.tpm:
            raise ConfigError(
                f"stage {stage.name!r} asks for max_tokens {stage.max_tokens}, more than the "
                f"whole {limit.tpm} TPM limit of {stage.model}: no call could ever be sent",
                file=plan.chain_file,
                field=f"limits.{stage.model}.tpm" if tpm is None else "--tpm",
                hint="raise the TPM limit or lower max_tokens",
            )
    return Limiters(configured, default=default, window=plan.chain.limit_window, learn=learn)


async def _execute(
    plan: Plan,
    *,
    client: ChatClient,
    limiters: Limiters,
    endpoint: Endpoint,
    run_id: str,
    run_dir: Path,
    width: int,
    workers: int,
    sequential: bool,
    observers: Sequence[Observer],
    retry_passes: int,
    write_outputs: bool = True,
) -> RunManifest:
    manifest = ManifestObserver(
        run_dir / "run.json",
        plan.topics,
        topics_file=plan.topics_file,
        chain_file=plan.chain_file,
        output_dir=run_dir,
    )
    writers: list[Observer] = []
    if write_outputs:
        writers = [
            OutputWriter(run_dir),
            FailedTopicsWriter(run_dir / "failed.yaml", plan.topics, chain_file=plan.chain_file),
        ]
    engine = Engine(
        plan.stages,
        client=client,
        concurrency=workers,
        observers=[*writers, manifest, *observers],
        limiters=limiters,
        retry=plan.chain.retry,
        endpoint=endpoint.base_url,
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
        await engine.run(plan.topics, retry_passes=retry_passes)
    assert manifest.manifest is not None  # set by RunStarted above
    return manifest.manifest


@asynccontextmanager
async def _finish_on_exit(engine: Engine) -> AsyncIterator[None]:
    """Always close the run — ``finished``, ``interrupted`` (Ctrl-C, cancellation) or
    ``failed`` (results could not be saved) — so run.json never stays ``running``."""
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
    if engine.halt_reason is not None:
        await engine.emit(RunFinished(engine.clock(), "stopped", engine.halt_reason))
    else:
        await engine.emit(RunFinished(engine.clock(), "finished"))
