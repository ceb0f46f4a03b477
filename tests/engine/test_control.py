"""Stopping a run by hand (RunControl): the first interrupt drains the engine — nothing new
starts, calls in flight come back and are saved — then cancels it; the second cancels at
once. Driven on a virtual-time loop: the calls' delays and the grace cost no real time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import (
    CallError,
    CallFailed,
    CallStarted,
    ChainFinished,
    ChainStarted,
    ChatRequest,
    Engine,
    Event,
    Limit,
    RunControl,
    Stage,
    StageFinished,
    StageStarted,
    Topic,
)
from orchestrator.config._templates import compile_template
from orchestrator.provider._limits import Limiters

from ..fakes import FakeClient, Recorder
from ..virtual_time import run_virtual


def now() -> float:
    return asyncio.get_running_loop().time()


def chain() -> tuple[Stage, ...]:
    return tuple(
        Stage(
            name=name,
            agent=name,
            agent_file=Path(f"agents/{name}.yaml"),
            model=model,
            temperature=None,
            max_tokens=10,
            system=None,
            prompt=compile_template(prompt),
        )
        for name, model, prompt in (
            ("research", "m1", "R {{ topic }}"),
            ("write", "m2", "W {{ topic }} <{{ research }}>"),
            ("edit", "m3", "E {{ topic }} <{{ write }}>"),
        )
    )


def topics(n: int) -> list[Topic]:
    return [Topic(i, f"t{i}", f"t{i}") for i in range(n)]


def engine_for(
    client: FakeClient, *observers: object, concurrency: int = 2, **kw: object
) -> Engine:
    kw.setdefault("limiters", Limiters(learn=False))  # no first call alone to learn limits
    return Engine(chain(), client=client, concurrency=concurrency, observers=observers, **kw)  # type: ignore[arg-type]


async def guarded(control: RunControl, engine: Engine | None) -> float:
    """Run ``engine`` over six topics under ``control``; returns when the code after the
    ``async with`` ran."""
    async with control.watch(engine):
        if engine is not None:
            await engine.run(topics(6))
        else:
            await asyncio.Event().wait()
    return now()


def at(seconds: float, action: Callable[[], object]) -> None:
    """Call ``action`` (as a signal handler would: from the loop, not a task) later."""
    asyncio.get_running_loop().call_later(seconds, action)


def started_after(recorder: Recorder, moment: float) -> list[Event]:
    kinds = (ChainStarted, StageStarted, CallStarted)
    return [e for e in recorder.events if isinstance(e, kinds) and e.at > moment]


def answered() -> tuple[list[str], Callable[[ChatRequest], str]]:
    """A handler that notes each call that came back (FakeClient calls it after its delay)."""
    done: list[str] = []

    def handler(request: ChatRequest) -> str:
        done.append(request.messages[-1]["content"])
        return "ok"

    return done, handler


def test_the_first_interrupt_lets_calls_in_flight_finish_then_ends_the_run() -> None:
    """Interrupted at 0.5 s with two 1-second calls in flight: nothing new starts, both
    calls come back and their stages finish, then the run is cancelled — and the
    cancellation ends at ``watch``, so the caller goes on."""

    async def go() -> tuple[float, FakeClient, Recorder, RunControl]:
        client, recorder, control = FakeClient(delay=1.0), Recorder(), RunControl(grace=10)
        at(0.5, control.interrupt)
        ended = await guarded(control, engine_for(client, recorder))
        assert not control.watching
        return ended, client, recorder, control

    ended, client, recorder, control = run_virtual(go())
    assert control.interrupts == 1
    assert [r.messages[-1]["content"] for r in client.requests] == ["R t0", "R t1"]
    assert [(e.topic.text, e.stage) for e in recorder.of(StageFinished)] == [
        ("t0", "research"),
        ("t1", "research"),
    ]
    assert started_after(recorder, 0.5) == []
    assert recorder.of(ChainFinished) == [], "the chains are unfinished, not failed"
    assert ended == pytest.approx(1.0, abs=0.01), "cancelled once the calls were in"


def test_a_drain_waits_until_the_finished_calls_are_saved() -> None:
    """A call counts as in flight until its StageFinished has been handled by every
    observer (the store commits there): the cancel waits for the slow save."""
    saved: list[float] = []

    class SlowSave:
        async def on_event(self, event: Event) -> None:
            if isinstance(event, StageFinished):
                await asyncio.sleep(2.0)
                saved.append(now())

    async def go() -> float:
        control = RunControl(grace=10)
        at(0.5, control.interrupt)
        return await guarded(control, engine_for(FakeClient(delay=1.0), SlowSave()))

    ended = run_virtual(go())
    assert saved == [pytest.approx(3.0, abs=0.01)] * 2
    assert ended == pytest.approx(3.0, abs=0.01)


def test_a_call_still_out_when_the_grace_ends_is_cancelled() -> None:
    async def go() -> tuple[float, list[str], Recorder]:
        done, handler = answered()
        recorder, control = Recorder(), RunControl(grace=0.2)
        at(0.5, control.interrupt)
        ended = await guarded(control, engine_for(FakeClient(handler, delay=1.0), recorder))
        return ended, done, recorder

    ended, done, recorder = run_virtual(go())
    assert done == [], "the calls never came back"
    assert recorder.of(StageFinished) == []
    assert len(recorder.of(CallStarted)) == 2
    assert ended == pytest.approx(0.7, abs=0.01), "cut off at the grace, not at the answer"


def test_a_second_interrupt_cancels_at_once() -> None:
    async def go() -> tuple[float, list[str], RunControl]:
        done, handler = answered()
        control = RunControl(grace=10)
        at(0.5, control.interrupt)
        at(0.6, control.interrupt)
        ended = await guarded(control, engine_for(FakeClient(handler, delay=1.0)))
        return ended, done, control

    ended, done, control = run_virtual(go())
    assert control.interrupts == 2
    assert done == []
    assert ended == pytest.approx(0.6, abs=0.01)


def test_without_an_engine_the_first_interrupt_cancels_at_once() -> None:
    """Nothing to drain (a run still being set up): the guarded code is cancelled, and the
    cancellation still ends at ``watch``."""

    async def go() -> float:
        control = RunControl(grace=10)
        at(0.5, control.interrupt)
        return await guarded(control, None)

    assert run_virtual(go()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("interrupted", [False, True], ids=["running", "draining"])
def test_a_cancellation_the_control_did_not_make_propagates(interrupted: bool) -> None:
    async def go() -> tuple[bool, RunControl]:
        control = RunControl(grace=10)
        task = asyncio.ensure_future(guarded(control, engine_for(FakeClient(delay=1.0))))
        if interrupted:
            at(0.2, control.interrupt)
        at(0.5, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return True, control
        return False, control

    cancelled, control = run_virtual(go())
    assert cancelled, "the CancelledError reached the awaiting code"
    assert not control.watching


def test_an_interrupt_while_nothing_is_watched_does_no_harm() -> None:
    """Called between runs: no error, the caller is not cancelled, and a run watched
    afterwards runs to its end."""

    async def go() -> tuple[int, RunControl]:
        control = RunControl(grace=10)
        control.interrupt()
        await asyncio.sleep(0.1)  # would raise CancelledError had it cancelled this task
        engine = engine_for(FakeClient(delay=0.1))
        async with control.watch(engine):
            results = await engine.run(topics(3))
        return len(results), control

    finished, control = run_virtual(go())
    assert finished == 3
    assert not control.watching


def test_a_stray_interrupt_before_a_run_does_not_cost_that_run_its_drain() -> None:
    """interrupt() with nothing watched (a stop button pressed between runs) is forgotten:
    the next run's first interrupt still drains it, so its calls in flight are saved."""

    async def go() -> tuple[Recorder, FakeClient]:
        client, recorder, control = FakeClient(delay=1.0), Recorder(), RunControl(grace=10)
        control.interrupt()
        at(0.5, control.interrupt)
        await guarded(control, engine_for(client, recorder))
        return recorder, client

    recorder, client = run_virtual(go())
    assert len(client.requests) == 2
    assert len(recorder.of(StageFinished)) == 2, "the calls in flight came back and were saved"


