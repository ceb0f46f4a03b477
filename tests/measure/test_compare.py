"""``orchestrate compare``: the theory functions, the report's numbers on a virtual clock,
and the command as a user runs it."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from pathlib import Path

import pytest

import orchestrator
from orchestrator import ChatRequest, CompareReport
from orchestrator.measure._compare_report import headline, theory_lines
from orchestrator.measure._schedule import best_speedup, list_schedule, rounds, uniform_time

from ..conftest import write
from ..fakes import FakeClient, fail_when
from ..session.test_end_to_end import FAST_SIM, orchestrate
from ..virtual_time import run_virtual

# Configured limits far above what the tests use: no learning probe, no waiting.
NO_LIMITS = {"rpm": 1_000_000, "tpm": 1_000_000_000}


# --- the theory ---------------------------------------------------------------------------


def test_best_speedup_is_topics_over_rounds() -> None:
    assert best_speedup(10, 5) == 5.0
    assert best_speedup(10, 4) == pytest.approx(10 / 3)  # the third round runs two alone
    assert best_speedup(10, 1) == 1.0
    assert best_speedup(3, 25) == 3.0  # more slots than topics: one round
    assert rounds(100, 25) == 4
    assert uniform_time(100, 25, 30.0) == 120.0
    assert uniform_time(101, 25, 30.0) == 150.0


def test_list_schedule_hands_each_job_to_the_slot_that_frees_first() -> None:
    assert list_schedule([3, 3, 3, 3], 2) == 6
    # One long job and five short ones: the short ones all go to the other slot.
    assert list_schedule([5, 1, 1, 1, 1, 1], 2) == 5
    # In order, not sorted: the long job last lands on a busy slot.
    assert list_schedule([1, 1, 1, 1, 1, 5], 2) == 7  # 2 + 5, not the 5 s ideal
    assert list_schedule([], 3) == 0
    assert list_schedule([2.5], 10) == 2.5
    with pytest.raises(ValueError, match="slots"):
        list_schedule([1.0], 0)


# --- the report's numbers, on a virtual clock ------------------------------------------------


def _topics(project: Path, names: list[str]) -> Path:
    lines = "\n".join(f"  - {name}" for name in names)
    return write(project / "topics.yaml", f"topics:\n{lines}\n")


def _seconds_per_call(table: dict[str, float]) -> FakeClient:
    """Calls take ``table[word]`` virtual seconds when the prompt mentions ``word``, else 1."""

    async def answer(request: ChatRequest) -> str:
        prompt = request.messages[-1]["content"]
        delay = next((s for word, s in table.items() if word in prompt), 1.0)
        await asyncio.sleep(delay)
        return f"output for: {prompt.splitlines()[0]}"

    return FakeClient(answer)


def test_report_numbers_on_a_virtual_clock(project: Path) -> None:
    """Three 3 s chains and one 6 s chain: 15 s in a row; on two slots the greedy schedule
    is 9 s (the slow chain comes last and starts at 3 s), so 1.67× of a best 2×."""
    topics = _topics(project, ["alpha", "bravo", "charlie", "slowpoke"])
    client = _seconds_per_call({"slowpoke": 2.0})

    report = run_virtual(
        orchestrator.compare(topics, concurrency=2, client=client, out="outs", **NO_LIMITS)
    )

    assert report.sequential.wall_time_s == pytest.approx(15.0, abs=0.01)
    assert report.parallel.wall_time_s == pytest.approx(9.0, abs=0.01)
    assert report.speedup == pytest.approx(15 / 9, abs=0.001)
    assert report.time_saved_pct == pytest.approx(40.0, abs=0.1)
    assert report.theory.rounds == 2
    assert report.theory.best_speedup == 2.0
    assert report.theory.chain_time_min_s == pytest.approx(3.0, abs=0.01)
    assert report.theory.chain_time_max_s == pytest.approx(6.0, abs=0.01)
    assert report.theory.expected_parallel_s == pytest.approx(9.0, abs=0.01)
    assert report.theory.expected_speedup == pytest.approx(15 / 9, abs=0.001)
    assert report.overhead_pct == pytest.approx(0.0, abs=0.2)
    assert report.efficiency == pytest.approx((15 / 9) / 2, abs=0.001)
    assert [t.sequential_s for t in report.per_topic] == pytest.approx([3, 3, 3, 6], abs=0.01)
    # In parallel, the third and fourth topics wait one 3 s chain for a slot.
    assert [t.parallel_queued_s for t in report.per_topic] == pytest.approx([0, 0, 3, 3], abs=0.01)
    assert report.sequential.calls == report.parallel.calls == 12
    assert report.outputs.identical == report.outputs.compared == 4
    assert report.outputs.answer.startswith("No: all 4 final outputs are identical")


def test_both_modes_and_the_report_are_written(project: Path) -> None:
    topics = _topics(project, ["alpha", "bravo", "charlie"])
    report = run_virtual(
        orchestrator.compare(
            topics, concurrency=3, client=_seconds_per_call({}), out="outs", **NO_LIMITS
        )
    )
    folder = project / "outs" / report.compare_id
    assert report.compare_id.startswith("compare-")
    for mode in ("sequential", "parallel"):
        manifest = orchestrator.RunManifest.model_validate_json(
            (folder / mode / "run.json").read_text()
        )
        assert manifest.status == "finished"
        assert manifest.mode == mode
        assert len(list((folder / mode).glob("*.md"))) == 3
    saved = CompareReport.model_validate_json((folder / "compare.json").read_text())
    assert saved == report
    text = (folder / "report.md").read_text()
    assert "3.00× faster" in text  # three 3 s chains: 9 s against 3 s
    assert "66.7% of the time saved" in text
    assert "= 3.00× faster" in text  # the best possible, spelled out
    assert "Did parallel execution change output quality?** No" in text
    assert not (project / "outs" / "latest").exists()  # compare leaves `latest` alone


def test_differing_outputs_are_measured_and_explained(project: Path) -> None:
    """A sampling model (every answer new): nothing identical, a similarity, the reason."""
    counter = itertools.count()

    def sampled(request: ChatRequest) -> str:
        return f"the same opening words and then draw {next(counter)}"

    topics = _topics(project, ["alpha", "bravo"])
    report = run_virtual(
        orchestrator.compare(
            topics, concurrency=2, client=FakeClient(sampled), out="outs", **NO_LIMITS
        )
    )
    assert report.outputs.identical == 0
    assert report.outputs.compared == 2
    assert 0.5 < (report.outputs.mean_similarity or 0) < 1.0
    answer = report.outputs.answer
    assert answer.startswith("Not from this alone: 2 of 2 final outputs differ")
    assert "never on the mode" in answer
    assert "temperature 0.2, 0.3, 0.7" in answer  # the default agents' temperatures
    assert report.per_topic[0].differing_stages == ["research", "write", "edit"]
    assert "no: 0." in (project / "outs" / report.compare_id / "report.md").read_text()


def test_a_failed_topic_is_left_out_of_the_quality_answer(project: Path) -> None:
    topics = _topics(project, ["alpha", "broken topic"])
    report = run_virtual(
        orchestrator.compare(
            topics,
            concurrency=2,
            client=FakeClient(fail_when("broken topic"), delay=1.0),
            out="outs",
            **NO_LIMITS,
        )
    )
    assert report.parallel is not None
    assert report.sequential.failed == report.parallel.failed == 1
    assert [t.identical for t in report.per_topic] == [True, None]
    assert report.outputs.compared == 1
    assert report.outputs.answer.startswith("No: the final output is identical")
    # A run that skips work is not faster: no speedup, and the report says why.
    assert report.speedup is report.time_saved_pct is report.efficiency is None
    assert report.not_comparable is not None and "1 topic did not finish" in report.not_comparable
    assert report.theory.chain_time_max_s == pytest.approx(3.0, abs=0.01)  # failed: left out
    text = (project / "outs" / report.compare_id / "report.md").read_text()
    assert "— (failed)" in text
    assert "No speedup to report: 1 topic did not finish in the sequential run" in text


def test_a_stopped_sequential_run_is_not_followed_by_a_parallel_one(project: Path) -> None:
    """No quota left: the parallel run would only stop too, so it is not started."""
    from orchestrator import CallError

    def no_quota(request: ChatRequest) -> str:
        raise CallError("HTTP 429 insufficient_quota", status=429, code="insufficient_quota")

    topics = _topics(project, ["alpha", "bravo"])
    client = FakeClient(no_quota)
    report = run_virtual(orchestrator.compare(topics, concurrency=2, client=client, out="outs"))
    assert report.sequential.status == "stopped"
    assert report.parallel is None
    assert report.not_comparable is not None
    assert report.not_comparable.startswith("the sequential run stopped (")
    assert report.speedup is None
    assert not (project / "outs" / report.compare_id / "parallel").exists()
    text = (project / "outs" / report.compare_id / "report.md").read_text()
    assert "| not run |" in text


def test_each_mode_warms_up_outside_its_time(project: Path) -> None:
    """One tiny call before each mode, not counted: the first mode pays no one-off costs."""
    topics = _topics(project, ["alpha"])
    client = _seconds_per_call({})
    report = run_virtual(
        orchestrator.compare(topics, concurrency=2, client=client, out="outs", **NO_LIMITS)
    )
    warm_ups = [r for r in client.requests if r.max_tokens == 1]
    assert len(warm_ups) == 2
    assert client.requests[0] in warm_ups and client.requests[4] in warm_ups
    assert report.sequential.calls == report.parallel.calls == 3  # not counted as calls
    assert report.sequential.wall_time_s == pytest.approx(3.0, abs=0.01)  # nor timed
    assert headline(report).startswith("With 2 chains at once the 1 topic took")
    assert theory_lines(report)[0].startswith("Best possible: 2 slots fill ceil(1 ÷ 2) = 1 time,")


def test_topic_text_is_escaped_in_the_report_table(project: Path) -> None:
    topics = _topics(project, ["'pipes | and <script>alert(1)</script>'"])
    report = run_virtual(
        orchestrator.compare(
            topics, concurrency=1, client=_seconds_per_call({}), out="outs", **NO_LIMITS
        )
    )
    text = (project / "outs" / report.compare_id / "report.md").read_text()
    assert "<script>" not in text
    assert "pipes \\| and &lt;script>" in text


# --- the command ---------------------------------------------------------------------------


async def test_compare_command_end_to_end(project: Path) -> None:
    """The real CLI on the simulated provider: both runs, a table, identical outputs."""
    code, out, err = await orchestrate(
        "compare", "configs/topics.example.yaml", "-c", "3", "--limit", "3", "-q",
        cwd=project,
        env=FAST_SIM,
    )  # fmt: skip
    assert code == 0, err
    assert "parallel -c 3" in out
    assert "simulated" in out  # which provider, in the table's title
    assert "No: all 3 final outputs are identical" in " ".join(out.split())
    [folder] = (project / "outputs").glob("compare-*")
    data = json.loads((folder / "compare.json").read_text())
    assert data["provider"] == "simulated"
    assert data["theory"]["best_speedup"] == 3.0
    assert data["outputs"]["identical"] == 3
    assert data["sequential"]["calls"] == data["parallel"]["calls"] == 9
    assert (folder / "report.md").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "0"], "0 is not in the range x>=1"),
        (["--limit", "0"], "0 is not in the range x>=1"),
        (["--rpm", "-5"], "-5 is not in the range x>=1"),
    ],
)
async def test_compare_refuses_flags_that_make_no_sense(
    project: Path, args: list[str], message: str
) -> None:
    code, out, err = await orchestrate("compare", "configs/topics.example.yaml", *args, cwd=project)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (project / "outputs").exists()


async def test_ctrl_c_during_compare_says_where_the_finished_work_is(project: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "compare", "configs/topics.example.yaml", "-v",
        cwd=project,
        env={**os.environ, "ORCHESTRATE_SIM_LATENCY_MEAN": "0.2"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    while not (await asyncio.wait_for(proc.stderr.readline(), 30)).startswith(b"ok "):
        pass  # until the first topic is done
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    [folder] = (project / "outputs").glob("compare-*")
    message = f"the sequential run's finished topics are saved in outputs/{folder.name}/sequential"
    assert message in err.decode()
    assert "no comparison report was written" in err.decode()
    assert (folder / "sequential" / "run.json").is_file()
    assert not (folder / "report.md").exists()


async def test_compare_config_error_creates_nothing(project: Path) -> None:
    write(project / "bad.yaml", "topics:\n  - {title: no topic field}\n")
    code, out, err = await orchestrate("compare", "bad.yaml", cwd=project)
    assert code == 2
    assert "bad.yaml" in err
    assert not (project / "outputs").exists()
