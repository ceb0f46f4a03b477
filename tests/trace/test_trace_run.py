"""Whole runs through the library on the simulated provider: the verdict in run.json, one
call event per call in trace.json, events.jsonl line by line, content kept out unless asked
for, and a trace even when a stage fails. Plus events.jsonl's writer on hand-made events."""

from __future__ import annotations

import gc
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator import (
    CallError,
    CallFailed,
    CallStarted,
    ChainFinished,
    ChainStarted,
    RunFinished,
    RunManifest,
    RunStarted,
    StageFinished,
    Topic,
)
from orchestrator.report._trace_files import TraceOptions
from orchestrator.trace._event_log import EventLog
from orchestrator.trace._spans import Span

from ..conftest import write
from ..fakes import FakeClient, Recorder
from ..virtual_time import run_virtual
from .test_chrome_trace import check_chrome_trace, checked_run
from .test_spans import request

# Calls of about 10 ms, short answers: a staircase of three chains takes a fraction of a s.
SIM = {"time_scale": 0.01, "latency_jitter": 0.0, "output_tokens": 20}
# A fan needs calls long enough that the bookkeeping between stages (~10 ms with ten chains
# committing) does not count against them: at 0.01-0.05 a perfect fan measures 5.5-7.8.
FAN_SIM = {"time_scale": 0.2, "latency_jitter": 0.0, "output_tokens": 20}


def run_files(manifest: RunManifest) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """run.json, trace.json and the lines of events.jsonl, as written to the run folder."""
    folder = Path(manifest.output_dir)
    run_json = json.loads((folder / "run.json").read_text())
    trace = json.loads((folder / "trace.json").read_text())
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    return run_json, trace, lines[:-1]


def complete(trace: dict[str, Any], cat: str) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == cat]


def check_numbers_agree(run_json: dict[str, Any], trace: dict[str, Any]) -> None:
    """run.json's parallelism is the numbers of trace.json: call time, wall, peak."""
    p = run_json["parallelism"]
    calls = complete(trace, "call")
    (run,) = complete(trace, "run")
    assert p["call_time_s"] == pytest.approx(sum(e["dur"] for e in calls) / 1e6, abs=1e-4)
    assert p["wall_time_s"] == pytest.approx(run["dur"] / 1e6, abs=1e-4)
    assert p["wall_time_s"] == pytest.approx(run_json["wall_time_s"], abs=1e-3)
    assert p["effective"] == pytest.approx(p["call_time_s"] / p["wall_time_s"], abs=1e-3)
    assert p["chains"] == len(
        {e["args"]["orchestrate.topic.index"] for e in complete(trace, "chain")}
    )


@pytest.fixture
def three_topics(project: Path) -> Path:
    return write(project / "three.yaml", "- Tides\n- Stars\n- Moss\n")


async def test_a_sequential_run_is_a_staircase_paced_by_concurrency(three_topics: Path) -> None:
    manifest = await orchestrator.run(three_topics, out="outs", sequential=True, sim=SIM)
    run_json, trace, _ = run_files(manifest)
    p = run_json["parallelism"]
    assert (p["verdict"], p["paced_by"]) == ("staircase", "concurrency")
    assert (p["peak"], p["allowed"], p["chains"]) == (1, 1, 3)
    assert p["effective"] < 1.5
    check_numbers_agree(run_json, trace)
    check_chrome_trace(trace)
    # One lane: the chains ran back to back.
    assert {e["tid"] for e in complete(trace, "chain")} == {1}


async def test_ten_topics_on_ten_slots_fan_out(project: Path) -> None:
    manifest = await orchestrator.run(
        "configs/topics.example.yaml", out="outs", concurrency=10, sim=FAN_SIM
    )
    run_json, trace, _ = run_files(manifest)
    p = run_json["parallelism"]
    assert (p["verdict"], p["paced_by"]) == ("fan", None), p["explanation"]
    assert (p["allowed"], p["chains"], p["peak"]) == (10, 10, 10)
    assert p["effective"] >= 7.0
    check_numbers_agree(run_json, trace)
    check_chrome_trace(trace)
    assert len({e["tid"] for e in complete(trace, "chain")}) == 10


