"""``run()``: the one async entry point the CLI, notebooks and tests share.

config → plan → provider and client → engine with observers → manifest.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ._budget import Budget, check_budget
from ._client import ChatClient, ChatRequest
from ._control import RunControl
from ._engine import Engine
from ._errors import CallError, ConfigError, OrchestrateError, RunError
from ._events import Observer, RunFinished, RunStarted, TopicRestored
from ._failed import FailedTopicsWriter
from ._files import create_run_dir, point_latest
from ._headers import rate_limit_info
from ._limits import Limit, Limiters
from ._manifest import ManifestObserver, RunManifest
from ._outputs import OutputWriter
from ._persist import StoreObserver
from ._plan import Plan, load_plan
from ._prices import Prices
from ._provider import (
    Endpoint,
    OpenAISettings,
    choose_provider,
    open_client,
    openai_settings,
    redact_url,
)
from ._resume import ResumeState, find_resumable, load_state, plan_hash, session_settings
from ._reuse import StoreRecall
from ._sim._settings import SimSettings, resolve_sim_settings
from ._store import RunRecord, Store

STORE_FILE = "state.db"


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
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
    control: RunControl | None = None,
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
    async with Store.open(out / STORE_FILE) as store:
        state = None
        if resume:
            earlier = find_resumable(store, setup.plan.topics_file)
            if earlier is not None:
                state = load_state(store, earlier, setup.plan)
        return await _session(setup, out, store, state, observers=observers, control=control)


async def resume(
    run_id: str,
    *,
    out: str | Path = "outputs",
    concurrency: int | None = None,
    max_cost: float | None = None,
    retry_passes: int | None = None,
    observers: Sequence[Observer] = (),
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
    control: RunControl | None = None,
) -> RunManifest:
    """Continue run ``run_id`` of the outputs root ``out`` where it stopped, with the
    settings it started with (``concurrency``, ``max_cost`` and ``retry_passes`` may be
    changed). ConfigError when it cannot be resumed: unknown, finished, still running, or
    its topics, chain or agents changed since."""
    out = Path(out)
    async with Store.open(out / STORE_FILE) as store:
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
            provider="auto" if provider == "custom" else provider,
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
        state = load_state(store, record, setup.plan)
        return await _session(setup, out, store, state, observers=observers, control=control)


async def _session(
    setup: RunSetup,
    out: Path,
    store: Store,
    state: ResumeState | None,
    *,
    observers: Sequence[Observer],
    control: RunControl | None,
) -> RunManifest:
    """One session of a run: a new one, or a resumed one in its own folder."""
    if state is None:
        run_id, run_dir = create_run_dir(out)
        first_started = datetime.now(UTC)
    else:
        run_id, run_dir = state.run.run_id, Path(state.run.run_dir)
        first_started = state.run.started_at
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
    return await setup.execute(
        run_id, run_dir, observers=observers, store=store, resume=state, control=control
    )


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
    prices: Prices | None = None
    max_cost: float | None = None
    fresh: bool = False
    limit: int | None = None
    sim: Mapping[str, Any] | None = None  # the simulator flags as given (kept for resume)

    def settings(self) -> dict[str, Any]:
        """The flags this setup was made from, as JSON data: what ``resume`` runs with."""
        return {
            "topics": str(self.plan.topics_file.resolve()),
            "chain": str(self.plan.chain_file.resolve()),
            "concurrency": self.width,
            "sequential": self.sequential,
            "provider": self.provider,
            "limit": self.limit,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "retry_passes": self.retry_passes,
            "max_cost": self.max_cost,
            "fresh": self.fresh,
            "sim": dict(self.sim) if self.sim else None,
        }

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
        store: Store | None = None,
        resume: ResumeState | None = None,
        control: RunControl | None = None,
    ) -> RunManifest:
        """Run every topic once (plus retry passes) into ``run_dir``; return the manifest.

        ``write_outputs=False`` keeps only ``run.json``: no articles, stage files or
        failed.yaml (``bench`` measures the schedule, not the prose). ``warm_up`` sends one
        tiny call first, outside the run's time, so that what a measurement compares does
        not include the first call's one-off costs: the process's first use of the SDK's
        code paths, and learning the provider's rate limits.

        Without a ``store`` nothing is committed or reused: every stage is called (``compare``
        and ``bench`` measure calls). ``resume`` is what an earlier session finished.
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
                prices=self.prices,
                max_cost=self.max_cost,
                fresh=self.fresh,
                store=store,
                resume=resume,
                control=control,
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
    max_cost: float | None = None,
    fresh: bool = False,
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

    prices = Prices(plan.chain.prices)
    prices.unknown(stage.model for stage in plan.stages)  # loads the price list now, not mid-run
    budget = plan.chain.budget.max_cost if max_cost is None else max_cost
    check_budget(
        budget,
        plan.stages,
        prices,
        source="--max-cost" if max_cost is not None else f"{plan.chain_file}: budget.max_cost",
    )

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
        prices=prices,
        max_cost=budget,
        fresh=fresh,
        limit=limit,
        sim=sim,
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
    prices: Prices | None = None,
    max_cost: float | None = None,
    fresh: bool = False,
    store: Store | None = None,
    resume: ResumeState | None = None,
    control: RunControl | None = None,
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
    saving: list[Observer] = [StoreObserver(store, run_id, manifest)] if store else []
    budget = None
    if max_cost is not None and prices is not None:
        budget = Budget(max_cost, plan.stages, prices, spent=resume.spent if resume else 0.0)
    engine = Engine(
        plan.stages,
        client=client,
        concurrency=workers,
        observers=[*writers, manifest, *saving, *observers],
        limiters=limiters,
        retry=plan.chain.retry,
        endpoint=endpoint.base_url,
        identity=endpoint.key,
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
            topics=len(plan.topics),
            stages=[s.name for s in plan.stages],
            max_cost=max_cost,
            first_started=resume.run.started_at if resume else None,
            earlier_wall_s=resume.earlier_wall_s if resume else 0.0,
            session=resume.session if resume else 1,
        )
    )
    finished = resume.finished if resume else {}
    for topic in plan.topics:
        if topic.index in finished:
            await engine.emit(TopicRestored(topic, "succeeded", finished[topic.index]))
    todo = [t for t in plan.topics if t.index not in finished]
    async with (control or RunControl()).watch(engine), _finish_on_exit(engine):
        await engine.run(todo, retry_passes=retry_passes)
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
    if engine.stop_reason is not None:
        await engine.emit(RunFinished(engine.clock(), "stopped", engine.stop_reason))
    else:
        await engine.emit(RunFinished(engine.clock(), "finished"))
