"""The run loop: stage order, context passing, failure isolation, and bounded concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator import (
    CallFailed,
    ChainFinished,
    ChainStarted,
    Engine,
    Event,
    StageErrored,
    StageFinished,
    StageStarted,
    Waited,
    load_plan,
)
from orchestrator._errors import OutputError
from orchestrator.plan._plan import Plan

from ..conftest import write
from ..fakes import FakeClient, Recorder, fail_when


def chain_plan(project: Path, topics: list[str]) -> Plan:
    """The default three-stage chain with tiny prompts that show what each stage saw."""
    write(project / "agents" / "research.yaml", "model: m1\nprompt: 'R {{ topic }}'\n")
    write(
        project / "agents" / "write.yaml", "model: m2\nprompt: 'W {{ topic }} <{{ research }}>'\n"
    )
    write(
        project / "agents" / "edit.yaml",
        "model: m3\nprompt: 'E {{ topic }} <{{ write }}> <{{ research }}>'\n",
    )
    path = project / "topics.yaml"
    path.write_text("".join(f"- {t}\n" for t in topics))
    return load_plan(path)


def echo(request):  # type: ignore[no-untyped-def]
    return f"[{request.messages[-1]['content']}]"


async def test_stages_run_in_order_and_each_sees_the_earlier_outputs(project: Path) -> None:
    plan = chain_plan(project, ["Tides"])
    client = FakeClient(echo)
    recorder = Recorder()
    results = await Engine(
        plan.stages, client=client, concurrency=1, observers=[recorder]
    ).run_pass(plan.topics)

    assert [r.model for r in client.requests] == ["m1", "m2", "m3"]
    prompts = [r.messages[-1]["content"] for r in client.requests]
    assert prompts[0] == "R Tides"
    assert prompts[1] == "W Tides <[R Tides]>"
    assert prompts[2] == "E Tides <[W Tides <[R Tides]>]> <[R Tides]>"
    assert [e.stage for e in recorder.of(StageStarted)] == ["research", "write", "edit"]
    assert results[0].status == "succeeded"
    assert results[0].outputs["edit"] == f"[{prompts[2]}]"


async def test_one_failing_chain_does_not_stop_the_others(project: Path) -> None:
    plan = chain_plan(project, ["alpha", "bravo", "charlie", "delta"])
    client = FakeClient(fail_when("W bravo"), delay=0.01)
    recorder = Recorder()
    results = await Engine(
        plan.stages, client=client, concurrency=4, observers=[recorder]
    ).run_pass(plan.topics)

    by_topic = {r.topic.text: r for r in results}
    assert {t: r.status for t, r in by_topic.items()} == {
        "alpha": "succeeded",
        "bravo": "failed",
        "charlie": "succeeded",
        "delta": "succeeded",
    }
    failed = by_topic["bravo"]
    assert failed.failed_stage == "write"
    assert "scripted failure" in (failed.error or "")
    assert list(failed.outputs) == ["research"], "the finished stage is kept"
    # The failed chain made no call after its failing stage.
    assert not any("E bravo" in r.messages[-1]["content"] for r in client.requests)
    assert [e.stage for e in recorder.of(StageErrored)] == ["write"]
    assert len(recorder.of(CallFailed)) == 1
    assert len(recorder.of(StageFinished)) == 3 * 3 + 1


async def test_a_template_failing_on_real_data_fails_only_that_chain(project: Path) -> None:
    """An error raised while rendering (not only a CallError) is isolated like any other."""
    plan = chain_plan(project, ["ok", "boom"])
    client = FakeClient(lambda r: 1 / 0 if "boom" in r.messages[-1]["content"] else "fine")
    results = await Engine(plan.stages, client=client, concurrency=2).run_pass(plan.topics)
    assert sorted((r.topic.text, r.status) for r in results) == [
        ("boom", "failed"),
        ("ok", "succeeded"),
    ]
    assert "division by zero" in next(r.error for r in results if r.status == "failed")


@pytest.mark.parametrize("concurrency", [1, 3, 10])
async def test_never_more_chains_in_flight_than_the_concurrency(
    project: Path, concurrency: int
) -> None:
    plan = chain_plan(project, [f"topic {i}" for i in range(10)])
    client = FakeClient(delay=0.005)
    await Engine(plan.stages, client=client, concurrency=concurrency).run_pass(plan.topics)
    assert client.max_in_flight == concurrency
    assert len(client.requests) == 30


async def test_workers_are_a_fixed_pool_not_a_task_per_topic(project: Path) -> None:
    """500 topics at concurrency 4: tasks are bounded by the workers (each with at most a
    limiter wait and a halt watch alive), never one per topic."""
    plan = chain_plan(project, [f"t{i}" for i in range(500)])
    most_tasks = 0

    async def count_tasks(request):  # type: ignore[no-untyped-def]
        nonlocal most_tasks
        most_tasks = max(most_tasks, len(asyncio.all_tasks()))
        return "x"

    await Engine(plan.stages, client=FakeClient(count_tasks), concurrency=4).run_pass(plan.topics)
    assert most_tasks <= 4 * 3 + 1  # the workers and their waits, plus the test's own task


async def test_sequential_is_one_worker_in_topic_order(project: Path) -> None:
    plan = chain_plan(project, ["one", "two", "three"])
    client = FakeClient(echo, delay=0.001)
    recorder = Recorder()
    await Engine(plan.stages, client=client, concurrency=1, observers=[recorder]).run_pass(
        plan.topics
    )
    assert client.max_in_flight == 1
    assert [e.topic.text for e in recorder.of(ChainFinished)] == ["one", "two", "three"]
    slot_waits = recorder.of(Waited)
    assert [w.kind for w in slot_waits] == ["slot"] * 3
    assert slot_waits[2].at - slot_waits[2].started > slot_waits[0].at - slot_waits[0].started


async def test_events_carry_monotonic_times_from_the_injected_clock(project: Path) -> None:
    plan = chain_plan(project, ["x"])
    ticks = iter(range(1000))
    recorder = Recorder()
    await Engine(
        plan.stages,
        client=FakeClient(),
        concurrency=1,
        observers=[recorder],
        clock=lambda: float(next(ticks)),
    ).run_pass(plan.topics)
    finished = recorder.of(StageFinished)
    assert all(e.at > e.started for e in finished)
    assert [e.started for e in finished] == sorted(e.started for e in finished)


def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Engine((), client=FakeClient(), concurrency=0)


class FailingObserver:
    """An observer whose output cannot be written once ``topic`` finishes a stage."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    async def on_event(self, event: Event) -> None:
        if isinstance(event, StageFinished) and event.topic.text == self.topic:
            raise OutputError(f"/out/{event.topic.slug}.md", "No space left on device")


