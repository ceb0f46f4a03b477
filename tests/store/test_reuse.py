"""Stages that need no call: request fingerprints, StoreRecall's choice between a resumed
stage and a stored identical request, and whole runs over a real Store twice."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    CallError,
    ChatRequest,
    Engine,
    ModelPrice,
    RunFinished,
    RunManifest,
    RunStarted,
    StageFinished,
    load_plan,
)
from orchestrator.config._prices import Prices
from orchestrator.plan._plan import Plan
from orchestrator.provider._limits import Limiters
from orchestrator.report._manifest import ManifestObserver
from orchestrator.session._persist import StoreObserver
from orchestrator.store._records import RunRecord, StageResult
from orchestrator.store._reuse import Recall, StoreRecall, fingerprint
from orchestrator.store._store import Store

from ..conftest import write
from ..fakes import FakeClient, Recorder

# --- fingerprint ---

BASE = ChatRequest(
    model="m1",
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tides"}],
    temperature=0.2,
    max_tokens=100,
)


def test_a_fingerprint_is_stable_for_an_equal_request() -> None:
    twin = ChatRequest(
        model="m1",
        messages=[{"content": "Be brief.", "role": "system"}, {"role": "user", "content": "Tides"}],
        temperature=0.2,
        max_tokens=100,
    )
    key = fingerprint("https://api.example/v1", BASE)
    assert key == fingerprint("https://api.example/v1", twin)
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize(
    ("endpoint", "request_"),
    [
        ("https://other.example/v1", BASE),
        ("https://api.example/v1", replace(BASE, model="m2")),
        (
            "https://api.example/v1",
            replace(BASE, messages=[BASE.messages[0], {"role": "user", "content": "Tide"}]),
        ),
        ("https://api.example/v1", replace(BASE, messages=BASE.messages[1:])),
        ("https://api.example/v1", replace(BASE, temperature=0.3)),
        ("https://api.example/v1", replace(BASE, temperature=None)),
        ("https://api.example/v1", replace(BASE, max_tokens=101)),
        ("https://api.example/v1", replace(BASE, max_tokens=None)),
    ],
    ids=[
        "endpoint",
        "model",
        "message",
        "messages",
        "temperature",
        "no-temperature",
        "max_tokens",
        "no-max_tokens",
    ],
)
def test_a_fingerprint_changes_with_everything_that_shapes_the_answer(
    endpoint: str, request_: ChatRequest
) -> None:
    assert fingerprint(endpoint, request_) != fingerprint("https://api.example/v1", BASE)


# --- StoreRecall ---


def result(fp: str, output: str = "stored", *, cost: float | None = 0.002) -> StageResult:
    return StageResult(
        fingerprint=fp,
        model="m1",
        output=output,
        prompt_tokens=11,
        completion_tokens=22,
        cached_tokens=0,
        cost=cost,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store.open(tmp_path / "out" / "state.db") as s:
        yield s


async def stored(store: Store, fp: str, output: str = "stored") -> StageResult:
    """An answer saved by some earlier run, as the StoreObserver saves one."""
    answer = result(fp, output)
    await store.save_stage("earlier-run", 0, "research", answer, {"name": "research"})
    return answer


RECORD = {"name": "research", "status": "succeeded", "attempts": 2}


async def test_a_resumed_stage_is_recalled_only_when_its_request_is_unchanged(
    store: Store,
) -> None:
    mine = result("a" * 64, "mine")
    recall = StoreRecall(store, resumed={0: {"research": (mine, RECORD)}})

    got = recall.recall(0, "research", "a" * 64)
    assert got is not None
    assert (got.result, got.source, got.record) == (mine, "resumed", RECORD)
    assert recall.recall(0, "research", "b" * 64) is None, "the request changed: call again"
    assert recall.recall(1, "research", "a" * 64) is None, "it is topic 0's, and not stored"
    assert recall.recall(0, "write", "a" * 64) is None, "nor another stage's"


async def test_a_stored_identical_request_is_reused_unless_fresh(store: Store) -> None:
    answer = await stored(store, "c" * 64)
    got = StoreRecall(store).recall(3, "write", "c" * 64)
    assert got is not None
    assert (got.result, got.source, got.record) == (answer, "reused", None)
    assert StoreRecall(store, fresh=True).recall(3, "write", "c" * 64) is None
    assert StoreRecall(store).recall(3, "write", "d" * 64) is None


async def test_a_resumed_stage_wins_over_a_stored_answer_to_the_same_request(
    store: Store,
) -> None:
    """A later --fresh run may have replaced results[fingerprint]: the run being resumed
    keeps the answer it got itself."""
    await stored(store, "a" * 64, "someone else's")
    mine = result("a" * 64, "mine")
    got = StoreRecall(store, resumed={0: {"research": (mine, RECORD)}}).recall(
        0, "research", "a" * 64
    )
    assert got is not None and (got.source, got.result.output) == ("resumed", "mine")


async def test_fresh_still_restores_the_resumed_stages(store: Store) -> None:
    await stored(store, "e" * 64)
    mine = result("a" * 64, "mine")
    recall = StoreRecall(store, resumed={0: {"research": (mine, RECORD)}}, fresh=True)
    got = recall.recall(0, "research", "a" * 64)
    assert got is not None and got.source == "resumed"
    assert recall.recall(0, "write", "e" * 64) is None, "but nothing else is reused"


async def test_a_resumed_stage_whose_request_changed_can_still_be_reused(store: Store) -> None:
    new = await stored(store, "b" * 64, "answer to the new request")
    recall = StoreRecall(store, resumed={0: {"research": (result("a" * 64), RECORD)}})
    got = recall.recall(0, "research", "b" * 64)
    assert got is not None and (got.source, got.result) == ("reused", new)


# --- whole runs over a real store ---

PRICES = {m: ModelPrice(input=1.0, output=2.0) for m in ("m1", "m2", "m3")}
TOPICS = ["alpha", "bravo", "charlie"]


def make_plan(project: Path, *, edit_prompt: str = "E {{ topic }} <{{ write }}>") -> Plan:
    write(project / "agents" / "research.yaml", "model: m1\nprompt: 'R {{ topic }}'\n")
    write(
        project / "agents" / "write.yaml", "model: m2\nprompt: 'W {{ topic }} <{{ research }}>'\n"
    )
    write(project / "agents" / "edit.yaml", f"model: m3\nprompt: '{edit_prompt}'\n")
    path = project / "topics.yaml"
    path.write_text("".join(f"- {t}\n" for t in TOPICS))
    return load_plan(path)


async def no_sleep(seconds: float) -> None:
    """Backoff without waiting."""


async def session(
    plan: Plan,
    store: Store,
    client: FakeClient,
    *,
    run_id: str,
    recall: Recall | None = None,
    identity: str = "fake-provider",
) -> tuple[RunManifest, Recorder]:
    """One session of a run, wired as ``_execute`` wires a real one: the manifest observer
    first, then the store observer reading its records."""
    run_dir = plan.topics_file.parent / "out" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    store.start_run(
        RunRecord(
            run_id,
            str(plan.topics_file),
            "hash",
            str(run_dir),
            "running",
            now,
            now,
            os.getpid(),
            socket.gethostname(),
            {},
        )
    )
    manifest = ManifestObserver(
        run_dir / "run.json",
        plan.topics,
        topics_file=plan.topics_file,
        chain_file=plan.chain_file,
        output_dir=run_dir,
    )
    recorder = Recorder()
    engine = Engine(
        plan.stages,
        client=client,
        concurrency=2,
        observers=[manifest, StoreObserver(store, run_id, manifest), recorder],
        endpoint="http://127.0.0.1:1/v1",
        identity=identity,
        recall=recall if recall is not None else StoreRecall(store),
        prices=Prices(PRICES, fallback=False),
        limiters=Limiters(learn=False),
        sleep=no_sleep,
    )
    await engine.emit(
        RunStarted(
            run_id=run_id,
            at=engine.clock(),
            wall_start=datetime.now().astimezone(),
            mode="parallel",
            concurrency=2,
            provider="custom",
            endpoint=engine.route.endpoint,
            topics=len(plan.topics),
            stages=[s.name for s in plan.stages],
        )
    )
    await engine.run(plan.topics)
    await engine.emit(RunFinished(engine.clock(), "finished"))
    assert manifest.manifest is not None
    return manifest.manifest, recorder


def sources(recorder: Recorder) -> dict[tuple[str, str], str]:
    return {(e.topic.text, e.stage): e.source for e in recorder.of(StageFinished)}


def result_times(store: Store) -> dict[str, str]:
    """fingerprint -> when its answer was saved, read as another process would."""
    conn = sqlite3.connect(store.path)
    try:
        return dict(conn.execute("SELECT fingerprint, created_at FROM results").fetchall())
    finally:
        conn.close()


async def test_a_second_run_of_the_same_topics_makes_no_calls(project: Path, store: Store) -> None:
    plan = make_plan(project)
    first, _ = await session(plan, store, FakeClient(), run_id="run-1")
    assert first.totals.calls == 9 and first.totals.cost not in (None, 0.0)
    saved = result_times(store)

    client = FakeClient()
    manifest, recorder = await session(plan, store, client, run_id="run-2")

    assert client.requests == []
    finished = recorder.of(StageFinished)
    assert len(finished) == 9
    assert {e.source for e in finished} == {"reused"}
    assert {e.cost for e in finished} == {0.0}
    assert all(e.attempts == 0 for e in finished)
    t = manifest.totals
    assert (t.succeeded, t.reused, t.calls) == (3, 9, 0)
    assert (t.prompt_tokens, t.completion_tokens, t.total_tokens) == (0, 0, 0)
    assert t.cost == 0.0
    records = [s for topic in manifest.topics for s in topic.stages]
    assert {(s.status, s.cached, s.cost) for s in records} == {("succeeded", True, 0.0)}
    assert [topic.cost for topic in manifest.topics] == [0.0] * 3
    # The outputs are the first run's, topic by topic.
    again = {(e.topic.text, e.stage): e.output for e in finished}
    assert again[("bravo", "edit")] == store.run_stages("run-1")[1]["edit"][0].output
    # The run has its own stage rows, and the stored answers stay as the calls saved them.
    assert {i: sorted(s) for i, s in store.run_stages("run-2").items()} == {
        i: ["edit", "research", "write"] for i in range(3)
    }
    assert result_times(store) == saved


async def test_another_provider_identity_is_not_served_from_the_store(
    project: Path, store: Store
) -> None:
    plan = make_plan(project)
    await session(plan, store, FakeClient(), run_id="run-1")
    client = FakeClient()
    await session(plan, store, client, run_id="run-2", identity="another-provider")
    assert len(client.requests) == 9


async def test_fresh_calls_every_stage_again(project: Path, store: Store) -> None:
    plan = make_plan(project)
    await session(plan, store, FakeClient(), run_id="run-1")
    client = FakeClient()
    manifest, recorder = await session(
        plan, store, client, run_id="run-2", recall=StoreRecall(store, fresh=True)
    )
    assert len(client.requests) == 9
    assert set(sources(recorder).values()) == {"call"}
    assert manifest.totals.reused == 0


async def test_changing_only_the_last_prompt_calls_only_the_last_stage(
    project: Path, store: Store
) -> None:
    await session(make_plan(project), store, FakeClient(), run_id="run-1")
    plan = make_plan(project, edit_prompt="Edit hard: {{ topic }} <{{ write }}>")

    client = FakeClient()
    manifest, recorder = await session(plan, store, client, run_id="run-2")

    assert sorted(r.messages[-1]["content"][:15] for r in client.requests) == [
        "Edit hard: alph",
        "Edit hard: brav",
        "Edit hard: char",
    ]
    assert {s for (_, stage), s in sources(recorder).items() if stage != "edit"} == {"reused"}
    assert {s for (_, stage), s in sources(recorder).items() if stage == "edit"} == {"call"}
    assert manifest.totals.reused == 6
    edits = [s for topic in manifest.topics for s in topic.stages if s.name == "edit"]
    assert all(s.cached is False and s.cost is not None and s.cost > 0 for s in edits)
    assert manifest.totals.prompt_tokens == sum(s.prompt_tokens or 0 for s in edits)


def flaky_then_failing_edits() -> Any:
    """alpha's research fails once (a retryable 500), every edit fails for good (400)."""
    seen: set[str] = set()

    def handler(request: ChatRequest) -> str:
        prompt = request.messages[-1]["content"]
        if prompt == "R alpha" and prompt not in seen:
            seen.add(prompt)
            raise CallError("HTTP 500: try again", status=500, retryable=True)
        if prompt.startswith("E "):
            raise CallError("HTTP 400: no edit today", status=400)
        return f"output for {prompt}"

    return handler


