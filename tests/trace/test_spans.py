"""Spans from events: the GenAI names and attributes, the call → stage → chain → run tree,
times from the run's start, statuses, content only when asked for, sinks told of every
start and end once, and spans left open by an interrupt closed when the run ends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator import (
    CallError,
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    ChatRequest,
    ChatResponse,
    Event,
    RetryPassStarted,
    RunFinished,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    Topic,
    Waited,
)
from orchestrator.trace._spans import Marker, Span, SpanRecorder

T0 = 100.0  # RunStarted.at: every span time is measured from here
WALL = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
TIDES, STARS = Topic(0, "Tides", "tides"), Topic(1, "Stars", "stars")
PROMPT = "Research the tides, privately"
ANSWER = "The moon pulls the sea"


def request(model: str, max_tokens: int | None = 300) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}],
        temperature=0.2,
        max_tokens=max_tokens,
    )


def response(model: str, text: str = ANSWER, *, cached: int = 0) -> ChatResponse:
    return ChatResponse(
        text=text,
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=20,
        model=model,
        cached_tokens=cached,
    )


def run_started() -> RunStarted:
    return RunStarted(
        run_id="run-1",
        at=T0,
        wall_start=WALL,
        mode="parallel",
        concurrency=2,
        provider="simulated",
        endpoint="http://127.0.0.1:9/v1",
        topics=2,
        stages=["research", "write"],
    )


def story() -> list[Event]:
    """Two topics, two stages. Tides: a limiter wait, a call, then a stage reused from the
    store (no call). Stars: a 429 then backoff then success, then a 500 that fails the
    chain; a retry pass starts it again and the run is interrupted mid-call."""
    boom429 = CallError("HTTP 429: slow down", status=429, retryable=True)
    boom500 = CallError("HTTP 500: oops", status=500, retryable=True)
    return [
        run_started(),
        Waited(TIDES, None, "slot", 100.0, 100.0),
        ChainStarted(TIDES, 100.0),
        Waited(STARS, None, "slot", 100.0, 100.5),
        ChainStarted(STARS, 100.5),
        StageStarted(TIDES, "research", 100.1),
        Waited(TIDES, "research", "limiter", 100.1, 100.4),
        CallStarted(TIDES, "research", 1, "m1", 100.4, request("m1")),
        StageStarted(STARS, "research", 100.6),
        CallStarted(STARS, "research", 1, "m1", 100.6, request("m1", max_tokens=None)),
        CallFailed(STARS, "research", 1, boom429, 100.6, 100.9),
        CallFinished(TIDES, "research", 1, response("m1-2026", cached=4), 100.4, 101.4, cost=0.002),
        StageFinished(TIDES, "research", "m1-2026", ANSWER, 1, 10, 20, 100.1, 101.4, cost=0.002),
        StageStarted(TIDES, "write", 101.4),
        StageFinished(
            TIDES, "write", "m2", "from the store", 0, 5, 6, 101.4, 101.4, cost=0.0, source="reused"
        ),
        ChainFinished(TIDES, "succeeded", {}, None, None, 100.0, 101.5),
        Waited(STARS, "research", "backoff", 100.9, 101.9),
        CallStarted(STARS, "research", 2, "m1", 101.9, request("m1")),
        CallFinished(STARS, "research", 2, response("m1"), 101.9, 102.5, cost=None),
        StageFinished(STARS, "research", "m1", ANSWER, 2, 10, 20, 100.6, 102.5, cost=None),
        StageStarted(STARS, "write", 102.5),
        CallStarted(STARS, "write", 1, "m2", 102.5, request("m2")),
        CallFailed(STARS, "write", 1, boom500, 102.5, 103.0),
        StageErrored(STARS, "write", boom500, 1, 102.5, 103.0),
        ChainFinished(STARS, "failed", {}, "write", "HTTP 500: oops", 100.5, 103.0),
        RetryPassStarted(1, 1, 103.5),
        Waited(STARS, None, "slot", 103.5, 103.5),
        ChainStarted(STARS, 103.5),
        StageStarted(STARS, "write", 103.6),
        CallStarted(STARS, "write", 1, "m2", 103.6, request("m2")),
        RunFinished(104.0, "interrupted"),
    ]


class ListSink:
    """A SpanSink keeping what it was told, with each span's end as it was at the time."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, float | None]] = []

    def open(self, epoch: float) -> None:
        self.calls.append(("open", epoch, None))

    def started(self, span: Span) -> None:
        self.calls.append(("started", span.id, span.end))

    def ended(self, span: Span) -> None:
        self.calls.append(("ended", span.id, span.end))


