"""trace.json against the Chrome Trace Event format rules Perfetto relies on — on hand-made
spans and on a real run's file — plus its round trip through ``load_trace``, the greedy
lanes, and the errors of reading a file that is not one of ours."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator import CallError, ChatRequest, ConfigError, RunControl
from orchestrator.session._setup import RunSetup, prepare
from orchestrator.trace._chrome_trace import (
    FORMAT,
    assign_lanes,
    chain_of,
    is_slot_wait,
    load_trace,
    queue_intervals,
    to_chrome_trace,
    write_trace,
)
from orchestrator.trace._spans import Span, SpanRecorder

from ..conftest import write
from ..fakes import FakeClient
from ..virtual_time import run_virtual
from .test_spans import story

# --- the format rules, as one checker used on every trace below ---------------------------


def _ns(us: float) -> int:
    """Perfetto keeps integer nanoseconds: compare there, not in float microseconds."""
    return round(us * 1000)


def check_chrome_trace(trace: dict[str, Any]) -> None:
    """Fail unless ``trace`` follows the Chrome Trace Event rules Perfetto needs."""
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    named: set[int] = set()
    used: set[int] = set()
    by_tid: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    counters: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        assert isinstance(event.get("ph"), str), event
        assert isinstance(event.get("pid"), int), event
        ph = event["ph"]
        if ph == "M":
            assert event["name"] in {"process_name", "thread_name", "thread_sort_index"}, event
            assert isinstance(event["args"], dict)
            if event["name"] == "thread_name":
                assert isinstance(event["args"]["name"], str) and event["args"]["name"]
                named.add(event["tid"])
        elif ph == "X":
            assert isinstance(event["name"], str) and event["name"], event
            for key in ("ts", "dur"):
                value = event[key]
                assert isinstance(value, int | float) and not isinstance(value, bool), event
                assert value >= 0, event
            assert isinstance(event["tid"], int), event
            assert isinstance(event.get("args", {}), dict), event
            used.add(event["tid"])
            start = _ns(event["ts"])
            by_tid[event["tid"]].append((start, _ns(event["ts"] + event["dur"]), event["name"]))
        elif ph == "C":
            assert isinstance(event["ts"], int | float) and event["ts"] >= 0, event
            (value,) = event["args"].values()
            assert isinstance(value, int) and value >= 0, event
            counters[event["name"]].append(event)
        elif ph == "i":
            assert event.get("s") in {"g", "p", "t"}, event
            assert isinstance(event["ts"], int | float) and event["ts"] >= 0, event
            used.add(event["tid"])
        else:
            pytest.fail(f"unexpected phase {ph!r}: {event}")
    assert used <= named, f"tids with no thread_name: {used - named}"
    for tid, intervals in by_tid.items():
        _check_nesting(tid, intervals)
    for name, series in counters.items():
        times = [e["ts"] for e in series]
        assert times == sorted(times), f"counter {name!r} goes back in time"
        assert next(iter(series[-1]["args"].values())) == 0, f"counter {name!r} does not end at 0"


def _check_nesting(tid: int, intervals: list[tuple[int, int, str]]) -> None:
    """On one track, complete events nest: each lies within the one open around it, and
    siblings do not overlap (touching is fine)."""
    stack: list[tuple[int, int, str]] = []
    for start, end, name in sorted(intervals, key=lambda i: (i[0], -i[1])):
        while stack and stack[-1][1] <= start:
            stack.pop()
        if stack:
            outer = stack[-1]
            assert end <= outer[1], f"tid {tid}: {name} [{start}, {end}] overlaps {outer}"
        stack.append((start, end, name))


def test_the_checker_catches_partial_overlap() -> None:
    """The nesting rule really bites: two overlapping siblings on one track fail it."""
    with pytest.raises(AssertionError, match="overlaps"):
        _check_nesting(1, [(0, 10, "a"), (5, 15, "b")])
    _check_nesting(1, [(0, 10, "a"), (10, 15, "b"), (0, 20, "parent"), (2, 3, "child")])


# --- a trace of hand-made events ----------------------------------------------------------


async def story_recorder() -> SpanRecorder:
    recorder = SpanRecorder(chain="article")
    for event in story():
        await recorder.on_event(event)
    return recorder


@pytest.fixture
async def recorder() -> SpanRecorder:
    return await story_recorder()


def chrome(recorder: SpanRecorder) -> dict[str, Any]:
    return to_chrome_trace(recorder.spans, recorder.markers, run_id="run-1", epoch=1.5e9)


def xs(trace: dict[str, Any], cat: str | None = None) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and (cat is None or e["cat"] == cat)]


def test_story_trace_follows_the_format_rules(recorder: SpanRecorder) -> None:
    check_chrome_trace(chrome(recorder))


def drawn(spans: list[Span]) -> list[Span]:
    """The spans trace.json draws as bars: all but the slot waits (the queue counter)."""
    return [s for s in spans if not is_slot_wait(s)]


def test_one_complete_event_per_span_and_per_call(recorder: SpanRecorder) -> None:
    """Every span but the slot waits, which the queue counter draws, is one X event."""
    trace = chrome(recorder)
    assert len(drawn(recorder.spans)) == len(recorder.spans) - 1
    assert len(xs(trace)) == len(drawn(recorder.spans))
    assert len(xs(trace, "call")) == len([s for s in recorder.spans if s.kind == "call"]) == 5
    assert Counter(e["cat"] for e in xs(trace)) == Counter(s.kind for s in drawn(recorder.spans))


def test_times_are_microseconds_from_the_run_start(recorder: SpanRecorder) -> None:
    trace = chrome(recorder)
    limiter = next(e for e in xs(trace) if e["name"] == "wait limiter")
    assert (limiter["ts"], limiter["dur"]) == (pytest.approx(100_000), pytest.approx(300_000))
    run = next(e for e in xs(trace, "run"))
    assert (run["ts"], run["dur"], run["tid"]) == (0, pytest.approx(4_000_000), 0)
    assert trace["otherData"] == {"format": FORMAT, "run_id": "run-1", "epoch": 1.5e9}


def test_a_chain_and_everything_in_it_share_its_lane(recorder: SpanRecorder) -> None:
    trace = chrome(recorder)
    owner = chain_of(recorder.spans)
    lanes = assign_lanes(recorder.spans)
    tid_of = {e["args"]["orchestrate.span.id"]: e["tid"] for e in xs(trace)}
    for span in drawn(recorder.spans):
        if span.kind == "run":
            assert tid_of[span.id] == 0
        else:
            assert tid_of[span.id] == lanes[owner[span.id]] >= 1, span


def test_counters_of_queued_chains_and_calls_in_flight(recorder: SpanRecorder) -> None:
    trace = chrome(recorder)
    series = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "C":
            series[e["name"]].append((e["ts"], *e["args"].values()))
    # Stars queued 0.5 s for a slot; the retry pass started it at once.
    assert series["chains queued for a slot"] == [(0, 1), (pytest.approx(500_000), 0)]
    calls = series["calls in flight"]
    assert max(count for _, count in calls) == 2  # Tides' and Stars' first calls overlapped
    assert calls[-1] == (pytest.approx(4_000_000), 0)  # the interrupted call, closed at the end


def test_a_retry_pass_is_a_global_instant_on_the_run_track(recorder: SpanRecorder) -> None:
    (instant,) = [e for e in chrome(recorder)["traceEvents"] if e["ph"] == "i"]
    assert instant == {
        "name": "retry pass 1 (1)",
        "ph": "i",
        "s": "g",
        "ts": pytest.approx(3_500_000),
        "pid": 1,
        "tid": 0,
    }


async def test_open_spans_are_left_out_not_drawn_with_a_null_end() -> None:
    """trace.json written before the run ends (e.g. by a crash) holds only closed spans."""
    recorder = SpanRecorder()
    for event in story()[:10]:
        await recorder.on_event(event)
    trace = chrome(recorder)
    assert len(xs(trace)) == len([s for s in drawn(recorder.spans) if s.end is not None]) >= 1
    check_chrome_trace(trace)


def test_trace_json_round_trips_through_load_trace(recorder: SpanRecorder, tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    write_trace(path, recorder.spans, recorder.markers, run_id="run-1", epoch=1.5e9)
    loaded = load_trace(path)
    assert (loaded.run_id, loaded.epoch) == ("run-1", 1.5e9)
    assert len(loaded.spans) == len(drawn(recorder.spans))
    for got, want in zip(loaded.spans, drawn(recorder.spans), strict=True):
        assert (got.id, got.parent, got.kind, got.name) == (
            want.id,
            want.parent,
            want.kind,
            want.name,
        )
        assert (got.status, got.error, got.topic) == (want.status, want.error, want.topic)
        assert got.start == pytest.approx(want.start, abs=1e-6)
        assert got.end == pytest.approx(want.end, abs=1e-6)
        assert got.attributes == want.attributes
    assert [m.name for m in loaded.markers] == [m.name for m in recorder.markers]
    assert [m.at for m in loaded.markers] == pytest.approx([m.at for m in recorder.markers])
    # The file is plain JSON any viewer opens, with the format tag that makes it ours.
    assert json.loads(path.read_text())["otherData"]["format"] == FORMAT


def test_a_loaded_trace_writes_the_same_file_again(recorder: SpanRecorder, tmp_path: Path) -> None:
    """Reading back and writing again changes nothing: no drift in times or fields."""
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_trace(first, recorder.spans, recorder.markers, run_id="run-1", epoch=1.5e9)
    loaded = load_trace(first)
    write_trace(second, loaded.spans, loaded.markers, run_id=loaded.run_id, epoch=loaded.epoch)
    assert json.loads(first.read_text()) == json.loads(second.read_text())


# --- lanes --------------------------------------------------------------------------------


def chain(span_id: int, start: float, end: float | None) -> Span:
    return Span(id=span_id, parent=1, kind="chain", name="invoke_workflow c", start=start, end=end)


def test_chains_back_to_back_share_one_lane() -> None:
    """A sequential run: each chain starts the instant the one before ends."""
    chains = [chain(i + 2, float(i), float(i + 1)) for i in range(5)]
    assert set(assign_lanes(chains).values()) == {1}


def test_n_simultaneous_chains_take_n_lanes() -> None:
    chains = [chain(i + 2, 0.0, 3.0) for i in range(4)]
    assert sorted(assign_lanes(chains).values()) == [1, 2, 3, 4]


def test_a_new_chain_takes_the_lowest_lane_freed() -> None:
    chains = [chain(2, 0.0, 5.0), chain(3, 0.0, 2.0), chain(4, 0.0, 1.0), chain(5, 3.0, 4.0)]
    lanes = assign_lanes(chains)
    assert [lanes[i] for i in (2, 3, 4)] == [1, 2, 3]
    assert lanes[5] == 2  # lanes 2 and 3 are free at 3.0: the lowest wins


def test_lanes_follow_start_times_not_span_order() -> None:
    """Ids follow the order chains were opened; the lanes follow their times."""
    chains = [chain(3, 2.0, 3.0), chain(2, 0.0, 1.0)]
    assert assign_lanes(chains) == {2: 1, 3: 1}


def test_an_open_chain_keeps_its_lane() -> None:
    chains = [chain(2, 0.0, None), chain(3, 5.0, 6.0)]
    assert assign_lanes(chains) == {2: 1, 3: 2}


def test_a_staircase_run_draws_one_lane_and_a_fan_many(tmp_path: Path) -> None:
    """Ten chains queued by a sequential run are one lane plus a counter, not ten lanes."""

    def run_of(starts: list[tuple[float, float]]) -> dict[str, Any]:
        spans = [Span(1, None, "run", "run", 0.0, 10.0)]
        for i, (start, end) in enumerate(starts):
            spans.append(chain(i + 2, start, end))
            spans[-1].attributes["orchestrate.queued_s"] = start
        return to_chrome_trace(spans, [], run_id="r", epoch=0.0)

    staircase = run_of([(float(i), float(i + 1)) for i in range(10)])
    fan = run_of([(0.0, 1.0)] * 10)
    for trace in (staircase, fan):
        check_chrome_trace(trace)
    assert {e["tid"] for e in xs(staircase, "chain")} == {1}
    assert {e["tid"] for e in xs(fan, "chain")} == set(range(1, 11))
    queued = [e["args"]["queued"] for e in staircase["traceEvents"] if e["ph"] == "C"]
    assert max(queued) == 9 and queued[-1] == 0


def test_queue_intervals_end_at_the_chain_start_and_never_before_zero() -> None:
    a = chain(2, 3.0, 4.0)
    a.attributes["orchestrate.queued_s"] = 3.0
    b = chain(3, 1.0, 2.0)
    b.attributes["orchestrate.queued_s"] = 5.0  # more than the time since t=0: clamped
    assert queue_intervals([a, b]) == [(0.0, 3.0), (0.0, 1.0)]


# --- a real run's trace.json --------------------------------------------------------------


def checked_run(
    folder: Path, topics: list[str], *, prompts: tuple[str, str, str] | None = None, **kw: Any
) -> tuple[RunSetup, Path]:
    """A checked three-stage run (model m1) over ``topics`` in ``folder``, and an empty run
    folder for it. Run it with ``setup.execute`` rather than ``orchestrator.run``: the
    store opens in a thread, which a virtual clock cannot wait for (time jumps to the
    timeout); the session itself is the same code."""
    stages = ("research", "write", "edit")
    for name, prompt in zip(
        stages, prompts or [f"{s} {{{{ topic }}}}" for s in stages], strict=True
    ):
        write(folder / "agents" / f"{name}.yaml", f"model: m1\nprompt: '{prompt}'\n")
    retry = kw.pop("retry", "")
    chain = write(folder / "configs" / "chain.yaml", f"stages: [research, write, edit]\n{retry}")
    listed = write(folder / "topics.yaml", "".join(f"- {t}\n" for t in topics))
    kw.setdefault("rpm", 1_000_000)
    kw.setdefault("tpm", 1_000_000_000)
    setup = prepare(listed, chain=chain, environ={}, **kw)
    run_dir = folder / "run"
    run_dir.mkdir()
    return setup, run_dir


def real_run(folder: Path) -> tuple[Path, orchestrator.RunManifest]:
    """Five topics, three 1 s stages, three slots, a 60 rpm limit (so calls wait on it), a
    429 once for bravo (a backoff) and charlie's write failing every try until the retry
    pass: on a virtual clock, through the run's own session code."""
    seen: Counter[str] = Counter()

    def answer(request: ChatRequest) -> str:
        prompt = request.messages[-1]["content"]
        seen[prompt] += 1
        if prompt.startswith("R bravo") and seen[prompt] == 1:
            raise CallError("HTTP 429: slow down", status=429, retryable=True, retry_after=2.0)
        if prompt.startswith("W charlie") and seen[prompt] <= 2:
            raise CallError("HTTP 503: busy", status=503, retryable=True)
        return f"out {prompt[:20]}"

    setup, run_dir = checked_run(
        folder,
        ["alpha", "bravo", "charlie", "d", "e"],
        prompts=("R {{ topic }}", "W {{ topic }} <{{ research }}>", "E {{ topic }}"),
        retry="retry: {attempts: 2}\n",
        client=FakeClient(answer, delay=1.0),
        concurrency=3,
        rpm=60,
        tpm=10_000_000,
        retry_passes=1,
    )
    manifest = run_virtual(setup.execute("run-real", run_dir))
    return run_dir / "trace.json", manifest


