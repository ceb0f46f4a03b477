"""run.json across sessions: a resumed run keeps its first start and adds up its running
time, restored topics and stages are written as they were, cost sums are null when any
part is unknown, and an interrupted run leaves its unfinished topics pending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    CallStarted,
    ChainFinished,
    ChainStarted,
    Event,
    RunFinished,
    RunManifest,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    Topic,
    TopicRestored,
)
from orchestrator._errors import CallError
from orchestrator.report._manifest import ManifestObserver

FIRST = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
TOPICS = tuple(Topic(i, text, text.lower()) for i, text in enumerate(["Tides", "Stars", "Moss"]))
STAGES = ["research", "write"]


def observer(tmp_path: Path) -> ManifestObserver:
    return ManifestObserver(
        tmp_path / "run.json",
        TOPICS,
        topics_file=tmp_path / "topics.yaml",
        chain_file=tmp_path / "chain.yaml",
        output_dir=tmp_path,
        interval=3600,  # written at the start and the end only
    )


def started(**kw: Any) -> RunStarted:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "at": 100.0,
        "wall_start": NOW,
        "mode": "parallel",
        "concurrency": 2,
        "provider": "custom",
        "endpoint": "",
        "topics": len(TOPICS),
        "stages": STAGES,
    }
    fields.update(kw)
    return RunStarted(**fields)


def finished(
    topic: Topic, stage: str, at: float, *, cost: float | None, **kw: Any
) -> StageFinished:
    return StageFinished(
        topic, stage, "m1", f"{stage} of {topic.text}", 1, 10, 20, at - 1.0, at, cost=cost, **kw
    )


async def feed(obs: ManifestObserver, *events: Event) -> None:
    for event in events:
        await obs.on_event(event)


def chain(topic: Topic, start: float, costs: list[float | None]) -> list[Event]:
    """A whole chain that succeeded, one stage per cost."""
    events: list[Event] = [ChainStarted(topic, start)]
    for i, (stage, cost) in enumerate(zip(STAGES, costs, strict=True)):
        at = start + i + 1
        events += [StageStarted(topic, stage, at - 1), CallStarted(topic, stage, 1, "m1", at - 1)]
        events.append(finished(topic, stage, at, cost=cost))
    events.append(ChainFinished(topic, "succeeded", {}, None, None, start, start + len(costs)))
    return events


def written(tmp_path: Path) -> RunManifest:
    return RunManifest.model_validate_json((tmp_path / "run.json").read_text())


# A stage and a topic as an earlier session wrote them (JSON data, as the store keeps them).
EARLIER_STAGE: dict[str, Any] = {
    "name": "research",
    "status": "succeeded",
    "model": "m1-2026-01-01",
    "started_at": "2026-03-01T09:00:05Z",
    "ended_at": "2026-03-01T09:00:09Z",
    "latency_s": 4.0,
    "attempts": 3,
    "failed_calls": 2,
    "rate_limited": 1,
    "prompt_tokens": 111,
    "completion_tokens": 222,
    "cost": 0.25,
    "cached": False,
    "output": "stages/stars/research.md",
    "error": None,
    "warning": None,
}
EARLIER_TOPIC: dict[str, Any] = {
    "index": 0,
    "topic": "Tides",
    "slug": "tides",
    "status": "succeeded",
    "output": "tides.md",
    "failed_stage": None,
    "error": None,
    "passes": 2,
    "queued_s": 0.5,
    "waits": {"slot": 0.5, "limiter": 1.25, "backoff": 2.0},
    "started_at": "2026-03-01T09:00:01Z",
    "ended_at": "2026-03-01T09:00:30Z",
    "latency_s": 29.0,
    "cost": 0.75,
    "stages": [
        {**EARLIER_STAGE, "output": "stages/tides/research.md", "cost": 0.5},
        {**EARLIER_STAGE, "name": "write", "output": "stages/tides/write.md", "cost": 0.25},
    ],
}


async def resumed_session(tmp_path: Path) -> RunManifest:
    """Session 2: Tides finished in session 1 (restored); Stars finished research in
    session 1 (resumed) and writes now; Moss runs whole."""
    obs = observer(tmp_path)
    stars = TOPICS[1]
    await feed(
        obs,
        started(session=2, first_started=FIRST, earlier_wall_s=5.0),
        TopicRestored(TOPICS[0], "succeeded", EARLIER_TOPIC),
        ChainStarted(stars, 101.0),
        StageStarted(stars, "research", 101.0),
        finished(stars, "research", 101.0, cost=0.25, source="resumed", record=EARLIER_STAGE),
        StageStarted(stars, "write", 101.0),
        CallStarted(stars, "write", 1, "m1", 101.0),
        finished(stars, "write", 103.0, cost=0.125),
        ChainFinished(stars, "succeeded", {}, None, None, 101.0, 103.0),
        *chain(TOPICS[2], 101.0, [0.5, 0.5]),
        RunFinished(110.0, "finished"),
    )
    return written(tmp_path)


async def test_a_resumed_run_keeps_its_first_start_and_adds_the_earlier_sessions_time(
    tmp_path: Path,
) -> None:
    m = await resumed_session(tmp_path)
    assert m.started_at == FIRST
    assert m.sessions == 2
    assert m.wall_time_s == pytest.approx(5.0 + 10.0)
    assert m.ended_at == NOW + timedelta(seconds=10)
    assert m.status == "finished"


async def test_a_restored_topic_is_written_exactly_as_the_earlier_session_wrote_it(
    tmp_path: Path,
) -> None:
    m = await resumed_session(tmp_path)
    assert m.topics[0].model_dump(mode="json") == EARLIER_TOPIC


async def test_a_resumed_stage_is_written_exactly_as_the_earlier_session_wrote_it(
    tmp_path: Path,
) -> None:
    m = await resumed_session(tmp_path)
    stars = m.topics[1]
    assert [s.name for s in stars.stages] == STAGES, "one record per stage, in order"
    assert stars.stages[0].model_dump(mode="json") == EARLIER_STAGE
    assert (stars.stages[1].attempts, stars.stages[1].cost) == (1, 0.125)
    assert stars.cost == 0.25 + 0.125, "the earlier session's cost counts: it is this run's"


async def test_totals_of_a_resumed_run_count_every_session(tmp_path: Path) -> None:
    m = await resumed_session(tmp_path)
    t = m.totals
    assert (t.topics, t.succeeded, t.pending, t.reused) == (3, 3, 0, 0)
    assert t.cost == pytest.approx(0.75 + 0.375 + 1.0)
    assert t.prompt_tokens == 111 * 3 + 10 * 3
    assert t.retries == 2 * 3, "attempts beyond the first, restored records included"
    assert t.calls == 3 * 3 + 3, "calls the earlier session made for what it finished count"
    assert (t.failed_calls, t.rate_limited) == (2 * 3, 1 * 3)


# --- cost sums ---


async def test_costs_sum_per_topic_and_over_the_run(tmp_path: Path) -> None:
    obs = observer(tmp_path)
    await feed(
        obs,
        started(),
        *chain(TOPICS[0], 100.0, [0.1, 0.2]),
        *chain(TOPICS[1], 100.0, [0.0, 0.4]),
        RunFinished(110.0, "finished"),
    )
    m = written(tmp_path)
    # Moss never ran: it spent nothing, which is known.
    assert [r.cost for r in m.topics] == [pytest.approx(0.3), pytest.approx(0.4), 0.0]
    assert m.totals.cost == pytest.approx(0.7)


async def test_one_unknown_price_makes_its_topic_and_the_total_unknown(tmp_path: Path) -> None:
    """A partial sum would read as a total: null instead."""
    obs = observer(tmp_path)
    await feed(
        obs,
        started(),
        *chain(TOPICS[0], 100.0, [0.1, 0.2]),
        *chain(TOPICS[1], 100.0, [0.1, None]),
        RunFinished(110.0, "finished"),
    )
    m = written(tmp_path)
    assert [r.cost for r in m.topics[:2]] == [pytest.approx(0.3), None]
    assert m.totals.cost is None


async def test_a_failed_stage_does_not_make_the_cost_unknown(tmp_path: Path) -> None:
    """A stage that failed spent nothing known to be unknown: the sum is of what
    succeeded."""
    topic = TOPICS[0]
    obs = observer(tmp_path)
    await feed(
        obs,
        started(),
        ChainStarted(topic, 100.0),
        StageStarted(topic, "research", 100.0),
        finished(topic, "research", 101.0, cost=0.1),
        StageStarted(topic, "write", 101.0),
        StageErrored(topic, "write", CallError("HTTP 400: no", status=400), 1, 101.0, 102.0),
        ChainFinished(topic, "failed", {}, "write", "HTTP 400: no", 100.0, 102.0),
        RunFinished(110.0, "finished"),
    )
    m = written(tmp_path)
    assert m.topics[0].cost == pytest.approx(0.1)
    assert m.totals.cost == pytest.approx(0.1)


async def test_reused_stages_cost_nothing_and_add_no_tokens(tmp_path: Path) -> None:
    topic = TOPICS[0]
    obs = observer(tmp_path)
    await feed(
        obs,
        started(),
        ChainStarted(topic, 100.0),
        StageStarted(topic, "research", 100.0),
        finished(topic, "research", 100.0, cost=0.0, source="reused"),
        StageStarted(topic, "write", 100.0),
        finished(topic, "write", 101.0, cost=0.3),
        ChainFinished(topic, "succeeded", {}, None, None, 100.0, 101.0),
        RunFinished(110.0, "finished"),
    )
    m = written(tmp_path)
    assert [s.cached for s in m.topics[0].stages] == [True, False]
    assert (m.totals.reused, m.totals.prompt_tokens, m.totals.completion_tokens) == (1, 10, 20)
    assert m.totals.cost == pytest.approx(0.3)


# --- an interrupted run ---


async def test_an_interrupted_run_leaves_unfinished_topics_pending(tmp_path: Path) -> None:
    """Tides finished; Stars is parked between its stages (no stage open); Moss is in the
    middle of a stage. The last two are pending again, Moss's open stage interrupted."""
    tides, stars, moss = TOPICS
    obs = observer(tmp_path)
    await feed(
        obs,
        started(),
        *chain(tides, 100.0, [0.1, 0.1]),
        ChainStarted(stars, 100.0),
        StageStarted(stars, "research", 100.0),
        finished(stars, "research", 101.0, cost=0.1),
        ChainStarted(moss, 100.0),
        StageStarted(moss, "research", 100.0),
        CallStarted(moss, "research", 1, "m1", 100.0),
        RunFinished(105.0, "interrupted"),
    )
    m = written(tmp_path)
    assert m.status == "interrupted"
    assert [r.status for r in m.topics] == ["succeeded", "pending", "pending"]
    assert [s.status for s in m.topics[1].stages] == ["succeeded"]
    assert [s.status for s in m.topics[2].stages] == ["interrupted"]
    assert (m.totals.succeeded, m.totals.pending, m.totals.skipped) == (1, 2, 0)
    assert m.topics[1].cost == pytest.approx(0.1), "what the parked topic spent still counts"


async def test_a_stopped_run_marks_what_never_finished_skipped(tmp_path: Path) -> None:
    """Stopped on purpose (a budget): topics never started are skipped, not pending."""
    obs = observer(tmp_path)
    await feed(
        obs,
        started(),
        *chain(TOPICS[0], 100.0, [0.1, 0.1]),
        RunFinished(105.0, "stopped", "budget: --max-cost $1 would be passed"),
    )
    m = written(tmp_path)
    assert [r.status for r in m.topics] == ["succeeded", "skipped", "skipped"]
    assert m.stop_reason is not None and m.stop_reason.startswith("budget")
