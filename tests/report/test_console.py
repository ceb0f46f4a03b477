"""What a person sees: progress lines at a modest rate, and the summary treat topic text as
data."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime

from rich.console import Console

from orchestrator import (
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    Event,
    RetryPassStarted,
    RunFinished,
    RunManifest,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    Topic,
    TopicRestored,
    Waited,
)
from orchestrator._errors import CallError
from orchestrator.provider._client import ChatResponse
from orchestrator.report._console import ProgressPrinter
from orchestrator.report._format import duration, shorten
from orchestrator.report._run_json import TopicRecord
from orchestrator.report._summary import print_summary


def manifest(topics: list[TopicRecord]) -> RunManifest:
    m = RunManifest(
        run_id="20261122-000000-abcd",
        status="finished",
        mode="parallel",
        concurrency=2,
        provider="simulated",
        endpoint="http://127.0.0.1:1/v1",
        topics_file="t.yaml",
        chain_file="c.yaml",
        output_dir="/runs/[red]odd[/red]",
        stages=["research"],
        started_at=datetime.now().astimezone(),
        wall_time_s=1.5,
        topics=topics,
    )
    m.totals.topics = len(topics)
    m.totals.failed = sum(t.status == "failed" for t in topics)
    return m


def test_summary_prints_markup_in_topics_and_paths_literally() -> None:
    record = TopicRecord(
        index=0,
        topic="[bold]Tides[/bold]",
        slug="tides",
        status="failed",
        failed_stage="research",
        error="HTTP 400 [x]",
    )
    console = Console(record=True, width=200, color_system=None)
    print_summary(manifest([record]), console=console)
    text = console.export_text()
    assert "[bold]Tides[/bold]" in text
    assert "HTTP 400 [x]" in text
    assert "/runs/[red]odd[/red]" in text


def test_a_huge_topic_is_shortened_on_screen() -> None:
    record = TopicRecord(
        index=0,
        topic="word " * 400_000,
        slug="word",
        status="failed",
        failed_stage="research",
        error="too long",
    )
    console = Console(record=True, width=200, color_system=None)
    print_summary(manifest([record]), console=console)
    assert len(console.export_text()) < 5_000


def test_shorten_keeps_one_bounded_line() -> None:
    assert shorten("a\nb   c") == "a b c"
    assert len(shorten("x" * 500)) == 80
    assert shorten("x" * 500).endswith("…")


STAGES = ("research", "write", "edit")
ANSI = re.compile(r"\x1b[\[\]]")


def started(topics: int, *, at: float = 0.0) -> RunStarted:
    return RunStarted(
        "rid", at, datetime.now().astimezone(), "parallel", 10, "sim", "u", topics, STAGES
    )


def chain(topic: Topic, t0: float, step: float, *, fail_at: str | None = None) -> Iterator[Event]:
    """One topic's events, a call per stage ``step`` seconds apart; ``fail_at`` a stage
    whose call is refused with a 429 and gives up."""
    yield Waited(topic, None, "slot", t0, t0)
    yield ChainStarted(topic, t0)
    t = t0
    for stage in STAGES:
        yield StageStarted(topic, stage, t)
        yield CallStarted(topic, stage, 1, "m", t)
        if stage == fail_at:
            error = CallError("HTTP 429: slow down [now]", status=429, retryable=True)
            yield CallFailed(topic, stage, 1, error, t, t + step)
            yield Waited(topic, stage, "backoff", t + step, t + step)
            yield StageErrored(topic, stage, error, 1, t, t + step)
            yield ChainFinished(topic, "failed", {}, stage, str(error), t0, t + step)
            return
        response = ChatResponse("out", "stop", 100, 50, "m")
        yield CallFinished(topic, stage, 1, response, t, t + step, 0.001)
        yield StageFinished(topic, stage, "m", "out", 1, 100, 50, t, t + step, cost=0.001)
        t += step
    yield ChainFinished(topic, "succeeded", {}, None, None, t0, t)


def synthetic_run(topics: int, seconds: float, *, fail_every: int = 0) -> list[Event]:
    """A run of ``topics`` chains over ``seconds`` of event time; every ``fail_every``-th
    topic fails at its write stage."""
    events: list[Event] = [started(topics)]
    step = seconds / topics / len(STAGES)
    for i in range(topics):
        topic = Topic(i, f"Topic {i}", f"topic-{i}")
        fail = "write" if fail_every and i % fail_every == fail_every - 1 else None
        events += chain(topic, i * seconds / topics, step, fail_at=fail)
    events.append(RunFinished(seconds, "finished"))
    return events


async def feed(observer: ProgressPrinter, events: list[Event]) -> str:
    for event in events:
        await observer.on_event(event)
    assert isinstance(observer.stream, io.StringIO)
    return observer.stream.getvalue()


async def test_plain_progress_prints_a_bounded_number_of_lines_for_a_big_run() -> None:
    """1,000 topics over 100 s with a 10 s interval: the header, ~10 status lines, one line
    per failure and the final line, not a line per topic."""
    printer = ProgressPrinter(stream=io.StringIO(), interval=10.0)
    lines = (await feed(printer, synthetic_run(1000, 100.0, fail_every=50))).splitlines()
    status = [line for line in lines if re.match(r"\[ *\d+\w*\] \d+/1000 topics done", line)]
    failures = [line for line in lines if line.startswith("FAIL ")]
    assert 9 <= len(status) <= 10
    assert len(failures) == 20
    assert len(lines) == 2 + len(status) + 20 + 1  # header, status, failures, final
    assert lines[-1].startswith("[1m40s] run finished: 1000/1000 topics done, 20 failed")


async def test_a_failure_is_one_line_as_it_happens() -> None:
    printer = ProgressPrinter(stream=io.StringIO())
    text = await feed(printer, synthetic_run(4, 4.0, fail_every=2))
    fails = [line for line in text.splitlines() if line.startswith("FAIL")]
    assert fails == [
        "FAIL topic-1  write: HTTP 429: slow down [now]",
        "FAIL topic-3  write: HTTP 429: slow down [now]",
    ]


async def test_status_lines_say_what_is_done_in_flight_spent_and_left() -> None:
    printer = ProgressPrinter(stream=io.StringIO(), interval=10.0)
    text = await feed(printer, synthetic_run(100, 100.0, fail_every=10)[:-1])
    first = [line for line in text.splitlines() if line.startswith("[ 10s]")]
    # Ten chains of 1 s settled by t=10, the tenth failed at its write stage after a 429.
    assert first == [
        "[ 10s] 10/100 topics done, 1 failed · 0 in flight · 29 calls (1 error, 1 × 429) · "
        "4,200 tokens · $0.0280 · ETA 1m30s"
    ]


async def test_plain_progress_never_writes_escape_codes() -> None:
    printer = ProgressPrinter(stream=io.StringIO(), interval=1.0, verbose=1)
    events = synthetic_run(30, 30.0, fail_every=3)
    events.insert(-1, RetryPassStarted(1, 10, 30.0))
    assert not ANSI.search(await feed(printer, events))


async def test_verbose_adds_a_line_per_finished_topic() -> None:
    printer = ProgressPrinter(stream=io.StringIO(), interval=1000.0, verbose=1)
    lines = (await feed(printer, synthetic_run(10, 10.0, fail_every=5))).splitlines()
    assert lines[2] == "ok   [ 1/10] topic-0  1.0s"
    assert lines[6] == "FAIL [ 5/10] topic-4  0.7s  write: HTTP 429: slow down [now]"
    assert len(lines) == 2 + 10 + 1


async def test_a_retry_pass_takes_its_topics_back_and_says_so() -> None:
    printer = ProgressPrinter(stream=io.StringIO(), interval=1000.0)
    events = synthetic_run(4, 4.0, fail_every=2)[:-1]
    again = Topic(1, "Topic 1", "topic-1")
    events += [RetryPassStarted(1, 2, 4.0), *chain(again, 4.0, 0.1), RunFinished(5.0, "finished")]
    lines = (await feed(printer, events)).splitlines()
    assert "retry pass 1: 2 failed topic(s) again" in lines
    assert lines[-1].startswith("[  5s] run finished: 3/4 topics done, 0 failed")


async def test_restored_topics_count_as_done() -> None:
    printer = ProgressPrinter(stream=io.StringIO(), interval=1.0)
    events: list[Event] = [started(3)]
    events += [TopicRestored(Topic(i, "t", f"t{i}"), "succeeded", {}) for i in range(2)]
    events += [*chain(Topic(2, "t", "t2"), 0.0, 1.0), RunFinished(3.0, "finished")]
    lines = (await feed(printer, events)).splitlines()
    assert lines[2].startswith("[  1s] 2/3 topics done, 0 failed · 1 in flight · 1 calls")
    assert lines[-1].startswith("[  3s] run finished: 3/3 topics done")


async def test_an_unpriced_call_makes_the_cost_unknown() -> None:
    printer = ProgressPrinter(stream=io.StringIO())
    topic = Topic(0, "t", "t")
    response = ChatResponse("out", "stop", 1, 1, "m")
    events: list[Event] = [started(1), CallStarted(topic, "research", 1, "m", 0.0)]
    events += [CallFinished(topic, "research", 1, response, 0.0, 1.0, None)]
    events += [RunFinished(1.0, "stopped", "budget")]
    assert (await feed(printer, events)).splitlines()[-1] == (
        "[  1s] run stopped: 0/1 topics done, 0 failed · 1 calls · 2 tokens · cost unknown"
    )


async def test_a_broken_stream_never_fails_the_run() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("gone")

    printer = ProgressPrinter(stream=Broken())
    for event in synthetic_run(3, 3.0, fail_every=1):
        await printer.on_event(event)  # no exception


def test_durations_keep_one_short_shape() -> None:
    assert [duration(s) for s in (0.4, 12.9, 100, 3599, 7500)] == [
        "0s",
        "12s",
        "1m40s",
        "59m59s",
        "2h05m",
    ]


def test_an_interrupted_run_is_not_told_to_start_its_topics_afresh() -> None:
    """An interrupted run is continued with `orchestrate resume` (the CLI prints it); the
    failed.yaml hint is for runs that ended."""
    m = manifest([TopicRecord(index=0, topic="a", slug="a", status="pending")])
    m.totals.pending = 1
    for status, hinted in (("interrupted", False), ("finished", True)):
        m.status = status  # type: ignore[assignment]
        out = io.StringIO()
        print_summary(m, console=Console(file=out, width=100))
        assert ("failed.yaml" in out.getvalue()) is hinted, status


async def test_verbose_numbers_count_up_when_chains_settle_together() -> None:
    """Two chains' last stages finish before either reports its end: still 1 and 2."""
    a, b = (Topic(index=i, text=f"t{i}", slug=f"topic-{i}") for i in range(2))
    first, second = list(chain(a, 0.0, 0.1)), list(chain(b, 0.0, 0.1))
    events = [started(2), *first[:-1], *second[:-1], first[-1], second[-1]]
    printer = ProgressPrinter(stream=io.StringIO(), interval=1000.0, verbose=1)
    out = await feed(printer, events)
    assert "[1/2] topic-0" in out and "[2/2] topic-1" in out
