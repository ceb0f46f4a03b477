"""A run that passed every check: ``prepare()`` loads and checks everything a run needs,
without a call or a folder, and ``RunSetup.execute()`` runs it — once, or several times
(``compare`` runs both of its modes from one setup).
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .._errors import CallError, ConfigError
from ..config._prices import Prices
from ..config._sim_settings import SimSettings, resolve_sim_settings
from ..engine._budget import check_budget
from ..engine._control import RunControl
from ..engine._events import Observer
from ..plan._plan import Plan, load_plan
from ..provider._client import ChatClient, ChatRequest, Route
from ..provider._endpoints import (
    Endpoint,
    OpenAISettings,
    choose_provider,
    open_client,
    openai_settings,
    redact_url,
    stage_endpoint_settings,
)
from ..provider._headers import rate_limit_info
from ..provider._limits import Limit, Limiters
from ..report._run_json import RunManifest
from ..report._trace_files import TraceOptions
from ..store._resume import ResumeState
from ..store._store import Store
from ._execute import execute_plan


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
    budget_source: str = "--max-cost"  # or the chain file's budget.max_cost
    fresh: bool = False
    limit: int | None = None
    sim: Mapping[str, Any] | None = None  # the simulator flags as given (kept for resume)
    # Stages whose chain or stage names its own endpoint (base_url/api_key_env): each such
    # endpoint gets its own client and rate limiters. Empty on the simulated provider.
    stage_endpoints: Mapping[str, OpenAISettings] = field(default_factory=dict)
    requested: str = "auto"  # --provider as given: what resume resolves again

    def settings(self) -> dict[str, Any]:
        """The flags this setup was made from, as JSON data: what ``resume`` runs with."""
        return {
            "topics": str(self.plan.topics_file.resolve()),
            "chain": str(self.plan.chain_file.resolve()),
            "concurrency": self.width,
            "sequential": self.sequential,
            "provider": self.provider,
            "provider_requested": self.requested,
            "endpoint": self.endpoint_label,
            "limit": self.limit,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "retry_passes": self.retry_passes,
            "max_cost": self.max_cost,
            "fresh": self.fresh,
            "sim": dict(self.sim) if self.sim else None,
        }

    @property
    def endpoints(self) -> dict[str, str]:
        """The stages with an endpoint of their own, and its URL (no secret in it)."""
        return {name: redact_url(o.base_url) for name, o in self.stage_endpoints.items()}

    @property
    def uses_default(self) -> bool:
        """Whether any stage's calls go to the run's provider (not all have their own)."""
        return any(stage.name not in self.stage_endpoints for stage in self.plan.stages)

    @property
    def endpoint_label(self) -> str:
        """Where the answers come from, as settings record it (no secret in it)."""
        if self.client is not None:
            return f"custom:{type(self.client).__qualname__}"
        if self.openai_config is not None:
            return redact_url(self.openai_config.base_url)
        return "simulated"

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
    async def connect(self) -> AsyncIterator[tuple[ChatClient, Endpoint, dict[str, Route]]]:
        """The client to call (started for this execution), what it talks to, and the
        routes of the stages with an endpoint of their own: one client per endpoint."""
        async with contextlib.AsyncExitStack() as stack:
            routes: dict[str, Route] = {}
            clients: dict[tuple[str, str], Route] = {}
            for name, settings in self.stage_endpoints.items():
                key = (settings.base_url, settings.api_key)
                if key not in clients:
                    chat, endpoint = await stack.enter_async_context(
                        open_client(
                            "openai",
                            concurrency=self.workers,
                            request_timeout=self.plan.chain.timeout,
                            openai=settings,
                        )
                    )
                    clients[key] = Route(chat, endpoint.base_url, endpoint.key)
                routes[name] = clients[key]
            if self.client is not None:
                url = redact_url(str(getattr(self.client, "base_url", "")))
                # Two clients without a base URL must not share stored answers: name the class.
                yield self.client, Endpoint("custom", url, f"{self.endpoint_label}:{url}"), {}
                return
            assert self.provider != "custom"
            if not self.uses_default:  # every stage has its own: nothing else to start
                first = routes[self.plan.stages[0].name]
                yield first.client, Endpoint("openai", first.endpoint), routes
                return
            chat, endpoint = await stack.enter_async_context(
                open_client(
                    self.provider,
                    concurrency=self.workers,
                    request_timeout=self.plan.chain.timeout,
                    openai=self.openai_config,
                    sim_settings=self.sim_settings,
                )
            )
            yield chat, endpoint, routes

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
        tracing: TraceOptions | None = None,
    ) -> RunManifest:
        """Run every topic once (plus retry passes) into ``run_dir``; return the manifest.

        ``write_outputs=False`` keeps only ``run.json``: no articles, stage files or
        failed.yaml (``bench`` measures the schedule, not the prose). ``warm_up`` sends one
        tiny call first, outside the run's time, so that what a measurement compares does
        not include the first call's one-off costs: the process's first use of the SDK's
        code paths, and learning the provider's rate limits.

        Without a ``store`` nothing is committed or reused: every stage is called (``compare``
        and ``bench`` measure calls). ``resume`` is what an earlier session finished.
        ``tracing`` says whether spans record content and where else they go (OpenTelemetry).
        """
        limiters = self.limiters()
        async with self.connect() as (chat, endpoint, routes):
            if warm_up:
                first = self.plan.stages[0]
                route = routes.get(first.name, Route(chat, endpoint.base_url, endpoint.key))
                await _warm_up(route.client, limiters, route.endpoint, first.model)
            return await execute_plan(
                self.plan,
                client=chat,
                limiters=limiters,
                endpoint=endpoint,
                routes=routes,
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
                budget_source=self.budget_source,
                fresh=self.fresh,
                store=store,
                resume=resume,
                control=control,
                tracing=tracing,
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
    budget_source = "--max-cost" if max_cost is not None else f"{plan.chain_file}: budget.max_cost"
    check_budget(budget, plan.stages, prices, source=budget_source)
    _check_models_used(plan, "prices", plan.chain.prices, "price")

    chosen: Literal["openai", "simulated", "custom"] = "custom"
    openai_config = sim_settings = None
    stage_endpoints: dict[str, OpenAISettings] = {}
    if client is None:
        chosen = choose_provider(provider, environ)
        # --provider simulated answers every stage itself, so a chain with real endpoints
        # can be tried keyless; otherwise a stage's own endpoint is its own.
        if provider != "simulated":
            stage_endpoints = {
                stage.name: stage_endpoint_settings(stage.endpoint, environ)
                for stage in plan.stages
                if stage.endpoint is not None
            }
        if len(stage_endpoints) == len(plan.stages):
            chosen = "openai"  # every stage has its own endpoint; the default is unused
        elif chosen == "openai":
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
        budget_source=budget_source,
        fresh=fresh,
        limit=limit,
        sim=sim,
        stage_endpoints=stage_endpoints,
        requested=provider,
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


def _check_models_used(plan: Plan, section: str, models: Iterable[str], what: str) -> None:
    """A ``limits:`` or ``prices:`` entry for a model no stage uses would do nothing: most
    likely a typo, so say which model was meant."""
    used = sorted({stage.model for stage in plan.stages})
    for model in models:
        if model not in used:
            close = difflib.get_close_matches(model, used, n=1)
            raise ConfigError(
                f"no stage uses the model {model!r}, so this {what} would do nothing",
                file=plan.chain_file,
                field=f"{section}.{model}",
                hint=f"did you mean {close[0]!r}?"
                if close
                else f"the stages use: {', '.join(used)}",
            )


def _limiters(plan: Plan, *, rpm: int | None, tpm: int | None, learn: bool) -> Limiters:
    """The run's limiters: ``--rpm/--tpm`` for every model, else the chain's ``limits:``.

    A stage whose max_tokens alone exceeds its model's whole TPM limit could never be sent:
    that is a config error now, not a hang later.
    """
    for name, value in (("--rpm", rpm), ("--tpm", tpm)):
        if value is not None and value < 1:
            raise ConfigError(f"must be at least 1, got {value}", field=name)
    _check_models_used(plan, "limits", plan.chain.limits, "limit")
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