async def record(events: list[Event], **kw: Any) -> SpanRecorder:
    recorder = SpanRecorder(chain="article", **kw)
    for event in events:
        await recorder.on_event(event)
    return recorder


def only(spans: list[Span], name: str, topic: int | None = None, **attrs: Any) -> Span:
    found = [
        s
        for s in spans
        if s.name == name
        and (topic is None or s.topic == topic)
        and all(s.attributes.get(k) == v for k, v in attrs.items())
    ]
    assert len(found) == 1, (name, topic, attrs, found)
    return found[0]


@pytest.fixture
async def spans() -> list[Span]:
    return (await record(story())).spans


def test_span_names_and_kinds_follow_the_genai_conventions(spans: list[Span]) -> None:
    assert sorted((s.kind, s.name) for s in spans) == sorted(
        [("run", "orchestrate run run-1")]
        + [("chain", "invoke_workflow article")] * 3
        + [("stage", "invoke_agent research")] * 2
        + [("stage", "invoke_agent write")] * 3
        + [("call", "chat m1")] * 3
        + [("call", "chat m2")] * 2
        + [("wait", "wait limiter"), ("wait", "wait backoff"), ("wait", "wait slot")]
    )


def test_every_span_has_a_unique_id_and_one_run_at_the_root(spans: list[Span]) -> None:
    assert len({s.id for s in spans}) == len(spans)
    roots = [s for s in spans if s.parent is None]
    assert [r.kind for r in roots] == ["run"]


def test_parents_link_call_to_stage_to_chain_to_run(spans: list[Span]) -> None:
    by_id = {s.id: s for s in spans}
    expected_parent = {"chain": "run", "stage": "chain", "call": "stage", "wait": "stage"}
    for span in spans:
        if span.kind == "run":
            continue
        assert span.parent is not None
        parent = by_id[span.parent]
        if span.name == "wait slot":  # queued before its chain began: a wait of the run
            assert parent.kind == "run", span
            continue
        assert parent.kind == expected_parent[span.kind], span
        if span.kind != "chain":
            assert parent.topic == span.topic, span
    # The retry pass's call hangs under the retry pass's stage, not the first pass's.
    retry_chain = only(spans, "invoke_workflow article", STARS.index, **{"orchestrate.pass": 2})
    retry_stage = only(spans, "invoke_agent write", STARS.index, **{"orchestrate.attempts": None})
    retry_call = [s for s in spans if s.name == "chat m2" and s.start == pytest.approx(3.6)]
    assert retry_stage.parent == retry_chain.id
    assert [c.parent for c in retry_call] == [retry_stage.id]


def test_times_are_seconds_from_run_started(spans: list[Span]) -> None:
    run = only(spans, "orchestrate run run-1")
    assert (run.start, run.end) == (0.0, pytest.approx(4.0))
    limiter = only(spans, "wait limiter")
    assert (limiter.start, limiter.end) == (pytest.approx(0.1), pytest.approx(0.4))
    call = only(spans, "chat m1", TIDES.index)
    assert (call.start, call.end, call.duration) == pytest.approx((0.4, 1.4, 1.0))
    backoff = only(spans, "wait backoff")
    assert (backoff.start, backoff.end) == pytest.approx((0.9, 1.9))
    reused = only(spans, "invoke_agent write", TIDES.index)
    assert reused.start == reused.end == pytest.approx(1.4)


def test_chain_records_its_topic_queue_time_and_pass(spans: list[Span]) -> None:
    chains = sorted((s for s in spans if s.kind == "chain"), key=lambda s: s.start)
    assert [(c.topic, c.attributes["orchestrate.pass"]) for c in chains] == [(0, 1), (1, 1), (1, 2)]
    first_stars = chains[1]
    assert first_stars.attributes["orchestrate.queued_s"] == pytest.approx(0.5)
    assert first_stars.attributes["orchestrate.topic"] == "Stars"
    assert first_stars.attributes["orchestrate.topic.index"] == 1
    assert first_stars.attributes["orchestrate.topic.slug"] == "stars"
    assert first_stars.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert first_stars.attributes["gen_ai.workflow.name"] == "article"