async def test_trace_json_has_one_call_event_per_call_in_run_json(three_topics: Path) -> None:
    manifest = await orchestrator.run(three_topics, out="outs", concurrency=3, sim=SIM)
    run_json, trace, _ = run_files(manifest)
    calls = complete(trace, "call")
    assert len(calls) == run_json["totals"]["calls"] == 9
    assert {e["name"] for e in calls} == {"chat gpt-4o-mini"}
    for call in calls:
        assert call["args"]["gen_ai.provider.name"] == "simulated"
        assert call["args"]["gen_ai.usage.output_tokens"] > 0
    assert json.loads((Path(manifest.output_dir) / "trace.json").read_text()) == trace


async def test_events_jsonl_has_one_json_line_per_event(three_topics: Path) -> None:
    recorder = Recorder()
    manifest = await orchestrator.run(
        three_topics, out="outs", concurrency=2, sim=SIM, observers=[recorder]
    )
    _, _, lines = run_files(manifest)
    assert len(lines) == len(recorder.events)
    records = [json.loads(line) for line in lines]
    for record in records:
        assert isinstance(record["event"], str) and record["event"]
        datetime.fromisoformat(record["timestamp"])  # ISO, parseable
        assert record["timestamp"].endswith("Z") or "+00:00" in record["timestamp"]
    names = [r["event"] for r in records]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    expected = [type(e).__name__ for e in recorder.events]
    assert [n.replace("_", "") for n in names] == [e.lower() for e in expected]
    # Seconds from the run's start. Lines come in the order observers saw the events, which
    # across chains need not be the order of t (one chain's event can wait on the store
    # while another's goes by); within a chain it is.
    assert records[0]["t"] == 0.0
    assert all(r["t"] >= 0 for r in records)
    for index in range(3):
        ts = [r["t"] for r in records if (r.get("topic") or {}).get("index") == index]
        assert len(ts) >= 8 and ts == sorted(ts), index
    assert records[-1]["status"] == "finished"


def an_answer_line(manifest: RunManifest) -> str:
    """A stretch of the last stage's answer, which no prompt contains."""
    folder = Path(manifest.output_dir)
    edit = next((folder / "stages").glob("*/edit.md")).read_text(encoding="utf-8")
    line = max((ln.strip() for ln in edit.splitlines()), key=len)
    assert len(line) >= 20, edit
    return line[:40]


async def test_outputs_and_prompts_stay_out_of_the_trace_files_by_default(
    three_topics: Path,
) -> None:
    manifest = await orchestrator.run(three_topics, out="outs", concurrency=3, sim=SIM)
    run_json, trace, lines = run_files(manifest)
    answer = an_answer_line(manifest)
    events_text = "\n".join(lines)
    trace_text = json.dumps(trace, ensure_ascii=False)
    assert answer not in events_text
    assert answer not in trace_text
    assert "gen_ai.input.messages" not in trace_text
    assert "gen_ai.output.messages" not in trace_text
    for record in map(json.loads, lines):
        assert "output" not in record and "outputs" not in record and "request" not in record
        if record["event"] == "stage_finished":
            assert record["output_chars"] > 0


async def test_trace_content_puts_outputs_in_the_trace_files(three_topics: Path) -> None:
    manifest = await orchestrator.run(
        three_topics, out="outs", concurrency=3, sim=SIM, trace_content=True
    )
    _, trace, lines = run_files(manifest)
    answer = an_answer_line(manifest)
    assert answer in "\n".join(json.loads(line).get("output", "") for line in lines)
    outputs = [e["args"]["gen_ai.output.messages"] for e in complete(trace, "call")]
    assert any(answer in json.loads(o)[0]["parts"][0]["content"] for o in outputs)
    assert all("gen_ai.input.messages" in e["args"] for e in complete(trace, "call"))


async def test_a_run_with_a_failed_stage_still_writes_its_trace(project: Path) -> None:
    topics = write(project / "topics.yaml", f"- Tides\n- {'very long topic ' * 800}\n- Volcanoes\n")
    manifest = await orchestrator.run(
        topics, out="outs", concurrency=3, sim={**SIM, "context_window": 3000}
    )
    assert manifest.totals.failed == 1
    run_json, trace, lines = run_files(manifest)
    (failed,) = [
        e for e in complete(trace, "chain") if e["args"]["orchestrate.span.status"] == "error"
    ]
    assert failed["args"]["orchestrate.failed_stage"] == "research"
    assert "context_length_exceeded" in failed["args"]["orchestrate.span.error"]
    failed_calls = [
        e for e in complete(trace, "call") if e["args"]["orchestrate.span.status"] == "error"
    ]
    assert [e["args"]["error.type"] for e in failed_calls] == ["400"]
    assert len(complete(trace, "call")) == run_json["totals"]["calls"] == 7
    assert any(json.loads(line)["event"] == "stage_errored" for line in lines)
    check_chrome_trace(trace)
    assert run_json["parallelism"]["chains"] == 3