def test_calls_waiting_for_a_rate_limiter_are_never_sent_when_draining() -> None:
    """Four chains behind a 60 RPM limit: the first call goes at ~0.5 s, the others wait
    their turns (~1.5, 2.6, 3.6 s). Interrupted at 1 s, only the first is ever sent."""

    async def go() -> tuple[float, FakeClient, Recorder]:
        client, recorder, control = FakeClient(delay=5.0), Recorder(), RunControl(grace=30)
        limiters = Limiters({"m1": Limit(rpm=60)}, learn=False)
        engine = engine_for(client, recorder, concurrency=4, limiters=limiters)
        at(1.0, control.interrupt)
        async with control.watch(engine):
            await engine.run(topics(4))
        return now(), client, recorder

    ended, client, recorder = run_virtual(go())
    assert [r.messages[-1]["content"] for r in client.requests] == ["R t0"]
    assert [e.topic.text for e in recorder.of(StageFinished)] == ["t0"]
    assert started_after(recorder, 1.0) == []
    assert ended == pytest.approx(5.5, abs=0.1), "the one call in flight came back first"


def test_no_retry_is_sent_after_an_interrupt() -> None:
    """A call failed at 1 s and its retry waits out a 2 s retry-after: interrupted
    meanwhile, the retry is never sent (and, nothing being in flight, the run ends now)."""

    def unavailable(request: ChatRequest) -> str:
        raise CallError("HTTP 503: busy", status=503, retryable=True, retry_after=2.0)

    async def go() -> tuple[float, FakeClient, Recorder]:
        client, recorder, control = FakeClient(unavailable, delay=1.0), Recorder(), RunControl()
        at(1.5, control.interrupt)
        ended = await guarded(control, engine_for(client, recorder, concurrency=1))
        return ended, client, recorder

    ended, client, recorder = run_virtual(go())
    assert len(client.requests) == 1
    assert len(recorder.of(CallFailed)) == 1
    assert ended == pytest.approx(1.5, abs=0.01)