def test_statuses_of_succeeded_failed_and_interrupted_spans(spans: list[Span]) -> None:
    ok_chain = only(spans, "invoke_workflow article", TIDES.index)
    assert (ok_chain.status, ok_chain.attributes["orchestrate.status"]) == ("ok", "succeeded")
    failed = only(spans, "invoke_workflow article", STARS.index, **{"orchestrate.pass": 1})
    assert (failed.status, failed.error) == ("error", "HTTP 500: oops")
    assert failed.attributes["orchestrate.failed_stage"] == "write"
    assert failed.attributes["orchestrate.status"] == "failed"
    errored_stage = [s for s in spans if s.name == "invoke_agent write" and s.start == 2.5][0]
    assert (errored_stage.status, errored_stage.error) == ("error", "HTTP 500: oops")
    assert errored_stage.attributes["error.type"] == "CallError"
    assert errored_stage.attributes["orchestrate.attempts"] == 1
    rate_limited = only(spans, "chat m1", STARS.index, **{"orchestrate.attempt": 1})
    assert (rate_limited.status, rate_limited.error) == ("error", "HTTP 429: slow down")
    assert rate_limited.attributes["error.type"] == "429"
    for wait in (s for s in spans if s.kind == "wait"):
        assert wait.status == "ok"


def test_call_spans_carry_the_genai_request_and_usage_attributes(spans: list[Span]) -> None:
    call = only(spans, "chat m1", TIDES.index)
    assert call.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "simulated",
        "gen_ai.request.model": "m1",
        "gen_ai.agent.name": "research",
        "gen_ai.request.max_tokens": 300,
        "gen_ai.request.temperature": 0.2,
        "orchestrate.attempt": 1,
        "gen_ai.response.model": "m1-2026",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.response.finish_reasons": ["stop"],
        "orchestrate.cost_usd": 0.002,
        "orchestrate.usage.cached_tokens": 4,
    }
    assert call.status == "ok"


def test_a_request_without_max_tokens_leaves_the_attribute_out(spans: list[Span]) -> None:
    call = only(spans, "chat m1", STARS.index, **{"orchestrate.attempt": 1})
    assert "gen_ai.request.max_tokens" not in call.attributes


def test_cost_is_on_each_finished_call_and_null_when_unpriced(spans: list[Span]) -> None:
    priced = only(spans, "chat m1", TIDES.index)
    unpriced = only(spans, "chat m1", STARS.index, **{"orchestrate.attempt": 2})
    assert priced.attributes["orchestrate.cost_usd"] == 0.002
    assert "orchestrate.cost_usd" in unpriced.attributes
    assert unpriced.attributes["orchestrate.cost_usd"] is None


def test_a_reused_stage_is_a_stage_span_with_no_call_under_it(spans: list[Span]) -> None:
    reused = only(spans, "invoke_agent write", TIDES.index)
    assert reused.attributes["orchestrate.source"] == "reused"
    assert reused.attributes["orchestrate.attempts"] == 0
    assert reused.attributes["orchestrate.cost_usd"] == 0.0
    assert reused.status == "ok"
    assert not [s for s in spans if s.parent == reused.id]


def test_waits_are_spans_of_their_stage_with_their_kind(spans: list[Span]) -> None:
    limiter, backoff = only(spans, "wait limiter"), only(spans, "wait backoff")
    by_id = {s.id: s for s in spans}
    assert limiter.parent is not None and backoff.parent is not None
    assert by_id[limiter.parent].name == "invoke_agent research"
    assert by_id[limiter.parent].topic == TIDES.index
    assert by_id[backoff.parent].topic == STARS.index
    assert limiter.attributes["orchestrate.wait.kind"] == "limiter"
    assert backoff.attributes["orchestrate.wait.kind"] == "backoff"


def test_slot_waits_are_spans_of_the_run(spans: list[Span]) -> None:
    """Queueing for a slot is a ``wait slot`` span under the run (and the chain's
    queued_s); a chain that got its slot at once has none."""
    slot = [s for s in spans if s.name == "wait slot"]
    assert [(s.topic, s.start, s.end) for s in slot] == [(STARS.index, 0.0, 0.5)]
    assert slot[0].parent == spans[0].id and slot[0].kind == "wait"


async def test_content_is_off_by_default(spans: list[Span]) -> None:
    for span in spans:
        assert "gen_ai.input.messages" not in span.attributes
        assert "gen_ai.output.messages" not in span.attributes
        assert PROMPT not in json.dumps(span.attributes)
        assert ANSWER not in json.dumps(span.attributes)


