"""The parallelism verdict from the numbers alone: the exact thresholds, what set the pace,
the peak overlap, and the waterfall that feeds it from a run's spans."""

from __future__ import annotations

import pytest

from orchestrator.trace._spans import SpanRecorder
from orchestrator.trace._verdict import assess, peak_overlap
from orchestrator.trace._waterfall import from_spans

from .test_spans import story


def verdict(
    calls: list[tuple[float, float]],
    *,
    wall: float = 10.0,
    allowed: int = 10,
    chains: int = 10,
    chain_time: float = 100.0,
    limiter_wait: float = 0.0,
    backoff_wait: float = 0.0,
):  # type: ignore[no-untyped-def]
    return assess(
        calls=calls,
        wall=wall,
        allowed=allowed,
        chains=chains,
        chain_time=chain_time,
        limiter_wait=limiter_wait,
        backoff_wait=backoff_wait,
    )


def side_by_side(n: int, seconds: float = 10.0) -> list[tuple[float, float]]:
    """``n`` calls over the same ``seconds``: effective parallelism n over that wall."""
    return [(0.0, seconds)] * n


# --- thresholds ---------------------------------------------------------------------------


def test_below_1_5_is_a_staircase_and_1_5_a_fan_for_two_chains() -> None:
    """With two chains 0.7 × 2 = 1.4 < 1.5: the staircase line decides alone."""
    below = verdict([(0.0, 100.0), (0.0, 49.0)], wall=100.0, allowed=2, chains=2)
    at = verdict([(0.0, 100.0), (0.0, 50.0)], wall=100.0, allowed=2, chains=2)
    assert (below.effective, below.verdict) == (1.49, "staircase")
    assert (at.effective, at.verdict, at.paced_by) == (1.5, "fan", None)


def test_fan_starts_exactly_at_0_7_of_the_concurrency_allowed() -> None:
    """Ten chains, ten allowed: 7.0 is a fan, 6.99 is between."""
    fan = verdict(side_by_side(7))
    between = verdict([*side_by_side(6), (0.0, 9.9)])
    assert (fan.effective, fan.verdict) == (7.0, "fan")
    assert (between.effective, between.verdict) == (6.99, "between")


def test_fan_line_uses_the_chains_when_fewer_than_allowed() -> None:
    """Three chains with ten allowed: 0.7 × min(10, 3) = 2.1."""
    assert verdict([*side_by_side(2), (0.0, 1.0)], chains=3).verdict == "fan"
    assert verdict([*side_by_side(2), (0.0, 0.9)], chains=3).verdict == "between"


def test_fan_line_uses_the_concurrency_when_below_the_chains() -> None:
    """Ten chains with four allowed: 0.7 × min(4, 10) = 2.8."""
    assert verdict([*side_by_side(2), (0.0, 8.0)], allowed=4).verdict == "fan"
    assert verdict([*side_by_side(2), (0.0, 7.9)], allowed=4).verdict == "between"


def test_between_starts_at_1_5_when_the_fan_line_is_higher() -> None:
    assert verdict([(0.0, 10.0), (0.0, 4.9)]).verdict == "staircase"
    assert verdict([(0.0, 10.0), (0.0, 5.0)]).verdict == "between"


def test_fewer_than_two_chains_gets_the_numbers_but_no_verdict() -> None:
    one = verdict([(0.0, 1.0), (1.0, 2.0)], wall=2.0, chains=1)
    assert (one.verdict, one.paced_by) == (None, None)
    assert (one.effective, one.peak, one.chains, one.allowed) == (1.0, 1, 1, 10)
    assert one.explanation and "one chain" in one.explanation
    assert verdict([], chains=0).verdict is None


def test_no_calls_gets_no_verdict_whatever_the_chains() -> None:
    """Every stage came from the store: there is nothing to judge."""
    none = verdict([], chains=5)
    assert (none.verdict, none.paced_by, none.effective, none.peak) == (None, None, 0.0, 0)
    assert none.explanation and "no calls" in none.explanation


def test_a_zero_wall_time_is_not_a_division_by_zero() -> None:
    result = verdict([(0.0, 0.0), (0.0, 0.0)], wall=0.0, chain_time=0.0)
    assert (result.effective, result.wait_share, result.verdict) == (0.0, 0.0, "staircase")


def test_numbers_are_reported_alongside_the_verdict() -> None:
    result = verdict(side_by_side(3), limiter_wait=10.0, backoff_wait=5.0)
    assert (result.call_time_s, result.wall_time_s, result.peak) == (30.0, 10.0, 3)
    assert result.wait_share == 0.15
    assert result.explanation and "3.00" in result.explanation


