"""Retries, the 429 pause, the quota stop and the retry pass, on a virtual-time loop."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import yaml

import orchestrator
from orchestrator import (
    CallError,
    CallFailed,
    CallStarted,
    ChatRequest,
    Engine,
    RetryPassStarted,
    Waited,
    load_plan,
)
from orchestrator.config._models import RetryPolicy
from orchestrator.plan._plan import Plan
from orchestrator.provider._limits import Limit, Limiters

from ..conftest import write
from ..fakes import FakeClient, Recorder
from ..virtual_time import run_virtual


def plan_for(project: Path, topics: list[str]) -> Plan:
    for stage, model in (("research", "m1"), ("write", "m2"), ("edit", "m3")):
        write(
            project / "agents" / f"{stage}.yaml",
            f"model: {model}\nprompt: '{stage} {{{{ topic }}}}'\n",
        )
    return load_plan(write(project / "topics.yaml", "".join(f"- {t}\n" for t in topics)))


def failing(times: int, error: CallError, *, where: str = "") -> object:
    """A handler that raises ``error`` the first ``times`` calls whose prompt has ``where``."""
    seen: Counter[str] = Counter()

    def handler(request: ChatRequest) -> str:
        prompt = request.messages[-1]["content"]
        if where in prompt:
            seen[prompt] += 1
            if seen[prompt] <= times:
                raise error
        return f"out({prompt})"

    return handler


def server_error() -> CallError:
    return CallError("HTTP 500: boom", status=500, retryable=True)


def engine(plan: Plan, client: FakeClient, recorder: Recorder, **kw: object) -> Engine:
    return Engine(
        plan.stages,
        client=client,
        concurrency=kw.pop("concurrency", 4),  # type: ignore[arg-type]
        observers=[recorder],
        **kw,
    )  # type: ignore[arg-type]


def test_a_5xx_is_retried_with_jittered_backoff_until_it_succeeds(project: Path) -> None:
    plan = plan_for(project, ["Tides"])
    client = FakeClient(failing(2, server_error(), where="write"))
    recorder = Recorder()
    policy = RetryPolicy(attempts=5, backoff_base=1.0, backoff_max=30)
    results = run_virtual(engine(plan, client, recorder, retry=policy).run(plan.topics))
    assert results[0].status == "succeeded"
    attempts = [(e.stage, e.attempt) for e in recorder.of(CallStarted)]
    assert attempts == [("research", 1), ("write", 1), ("write", 2), ("write", 3), ("edit", 1)]
    backoffs = [e.at - e.started for e in recorder.of(Waited) if e.kind == "backoff"]
    assert len(backoffs) == 2
    # Full jitter: anywhere from 0 to base * 2**n.
    assert 0 <= backoffs[0] <= 1.01 and 0 <= backoffs[1] <= 2.01


def test_retry_after_is_honoured_and_pauses_the_model_for_everyone(project: Path) -> None:
    plan = plan_for(project, ["Tides", "Volcanoes"])
    limited = CallError(
        "HTTP 429 rate_limit_exceeded",
        status=429,
        code="rate_limit_exceeded",
        retryable=True,
        retry_after=2.5,
    )
    client = FakeClient(failing(1, limited, where="research Tides"))
    recorder = Recorder()
    limiters = Limiters({"m1": Limit(rpm=60_000)})
    results = run_virtual(
        engine(plan, client, recorder, limiters=limiters, concurrency=1).run(plan.topics)
    )
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    backoff = [e for e in recorder.of(Waited) if e.kind == "backoff"]
    assert [round(e.at - e.started, 3) for e in backoff] == [2.5]
    assert len([e for e in recorder.of(CallFailed) if getattr(e.error, "status", 0) == 429]) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(project: Path, status: int) -> None:
    plan = plan_for(project, ["Tides"])
    client = FakeClient(failing(99, CallError(f"HTTP {status}", status=status), where="write"))
    recorder = Recorder()
    results = run_virtual(engine(plan, client, recorder).run(plan.topics, retry_passes=3))
    assert results[0].status == "failed" and not results[0].transient
    assert len(recorder.of(CallStarted)) == 2, "research once, write once, no retry pass"
    assert recorder.of(RetryPassStarted) == []


def test_out_of_quota_stops_the_run_and_sends_no_more_calls(project: Path) -> None:
    plan = plan_for(project, [f"t{i}" for i in range(50)])
    quota = CallError(
        "HTTP 429 insufficient_quota", status=429, code="insufficient_quota", retryable=True
    )

    def handler(request: ChatRequest) -> str:
        if "research t3" in request.messages[-1]["content"]:
            raise quota
        return "fine"

    client = FakeClient(handler, delay=0.1)
    recorder = Recorder()
    run = engine(plan, client, recorder, concurrency=8)
    results = run_virtual(run.run(plan.topics, retry_passes=2))
    assert run.halt_reason is not None and "out of quota" in run.halt_reason
    sent = len(client.requests)
    calls_after_quota = [e for e in recorder.of(CallStarted)][sent:]
    assert calls_after_quota == []
    assert sent <= 8 + 8 * 3, "at most what was in flight, never the 150 calls of 50 topics"
    assert len(results) < 50, "topics that never started are not in the results"
    assert recorder.of(RetryPassStarted) == [], "no retry pass after a quota stop"


def test_the_retry_pass_resumes_failed_chains_at_the_failed_stage(project: Path) -> None:
    """Write fails for 'bravo' through all of pass 1's attempts, then works: pass 2 calls
    write and edit for bravo only — research is not called again."""
    plan = plan_for(project, ["alpha", "bravo"])
    client = FakeClient(failing(3, server_error(), where="write bravo"))
    recorder = Recorder()
    policy = RetryPolicy(attempts=3, backoff_base=0.1)
    results = run_virtual(
        engine(plan, client, recorder, retry=policy).run(plan.topics, retry_passes=1)
    )
    assert {r.topic.text: r.status for r in results} == {"alpha": "succeeded", "bravo": "succeeded"}
    passes = recorder.of(RetryPassStarted)
    assert [(p.number, p.topics) for p in passes] == [(1, 1)]
    prompts = [r.messages[-1]["content"] for r in client.requests]
    assert prompts.count("research bravo") == 1
    assert prompts.count("write bravo") == 4
    assert prompts.count("edit bravo") == 1


def test_retry_passes_zero_leaves_failures_failed(project: Path) -> None:
    plan = plan_for(project, ["bravo"])
    client = FakeClient(failing(99, server_error(), where="write"))
    results = run_virtual(
        engine(plan, client, Recorder(), retry=RetryPolicy(attempts=2, backoff_base=0.01)).run(
            plan.topics, retry_passes=0
        )
    )
    assert results[0].status == "failed" and results[0].transient
    assert len(client.requests) == 1 + 2


async def test_manifest_and_failed_yaml_after_a_run_with_retries(project: Path) -> None:
    """run.json counts passes, attempts, retries, rate limits and recovered topics;
    failed.yaml lists what still failed as a topics file load_plan accepts."""
    write(project / "topics.yaml", "- Tides\n- topic: Volcanoes\n  audience: kids\n- Glaciers\n")
    write(
        project / "configs" / "chain.yaml",
        "stages: [research, write, edit]\nretry: {attempts: 2, backoff_base: 0.001}\n",
    )
    limited = CallError(
        "HTTP 429", status=429, code="rate_limit_exceeded", retryable=True, retry_after=0.001
    )
    calls = Counter[str]()

    def handler(request: ChatRequest) -> str:
        prompt = request.messages[-1]["content"]
        if "Topic: Volcanoes" in prompt:
            raise CallError("HTTP 400: no", status=400)
        for topic, failures, error in (("Tides", 1, limited), ("Glaciers", 2, server_error())):
            if f"Topic: {topic}\n" in prompt:
                calls[topic] += 1
                if calls[topic] <= failures:  # the first calls fail: all of pass 1 for Glaciers
                    raise error
        return "fine"

    manifest = await orchestrator.run("topics.yaml", client=FakeClient(handler))
    t = manifest.totals
    assert (t.succeeded, t.failed, t.recovered) == (2, 1, 1)
    assert t.rate_limited == 1
    # Every call of a stage after its first, passes included: Tides once after its 429,
    # Glaciers' research twice (its second attempt in pass 1, its call in pass 2).
    assert t.retries == 3
    glacier = next(r for r in manifest.topics if r.topic == "Glaciers")
    assert glacier.passes == 2
    assert [(s.name, s.status, s.attempts) for s in glacier.stages][0] == (
        "research",
        "succeeded",
        3,
    )
    assert t.waits.backoff > 0

    failed = Path(manifest.output_dir) / "failed.yaml"
    data = yaml.safe_load(failed.read_text())
    assert data["topics"] == [{"topic": "Volcanoes", "audience": "kids"}]
    again = load_plan(failed)
    assert [(tp.text, dict(tp.vars)) for tp in again.topics] == [
        ("Volcanoes", {"audience": "kids"})
    ]


async def test_no_failed_yaml_when_everything_succeeds(project: Path) -> None:
    manifest = await orchestrator.run("configs/topics.example.yaml", client=FakeClient(), limit=2)
    assert not (Path(manifest.output_dir) / "failed.yaml").exists()


def test_backoff_sleep_is_the_injected_one(project: Path) -> None:
    """The engine's sleep is a collaborator: backoff never sleeps for real if told not to."""
    plan = plan_for(project, ["Tides"])
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    error = CallError("x", status=503, retryable=True, retry_after=7.0)
    client = FakeClient(failing(1, error, where="research"))
    asyncio.run(
        Engine(plan.stages, client=client, concurrency=1, sleep=fake_sleep).run(plan.topics)
    )
    assert slept == [7.0]