async def test_content_true_records_prompt_and_completion_as_genai_messages() -> None:
    spans = (await record(story(), content=True)).spans
    call = only(spans, "chat m1", TIDES.index)
    assert json.loads(call.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
    ]
    assert json.loads(call.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": ANSWER}],
            "finish_reason": "stop",
        }
    ]
    failed = only(spans, "chat m1", STARS.index, **{"orchestrate.attempt": 1})
    assert "gen_ai.input.messages" in failed.attributes
    assert "gen_ai.output.messages" not in failed.attributes  # no answer came


async def test_retry_pass_is_a_marker_at_its_time() -> None:
    recorder = await record(story())
    assert recorder.markers == [Marker(pytest.approx(3.5), "retry pass 1 (1)")]  # type: ignore[arg-type]


async def test_run_span_holds_the_run_settings_and_epoch() -> None:
    recorder = await record(story())
    run = only(recorder.spans, "orchestrate run run-1")
    assert recorder.epoch == WALL.timestamp()
    assert run.attributes["orchestrate.run_id"] == "run-1"
    assert run.attributes["orchestrate.concurrency"] == 2
    assert run.attributes["orchestrate.stages"] == ["research", "write"]
    assert run.attributes["orchestrate.status"] == "interrupted"
    assert run.status == "error"


async def test_open_spans_are_closed_at_run_finished_as_interrupted() -> None:
    spans = (await record(story())).spans
    assert all(s.end is not None for s in spans)
    cut = [s for s in spans if s.error == "interrupted"]
    assert sorted(s.kind for s in cut) == ["call", "chain", "stage"]
    for span in cut:
        assert span.status == "error"
        assert span.end == pytest.approx(4.0)
        assert span.topic == STARS.index


async def test_a_finished_run_span_is_ok_with_nothing_cut_short() -> None:
    events = [e for e in story() if not isinstance(e, RunFinished)][:16]  # up to Tides' end
    events.append(RunFinished(101.5, "finished"))
    spans = (await record(events)).spans
    run = only(spans, "orchestrate run run-1")
    assert (run.status, run.end) == ("ok", pytest.approx(1.5))
    # Stars' chain and stage were open at 101.5: they are closed, and say so.
    assert {s.kind for s in spans if s.error == "interrupted"} == {"chain", "stage"}


async def test_sinks_see_every_start_and_end_exactly_once_in_order() -> None:
    sink = ListSink()
    recorder = await record(story(), sinks=[sink])
    assert sink.calls[0] == ("open", WALL.timestamp(), None)
    started = [i for kind, i, _ in sink.calls if kind == "started"]
    ended = [i for kind, i, _ in sink.calls if kind == "ended"]
    ids = [s.id for s in recorder.spans]
    assert started == ids  # in the order they were opened, each once
    assert sorted(ended) == sorted(ids)  # each once
    position = {(kind, i): n for n, (kind, i, _) in enumerate(sink.calls)}
    for span in recorder.spans:
        assert position[("started", span.id)] < position[("ended", span.id)]
        if span.parent is not None:  # a parent starts before and ends after its children
            assert position[("started", span.parent)] < position[("started", span.id)]
            assert position[("ended", span.id)] < position[("ended", span.parent)]
    for kind, _, end in sink.calls[1:]:
        assert (end is None) == (kind == "started")  # open when announced, closed when ended
    assert sink.calls[-1] == ("ended", recorder.spans[0].id, pytest.approx(4.0))


async def test_events_before_run_started_are_ignored() -> None:
    recorder = await record([ChainStarted(TIDES, 99.0), StageStarted(TIDES, "research", 99.0)])
    assert recorder.spans == []


async def test_span_times_never_run_backwards() -> None:
    """An end read a hair before the start (clock jitter) is clamped to the start."""
    events: list[Event] = [
        run_started(),
        ChainStarted(TIDES, 101.0),
        ChainFinished(TIDES, "succeeded", {}, None, None, 101.0, 100.999),
        RunFinished(102.0, "finished"),
    ]
    spans = (await record(events)).spans
    chain = only(spans, "invoke_workflow article")
    assert chain.end == chain.start == pytest.approx(1.0)
    assert chain.duration == 0.0


async def test_stage_request_model_is_the_model_asked_for(spans: list[Span]) -> None:
    """The call asked for m1 and m1-2026 answered: a stage may name m1 as requested (or
    leave the request model out), never the answering snapshot."""
    stage = only(spans, "invoke_agent research", TIDES.index)
    assert stage.attributes.get("gen_ai.request.model") in (None, "m1")