@pytest.fixture(scope="module")
def real_trace(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], orchestrator.RunManifest, Path]:
    path, manifest = real_run(tmp_path_factory.mktemp("real"))
    return json.loads(path.read_text()), manifest, path


def test_real_run_is_the_story_it_was_meant_to_be(real_trace: Any) -> None:
    """Guard the fixture: limiter waits, a backoff, a failed call and a retry pass happened."""
    trace, manifest, _ = real_trace
    names = Counter(e["name"] for e in xs(trace))
    assert names["wait limiter"] >= 1 and names["wait backoff"] >= 1
    assert any(
        e["ph"] == "i" and e["name"].startswith("retry pass 1") for e in trace["traceEvents"]
    )
    assert [e["args"]["orchestrate.span.status"] for e in xs(trace, "call")].count("error") == 3
    assert manifest.totals.succeeded == 5


def test_real_run_trace_follows_the_format_rules(real_trace: Any) -> None:
    trace, _, _ = real_trace
    check_chrome_trace(trace)


def test_real_run_has_one_call_event_per_call_in_run_json(real_trace: Any) -> None:
    trace, manifest, _ = real_trace
    assert len(xs(trace, "call")) == manifest.totals.calls == 15 + 3


def test_real_run_round_trips_through_load_trace(real_trace: Any) -> None:
    trace, manifest, path = real_trace
    loaded = load_trace(path)
    assert loaded.run_id == manifest.run_id
    assert len(loaded.spans) == len(xs(trace))
    assert [s.id for s in loaded.spans] == sorted(s.id for s in loaded.spans)
    owner = chain_of(loaded.spans)
    assert all(s.id in owner for s in loaded.spans if s.kind != "run")