def test_a_quota_stop_releases_calls_waiting_for_the_limiter(project: Path) -> None:
    """Chains queued behind a slow limiter give up at once instead of waiting their turn."""
    plan = plan_for(project, [f"t{i}" for i in range(20)])
    quota = CallError("HTTP 429", status=429, code="insufficient_quota", retryable=True)

    def handler(request: ChatRequest) -> str:
        raise quota

    async def go() -> tuple[float, Engine]:
        run = engine(
            plan,
            FakeClient(handler),
            Recorder(),
            concurrency=10,
            limiters=Limiters({"m1": Limit(rpm=60)}),
        )  # one call per second
        start = asyncio.get_running_loop().time()
        await run.run(plan.topics)
        return asyncio.get_running_loop().time() - start, run

    elapsed, run = run_virtual(go())
    assert run.halt_reason is not None
    # The first call waits about 0.5 s (half a burst to start); the nine other chains in
    # flight must not then take their 1-second limiter turns one after another.
    assert elapsed < 1.0, "not nine more seconds of limiter turns"


def test_a_finished_call_stays_charged_for_max_tokens(project: Path) -> None:
    """Providers count prompt + max_tokens and give nothing back for a short answer: only
    the prompt estimate is corrected by the real usage."""
    write(
        project / "agents" / "research.yaml", "model: m1\nmax_tokens: 50\nprompt: 'R {{ topic }}'\n"
    )
    write(project / "configs" / "chain.yaml", "stages: [research]\n")
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))

    async def go() -> float:
        limiters = Limiters({"m1": Limit(tpm=60_000)})
        bucket = limiters.for_model("", "m1")._tokens
        assert bucket is not None
        before = bucket.level
        await Engine(plan.stages, client=FakeClient(), concurrency=1, limiters=limiters).run(
            plan.topics
        )
        return before - bucket.level

    charged = run_virtual(go())
    assert charged == pytest.approx(50 + 10, abs=1)  # max_tokens + the usage's 10 prompt tokens