def test_reported_effective_parallelism_never_contradicts_the_verdict() -> None:
    """6.9996 is reported as 7.0, so with ten allowed it must be a fan (and 1.4996, reported
    as 1.5, no staircase): the verdict is judged on the number run.json shows."""
    for calls, allowed in (
        ([*side_by_side(6), (0.0, 9.996)], 10),
        ([(0.0, 10.0), (0.0, 4.996)], 2),
    ):
        result = verdict(calls, allowed=allowed, chains=allowed)
        assert result.effective is not None
        fan_at = max(0.7 * allowed, 1.5)
        assert (result.verdict == "fan") == (result.effective >= fan_at), result
        assert (result.verdict == "staircase") == (result.effective < 1.5), result


# --- what set the pace --------------------------------------------------------------------


def pace(
    *,
    limiter: float = 0.0,
    backoff: float = 0.0,
    gap: float = 0.0,
    chain_time: float = 100.0,
    allowed: int = 4,
) -> str | None:
    """What paced a staircase (effective 1.0, peak 2) whose chains spent ``chain_time`` in
    all: ``limiter`` and ``backoff`` waiting, ``gap`` between calls, the rest in calls."""
    in_calls = chain_time - limiter - backoff - gap
    calls = [(0.0, in_calls / 2), (in_calls / 4, in_calls * 3 / 4)]
    result = verdict(
        calls,
        wall=in_calls,
        allowed=allowed,
        chains=4,
        chain_time=chain_time,
        limiter_wait=limiter,
        backoff_wait=backoff,
    )
    assert (result.verdict, result.peak) == ("staircase", 2)
    return result.paced_by


def test_concurrency_one_sets_the_pace_whatever_else() -> None:
    assert pace(allowed=1, limiter=40.0, backoff=40.0) == "concurrency"
    result = verdict([(0.0, 5.0), (5.0, 10.0)], allowed=1, chains=2, chain_time=10.0)
    assert (result.verdict, result.paced_by) == ("staircase", "concurrency")
    assert result.explanation and "--sequential" in result.explanation


def test_nothing_in_particular_is_a_tail() -> None:
    assert pace() == "tail"


def test_the_rate_limiter_sets_the_pace_from_a_quarter_of_chain_time() -> None:
    assert pace(limiter=25.0) == "rate limiter"
    assert pace(limiter=24.9) == "tail"


def test_backoff_sets_the_pace_from_a_quarter_and_when_above_the_limiter() -> None:
    assert pace(backoff=25.0) == "backoff"
    assert pace(backoff=24.9) == "tail"
    assert pace(limiter=30.0, backoff=40.0) == "backoff"
    assert pace(limiter=30.0, backoff=30.0) == "rate limiter"


def test_time_between_calls_sets_the_pace_from_a_quarter_of_chain_time() -> None:
    assert pace(gap=25.0) == "overhead"
    assert pace(gap=24.9) == "tail"
    assert pace(gap=30.0, limiter=25.0) == "rate limiter"  # a wait explains it first
    assert pace(gap=30.0, backoff=25.0) == "backoff"


def test_waits_are_shares_of_chain_time_not_of_wall_time() -> None:
    """30 s of limiter wait is a lot in 100 s of chain time, little in 1000 s."""
    assert pace(limiter=30.0, chain_time=100.0) == "rate limiter"
    assert pace(limiter=30.0, chain_time=1000.0) == "tail"


def test_one_call_at_a_time_with_more_allowed_is_one_by_one() -> None:
    """Even with time between the calls: never two in flight points at the event loop."""
    result = verdict([(0.0, 5.0), (5.0, 10.0)], allowed=4, chains=2, chain_time=20.0)
    assert (result.verdict, result.paced_by, result.peak) == ("staircase", "one by one", 1)
    assert result.explanation and "peak 1 call at once" in result.explanation


def test_a_hung_call_is_never_blamed_on_a_synchronous_client() -> None:
    """One call that hangs for 60 s while the rest took a second each: a slow or hung
    answer, said as such."""
    calls = [(0.0, 60.0), (60.0, 61.0), (61.0, 62.0)]
    result = verdict(calls, wall=62.0, allowed=4, chains=3, chain_time=62.0)
    assert result.paced_by == "tail"
    assert result.explanation and "hung" in result.explanation
    assert "synchronous" not in result.explanation