def test_an_interrupted_run_closes_its_open_spans_and_still_nests(tmp_path: Path) -> None:
    """Ctrl-C at 0.5 s with a 0.2 s grace: the two 1 s calls in flight never come back;
    their call, stage and chain spans end with the run, marked interrupted."""
    setup, run_dir = checked_run(
        tmp_path, ["alpha", "bravo", "charlie"], client=FakeClient(delay=1.0), concurrency=2
    )
    control = RunControl(grace=0.2)

    async def go() -> orchestrator.RunManifest:
        asyncio.get_running_loop().call_later(0.5, control.interrupt)
        return await setup.execute("run-cut", run_dir, control=control)

    manifest = run_virtual(go())
    assert manifest.status == "interrupted"
    trace = json.loads((run_dir / "trace.json").read_text())
    check_chrome_trace(trace)
    cut = [e for e in xs(trace) if e["args"].get("orchestrate.span.error") == "interrupted"]
    assert Counter(e["cat"] for e in cut) == {"call": 2, "stage": 2, "chain": 2}
    (run,) = xs(trace, "run")
    assert run["args"]["orchestrate.status"] == "interrupted"
    for event in cut:
        assert event["ts"] + event["dur"] == pytest.approx(run["ts"] + run["dur"], abs=1)
    assert len(load_trace(run_dir / "trace.json").spans) == len(xs(trace))