async def test_a_resumed_run_restores_its_stages_verbatim_and_does_not_save_them_again(
    project: Path, store: Store
) -> None:
    plan = make_plan(project)
    first, _ = await session(plan, store, FakeClient(flaky_then_failing_edits()), run_id="run-1")
    assert first.totals.failed == 3
    earlier = {
        (topic.topic, s.name): s.model_dump()
        for topic in first.topics
        for s in topic.stages
        if s.status == "succeeded"
    }
    assert earlier[("alpha", "research")]["attempts"] == 2
    saved = result_times(store)

    client = FakeClient()
    manifest, recorder = await session(
        plan,
        store,
        client,
        run_id="run-1",
        recall=StoreRecall(store, resumed=store.run_stages("run-1")),
    )

    assert [r.messages[-1]["content"][:7] for r in client.requests] == [
        "E alpha",
        "E bravo",
        "E charl",
    ]
    by_stage = sources(recorder)
    assert {by_stage[(t, s)] for t in TOPICS for s in ("research", "write")} == {"resumed"}
    assert {by_stage[(t, "edit")] for t in TOPICS} == {"call"}
    restored = {
        (topic.topic, s.name): s.model_dump()
        for topic in manifest.topics
        for s in topic.stages
        if s.name != "edit"
    }
    assert restored == earlier, "attempts, tokens, times and costs as the first session wrote"
    assert manifest.totals.succeeded == 3
    # Resumed stages were this run's own calls: their tokens and cost still count.
    stages = [s for topic in manifest.topics for s in topic.stages]
    assert manifest.totals.prompt_tokens == sum(s.prompt_tokens or 0 for s in stages)
    assert manifest.totals.cost == pytest.approx(sum(s.cost or 0 for s in stages))
    # Not saved again: the first session's answers keep their timestamps.
    now = result_times(store)
    assert {fp: now[fp] for fp in saved} == saved
    assert len(now) == len(saved) + 3, "only the three edits are new"