def test_overlapping_calls_that_still_climb_are_a_tail() -> None:
    calls = [(0.0, 9.0), (0.0, 1.0), (1.0, 2.0)]
    result = verdict(calls, allowed=4, chains=3, chain_time=11.0)
    assert (result.verdict, result.paced_by) == ("staircase", "tail")


def test_a_run_between_fan_and_staircase_says_what_paced_it() -> None:
    result = verdict(side_by_side(3), chain_time=60.0, limiter_wait=30.0)
    assert (result.verdict, result.paced_by) == ("between", "rate limiter")
    assert result.explanation and "a fan needs 7.0" in result.explanation


# --- peak overlap -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intervals", "peak"),
    [
        ([], 0),
        ([(0.0, 1.0)], 1),
        ([(0.0, 1.0), (1.0, 2.0)], 1),  # touching ends do not overlap
        ([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], 1),
        ([(1.0, 2.0), (0.0, 1.0)], 1),  # in any order
        ([(0.0, 1.0), (0.0, 1.0)], 2),
        ([(0.0, 10.0), (1.0, 2.0), (1.5, 3.0)], 3),
        ([(0.0, 10.0), (5.0, 5.0)], 1),  # an instant inside a call adds nothing
        ([(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)], 2),
        ([(3.0, 1.0), (0.0, 5.0)], 1),  # a backwards interval is ignored
    ],
)
def test_peak_overlap(intervals: list[tuple[float, float]], peak: int) -> None:
    assert peak_overlap(intervals) == peak


# --- from spans: the waterfall that feeds the verdict -------------------------------------


@pytest.fixture
async def recorder() -> SpanRecorder:
    recorder = SpanRecorder()
    for event in story():
        await recorder.on_event(event)
    return recorder


def test_waterfall_has_one_bar_per_call_carrying_the_waits_before_it(
    recorder: SpanRecorder,
) -> None:
    picture = from_spans(recorder.spans, recorder.markers, run_id="run-1")
    assert picture.wall == pytest.approx(4.0)
    assert picture.stages == ("research", "write")
    bars = [(b.topic, b.stage, b.attempt, b.status, round(b.waited, 6)) for b in picture.bars]
    assert bars == [
        (0, "research", 1, "ok", 0.3),  # after the limiter wait
        (1, "research", 1, "error", 0.0),
        (1, "research", 2, "ok", 1.0),  # after the backoff
        (1, "write", 1, "error", 0.0),
        (1, "write", 1, "error", 0.0),  # the retry pass's call, cut short
    ]
    assert picture.bars[0].cost == 0.002 and picture.bars[0].input_tokens == 10
    assert picture.bars[0].slug == "tides"
    assert picture.bars[-1].error == "interrupted"
    assert picture.lanes == 2
    assert [b.lane for b in picture.bars] == [1, 2, 2, 2, 1]  # the retry: lowest free lane
    assert picture.slowest(1)[0].latency == pytest.approx(1.0)


def test_waterfall_measures_the_run_from_its_spans(recorder: SpanRecorder) -> None:
    p = from_spans(recorder.spans, (), run_id="run-1").parallelism
    assert p.call_time_s == pytest.approx(2.8)
    assert p.wall_time_s == pytest.approx(4.0)
    assert p.effective == pytest.approx(0.7)
    assert (p.peak, p.allowed, p.chains) == (2, 2, 2)  # two topics, though three chains ran
    assert p.wait_share == pytest.approx(round(1.3 / 4.5, 4))  # limiter 0.3 + backoff 1.0
    assert (p.verdict, p.paced_by) == ("staircase", "tail")


def test_in_flight_and_queued_columns_add_up_to_the_time_spent(recorder: SpanRecorder) -> None:
    picture = from_spans(recorder.spans, (), run_id="run-1")
    width = picture.wall / 8
    assert sum(picture.in_flight(8)) * width == pytest.approx(2.8)
    assert sum(picture.in_flight(8, "write")) * width == pytest.approx(0.9)
    assert sum(picture.in_flight(3)) * picture.wall / 3 == pytest.approx(2.8)
    assert sum(picture.queued_in(8)) * width == pytest.approx(0.5)  # Stars queued 0.5 s
    assert picture.in_flight(0) == [] and picture.queued_in(0) == []


def test_an_empty_run_has_no_verdict_and_no_bars() -> None:
    picture = from_spans([], [], run_id="empty")
    assert (picture.wall, picture.bars, picture.lanes) == (0.0, (), 0)
    assert picture.parallelism.verdict is None
    assert picture.in_flight(4) == [0.0] * 4