# --- reading a file that is not a trace of ours -------------------------------------------


def _other_chrome_trace() -> str:
    return json.dumps(
        {"traceEvents": [{"name": "x", "ph": "X", "ts": 0, "dur": 1, "pid": 1, "tid": 1}]}
    )


def _ours(*events: Any, **other: Any) -> str:
    return json.dumps({"traceEvents": list(events), "otherData": {"format": FORMAT, **other}})


TRUNCATED_EVENT = {"name": "chat m1", "ph": "X", "ts": 0, "pid": 1, "tid": 1}  # no dur, no args


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "cannot read the trace"),
        ('{"traceEvents": [{"ph": "X"', "cannot read the trace"),  # the file cut short
        (_other_chrome_trace(), "not a trace written by orchestrate"),
        ("[]", "not a trace written by orchestrate"),  # the bare-array Chrome format
        (json.dumps({"otherData": {"format": "orchestrate-trace/0"}}), "not a trace written"),
        (_ours(TRUNCATED_EVENT), "a trace event lacks"),
        (_ours({"name": "retry", "ph": "i", "pid": 1}), "a trace event lacks"),
        (_ours("not an event"), "a trace event is damaged"),
        (json.dumps({"otherData": {"format": FORMAT}}), "a trace event lacks"),
    ],
    ids=[
        "not-json",
        "truncated-file",
        "someone-elses",
        "array-format",
        "other-version",
        "truncated-event",
        "instant-without-ts",
        "event-not-object",
        "no-events",
    ],
)
def test_load_trace_errors_are_config_errors_naming_the_file(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "trace.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says) as info:
        load_trace(path)
    assert info.value.file == str(path)
    assert str(path) in str(info.value)
    assert info.value.hint


def test_load_trace_of_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "trace.json"
    with pytest.raises(ConfigError, match="no trace here") as info:
        load_trace(path)
    assert info.value.file == str(path)


def test_load_trace_of_a_folder_or_binary_is_a_config_error(tmp_path: Path) -> None:
    binary = tmp_path / "trace.json"
    binary.write_bytes(b"\xff\xfe\x00{")
    for path in (tmp_path, binary):
        with pytest.raises(ConfigError) as info:
            load_trace(path)
        assert info.value.file == str(path)


SPAN_ARGS = {
    "orchestrate.span.id": 1,
    "orchestrate.span.parent": None,
    "orchestrate.span.kind": "run",
    "orchestrate.span.status": "ok",
}


@pytest.mark.parametrize("epoch", ["yesterday", None, [1]])
def test_load_trace_with_a_damaged_epoch_is_a_config_error(tmp_path: Path, epoch: Any) -> None:
    path = tmp_path / "trace.json"
    path.write_text(_ours(epoch=epoch))
    with pytest.raises(ConfigError) as info:
        load_trace(path)
    assert info.value.file == str(path)


def test_load_trace_with_args_not_an_object_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text(_ours({"name": "x", "ph": "X", "ts": 0, "dur": 1, "args": "oops"}))
    with pytest.raises(ConfigError) as info:
        load_trace(path)
    assert info.value.file == str(path)


def test_load_trace_with_a_null_span_id_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    event = {"name": "x", "ph": "X", "ts": 0, "dur": 1}
    path.write_text(
        _ours(
            {**event, "args": SPAN_ARGS},
            {**event, "args": {**SPAN_ARGS, "orchestrate.span.id": None}},
        )
    )
    with pytest.raises(ConfigError) as info:
        load_trace(path)
    assert info.value.file == str(path)