async def test_a_failing_observer_stops_new_chains_and_raises_run_error(project: Path) -> None:
    """Results that cannot be saved stop the run: chains in flight finish, none start."""
    plan = chain_plan(project, [f"t{i}" for i in range(20)])
    recorder = Recorder()
    engine = Engine(
        plan.stages,
        client=FakeClient(delay=0.001),
        concurrency=2,
        observers=[FailingObserver("t1"), recorder],
    )
    with pytest.raises(OutputError, match="No space left on device"):
        await engine.run_pass(plan.topics)
    assert engine.stopping
    started = {e.topic.text for e in recorder.of(ChainStarted)}
    assert started == {"t0", "t1"}, "no chain starts after the failure"
    assert [e.topic.text for e in recorder.of(ChainFinished)] == ["t0"], "t0 ran to its end"


async def test_an_observer_failure_is_not_mistaken_for_a_stage_failure(project: Path) -> None:
    plan = chain_plan(project, ["only"])
    recorder = Recorder()
    with pytest.raises(OutputError):
        await Engine(
            plan.stages,
            client=FakeClient(),
            concurrency=1,
            observers=[FailingObserver("only"), recorder],
        ).run_pass(plan.topics)
    assert recorder.of(StageErrored) == []


async def test_stop_lets_chains_in_flight_finish_and_starts_no_more(project: Path) -> None:
    plan = chain_plan(project, [f"t{i}" for i in range(10)])
    engine = Engine(plan.stages, client=FakeClient(delay=0.001), concurrency=3)

    class StopAfterFirst:
        async def on_event(self, event: Event) -> None:
            if isinstance(event, ChainFinished):
                engine.stop()

    engine.observers = (StopAfterFirst(),)
    results = await engine.run_pass(plan.topics)
    assert len(results) == 3, "the three chains in flight finish; the other seven never start"
    assert all(r.status == "succeeded" for r in results)


async def test_a_chain_resumes_after_its_finished_stages(project: Path) -> None:
    """``done`` outputs are not called again, and later prompts see them (the retry pass
    and resume build on this)."""
    plan = chain_plan(project, ["Tides"])
    client = FakeClient(echo)
    result = await Engine(plan.stages, client=client, concurrency=1).run_chain(
        plan.topics[0], done={"research": "EARLIER"}
    )
    assert [r.model for r in client.requests] == ["m2", "m3"]
    assert client.requests[0].messages[-1]["content"] == "W Tides <EARLIER>"
    assert result.status == "succeeded"
    assert list(result.outputs) == ["research", "write", "edit"]