class FailingSink:
    """A span sink (as the OpenTelemetry export is) that breaks when the run span ends."""

    def open(self, epoch: float) -> None:
        pass

    def started(self, span: Span) -> None:
        pass

    def ended(self, span: Span) -> None:
        if span.kind == "run":
            raise RuntimeError("exporter down")


def test_a_sink_failing_as_the_run_ends_still_closes_the_run(tmp_path: Path) -> None:
    setup, run_dir = checked_run(tmp_path, ["alpha", "bravo"], client=FakeClient(delay=1.0))
    tracing = TraceOptions(sinks=(FailingSink(),))
    error = None
    try:
        run_virtual(setup.execute("run-sink", run_dir, tracing=tracing))
    except Exception as exc:
        error = repr(exc)
    with warnings.catch_warnings():
        # While the bug stands events.jsonl is left open: let it go here, quietly, rather
        # than as an unraisable warning in whichever test comes next.
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert error is None
    assert json.loads((run_dir / "run.json").read_text())["status"] != "running"
    assert (run_dir / "trace.json").is_file()


# --- events.jsonl's writer, on hand-made events -------------------------------------------

TIDES = Topic(0, "Tides", "tides")
WALL = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)


def started(at: float, session: int = 1) -> RunStarted:
    return RunStarted(
        run_id="run-1",
        at=at,
        wall_start=WALL,
        mode="parallel",
        concurrency=2,
        provider="custom",
        endpoint="",
        topics=1,
        stages=["research"],
        session=session,
    )


def session(at: float, number: int) -> list[Any]:
    boom = CallError("HTTP 429: slow down", status=429)
    return [
        started(at, number),
        ChainStarted(TIDES, at + 1),
        CallStarted(TIDES, "research", 1, "m1", at + 1, request("m1")),
        CallFailed(TIDES, "research", 1, boom, at + 1, at + 2),
        StageFinished(TIDES, "research", "m1", "SECRET ANSWER", 2, 10, 20, at + 1, at + 3),
        ChainFinished(TIDES, "succeeded", {"research": "SECRET ANSWER"}, None, None, at, at + 3),
        RunFinished(at + 4, "finished"),
    ]


async def feed(log: EventLog, events: list[Any]) -> None:
    for event in events:
        await log.on_event(event)


async def test_event_log_writes_fields_as_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    await feed(EventLog(path), session(100.0, 1))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == [
        "run_started",
        "chain_started",
        "call_started",
        "call_failed",
        "stage_finished",
        "chain_finished",
        "run_finished",
    ]
    assert [r["t"] for r in records] == [0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 4.0]
    failed = records[3]
    assert failed["topic"] == {"index": 0, "slug": "tides"}
    assert failed["error"] == "CallError: HTTP 429: slow down"
    assert failed["started"] == 1.0
    assert records[4]["output_chars"] == len("SECRET ANSWER")
    assert "SECRET ANSWER" not in path.read_text()
    assert "Research the tides" not in path.read_text()  # the prompt of the request


async def test_event_log_with_content_keeps_outputs_and_requests(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    await feed(EventLog(path, content=True), session(100.0, 1))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[2]["request"]["model"] == "m1"
    assert records[2]["request"]["messages"][-1]["content"].startswith("Research the tides")
    assert records[4]["output"] == "SECRET ANSWER"
    assert records[5]["outputs"] == {"research": "SECRET ANSWER"}


async def test_a_resumed_run_appends_its_session_to_events_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    await feed(EventLog(path), session(100.0, 1))
    await feed(EventLog(path), session(5000.0, 2))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 14
    starts = [r for r in records if r["event"] == "run_started"]
    assert [s["session"] for s in starts] == [1, 2]
    assert [r["t"] for r in records[7:]] == [0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 4.0]  # its own t=0


async def test_event_log_ignores_events_before_run_started_and_closes_at_the_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    await log.on_event(ChainStarted(TIDES, 1.0))
    assert not path.exists()
    await feed(log, session(100.0, 1))
    assert log._file is None  # closed at RunFinished
    await log.on_event(ChainStarted(TIDES, 200.0))  # nothing after the end
    assert len(path.read_text().splitlines()) == 7