def test_an_observer_failing_mid_call_stops_the_run_instead_of_failing_the_stage(
    project: Path,
) -> None:
    """Also with a learning limiter: the probe is released, so nothing waits forever."""
    from orchestrator import OutputError

    plan = plan_for(project, [f"t{i}" for i in range(6)])

    class DiskFullOnFirstCall:
        async def on_event(self, event: object) -> None:
            if isinstance(event, CallStarted):
                raise OutputError("run.json", "No space left on device")

    async def go() -> None:
        await Engine(
            plan.stages, client=FakeClient(), concurrency=3, observers=[DiskFullOnFirstCall()]
        ).run(plan.topics)

    with pytest.raises(OutputError):
        run_virtual(go(), limit=60)


def test_topics_whose_calls_were_not_sent_after_a_quota_stop_are_skipped(project: Path) -> None:
    plan = plan_for(project, [f"t{i}" for i in range(10)])
    quota = CallError("HTTP 429", status=429, code="insufficient_quota")

    def handler(request: ChatRequest) -> str:
        raise quota

    async def go() -> list[str]:
        results = await Engine(
            plan.stages,
            client=FakeClient(handler, delay=0.1),
            concurrency=5,
            limiters=Limiters({"m1": Limit(rpm=60)}),
        ).run(plan.topics)
        return sorted(r.status for r in results)

    statuses = run_virtual(go())
    assert statuses.count("failed") == 1, "only the call that got the quota error failed"
    assert statuses.count("skipped") == 4, "the others in flight were never sent"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
def test_http_statuses_map_to_retryable_or_not(status: int, retryable: bool) -> None:
    import httpx2
    import openai

    from orchestrator.provider._client import _status_error

    response = httpx2.Response(
        status,
        headers={"retry-after-ms": "120"},
        request=httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions"),
    )
    error = _status_error(openai.APIStatusError("x", response=response, body=None))
    assert (error.status, error.retryable, error.retry_after) == (status, retryable, 0.12)


def test_an_hour_long_retry_after_is_capped(project: Path) -> None:
    plan = plan_for(project, ["Tides"])
    slow = CallError(
        "HTTP 429", status=429, code="rate_limit_exceeded", retryable=True, retry_after=3600
    )
    recorder = Recorder()
    run_virtual(
        engine(
            plan,
            FakeClient(failing(1, slow, where="research")),
            recorder,
            retry=RetryPolicy(backoff_max=5),
        ).run(plan.topics)
    )
    backoff = [e.at - e.started for e in recorder.of(Waited) if e.kind == "backoff"]
    assert backoff == [pytest.approx(5, abs=0.01)]
