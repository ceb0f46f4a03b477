"""Rate limiters, driven on a virtual-time loop (no real sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.provider._headers import (
    RateLimitInfo,
    parse_duration,
    rate_limit_info,
    retry_after,
)
from orchestrator.provider._limits import (
    HEADROOM,
    LEARN_BURST,
    LEARN_RATE,
    Limit,
    Limiters,
    ModelLimiter,
    TokenBucket,
    learning_offset,
)

from ..virtual_time import run_virtual


def now() -> float:
    return asyncio.get_running_loop().time()


def test_1200_rpm_is_20_per_second_not_1200_at_once() -> None:
    """A one-second window: half a burst to start, then about 20 per second (paced at
    HEADROOM of the limit) — 100 requests in about 4.5 s, never a minute's 1,200 at once."""

    async def go() -> list[float]:
        limiter = ModelLimiter(Limit(rpm=1200), window=1.0)
        times = []
        for _ in range(100):
            await limiter.acquire(0)
            times.append(now())
        return times

    times = run_virtual(go())
    per_second = 20 * HEADROOM
    assert sum(t < 0.01 for t in times) == int(per_second / 2)
    assert times[-1] == pytest.approx((100 - per_second / 2) / per_second, abs=0.06)
    # No one-second span holds more than the limit's 20.
    assert max(sum(s <= t < s + 1 for t in times) for s in (0.5, 1.5, 2.5)) <= 20


def test_a_slow_rpm_still_admits_one_request_per_interval() -> None:
    """30 RPM over a 1 s window is under one request per window: one every ~2 s."""

    async def go() -> list[float]:
        limiter = ModelLimiter(Limit(rpm=30), window=1.0)
        times = []
        for _ in range(3):
            await limiter.acquire(0)
            times.append(now())
        return times

    times = run_virtual(go())
    assert times[2] - times[1] == pytest.approx(2.0 / HEADROOM, abs=0.01)


def test_token_bucket_refunds_what_a_call_did_not_use() -> None:
    """Reserve 1,000 of a 1,000-token window, use 100: the next 900 go through at once."""

    async def go() -> float:
        bucket = TokenBucket(60_000 / HEADROOM, window=1.0)  # paced at 1,000 per second
        await bucket.acquire(1000)
        bucket.adjust(1000 - 100)
        start = now()
        await bucket.acquire(900)
        return now() - start

    assert run_virtual(go()) == pytest.approx(0.0, abs=0.01)


def test_token_bucket_without_refund_waits_for_refill() -> None:
    async def go() -> float:
        bucket = TokenBucket(60_000 / HEADROOM, window=1.0)  # paced at 1,000 per second
        await bucket.acquire(1000)
        start = now()
        await bucket.acquire(500)
        return now() - start

    assert run_virtual(go()) == pytest.approx(0.5, abs=0.01)


def test_a_request_larger_than_a_window_waits_for_a_full_bucket_then_goes() -> None:
    """2,000 tokens against a 1,500-per-second share: slow, never impossible."""

    async def go() -> tuple[float, float]:
        bucket = TokenBucket(90_000 / HEADROOM, window=1.0)  # paced at 1,500 per second
        await bucket.acquire(1000)
        start = now()
        await bucket.acquire(2000)
        return now() - start, bucket.level

    waited, level = run_virtual(go())
    assert waited == pytest.approx(1000 / 1500, abs=0.01)
    assert level == pytest.approx(-500, abs=1)


def test_a_429_pause_holds_back_every_caller_of_that_model() -> None:
    async def go() -> list[float]:
        limits = Limiters({"m": Limit(rpm=6000)})
        first = limits.for_model("e", "m")
        first.pause(2.0)
        starts = []

        async def call(model: str) -> None:
            await limits.for_model("e", model).acquire(0)
            starts.append((model, now()))

        await asyncio.gather(call("m"), call("m"), call("other"))
        return starts

    starts = run_virtual(go())
    assert [t for m, t in starts if m == "m"] == [pytest.approx(2.0, abs=0.01)] * 2
    assert [t for m, t in starts if m == "other"] == [pytest.approx(0.0, abs=0.01)]


def test_unconfigured_model_starts_slowly_then_adopts_the_headers_limits() -> None:
    """Before the first answer, calls go on the slow start (a burst, then a ramp); the
    first answer's headers then set the pace for the rest."""

    async def go() -> tuple[list[float], Limit]:
        limiter = ModelLimiter(Limit(), window=1.0)
        starts: list[float] = []

        async def call(i: int) -> None:
            await limiter.acquire(0)
            starts.append(now())
            if i == 0:
                await asyncio.sleep(0.5)  # the first call takes 0.5 s to answer
                limiter.answered(RateLimitInfo(limit_requests=600, limit_tokens=1_000_000), ok=True)

        await asyncio.gather(*(call(i) for i in range(40)))
        return sorted(starts), limiter.limit

    starts, limit = run_virtual(go())
    assert limit == Limit(600, 1_000_000)
    assert starts[LEARN_BURST - 1] == pytest.approx(0.0, abs=0.01), "the burst goes at once"
    before = [t for t in starts if t < 0.5]
    expected = LEARN_BURST + sum(learning_offset(n) < 0.5 for n in range(LEARN_BURST, 40))
    assert len(before) == expected
    assert all(t == pytest.approx(learning_offset(n), abs=0.01) for n, t in enumerate(before))
    # Then about 10 per second (600 RPM): half a burst, and the others at that pace.
    per_second = 10 * HEADROOM
    after = 40 - len(before)
    assert starts[-1] == pytest.approx(0.5 + (after - per_second / 2) / per_second, abs=0.15)


def test_the_slow_start_opens_up_when_the_first_answer_is_slow() -> None:
    """64 calls against a server that takes 3 s to answer: all are sent within ~1.5 s, not
    one at a time (and not 64 at once either)."""
    offsets = [learning_offset(n) for n in range(64)]
    assert offsets[:LEARN_BURST] == [0.0] * LEARN_BURST
    assert offsets == sorted(offsets)
    assert offsets[-1] < 1.6
    assert learning_offset(LEARN_BURST) == pytest.approx(1 / LEARN_RATE, rel=0.05)


def test_unconfigured_model_without_headers_runs_unlimited_after_the_first_answer() -> None:
    async def go() -> list[float]:
        limiter = ModelLimiter(Limit(), window=1.0)
        starts: list[float] = []

        async def call(i: int) -> None:
            await limiter.acquire(0)
            starts.append(now())
            if i == 0:
                await asyncio.sleep(0.2)
                limiter.answered(None, ok=True)

        await asyncio.gather(*(call(i) for i in range(50)))
        return starts

    starts = run_virtual(go())
    assert max(starts) == pytest.approx(0.2, abs=0.01), "the rest go the moment it answers"


def test_configured_limit_gives_way_to_a_lower_provider_limit() -> None:
    async def go() -> Limit:
        limiter = ModelLimiter(Limit(rpm=1200, tpm=500_000), window=1.0)
        limiter.answered(RateLimitInfo(limit_requests=600, limit_tokens=900_000), ok=True)
        return limiter.limit

    assert run_virtual(go()) == Limit(rpm=600, tpm=500_000)


def test_nothing_remaining_pauses_until_one_request_is_back() -> None:
    async def go() -> float:
        limiter = ModelLimiter(Limit(rpm=1200), window=1.0)
        limiter.answered(
            RateLimitInfo(limit_requests=1200, remaining_requests=0, reset_requests=60.0),
            ok=True,
        )
        start = now()
        await limiter.acquire(0)
        return now() - start

    assert run_virtual(go()) == pytest.approx(0.05, abs=0.005)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("120ms", 0.12),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("2m", 120.0),
        ("7", 7.0),
        ("soon", None),
        ("", None),
    ],
)
def test_openai_durations_parse(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_rate_limit_headers_parse_whatever_their_case() -> None:
    info = rate_limit_info(
        {
            "X-RateLimit-Limit-Requests": "1200",
            "x-ratelimit-remaining-requests": "1199",
            "x-ratelimit-reset-requests": "50ms",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "oops",
            "content-type": "application/json",
        }
    )
    assert info == RateLimitInfo(1200, 200000, 1199, None, 0.05, None)
    assert rate_limit_info({"content-type": "text/html"}) is None


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after({"Retry-After": "2"}) == 2.0
    date = "Sun, 22 Nov 2026 16:00:10 GMT"
    from email.utils import parsedate_to_datetime

    at = parsedate_to_datetime(date).timestamp()
    assert retry_after({"retry-after": date}, now=at - 10) == pytest.approx(10.0)
    assert retry_after({}) is None
    assert retry_after({"retry-after": "whenever"}) is None


def test_ready_says_whether_acquire_would_wait() -> None:
    async def go() -> list[bool]:
        unlimited = ModelLimiter(Limit(), window=1.0, learn=False)
        limited = ModelLimiter(Limit(rpm=120), window=1.0)  # about 2 per second
        answers = [unlimited.ready(10), limited.ready(1)]  # before the first (half) burst
        await limited.acquire(1)
        answers.append(limited.ready(1))  # the window is used up
        await asyncio.sleep(1.0)
        answers.append(limited.ready(1))
        limited.pause(5)
        answers.append(limited.ready(1))
        return answers

    assert run_virtual(go()) == [True, False, False, True, False]


def test_a_429_pause_also_holds_callers_already_queued_in_the_limiter() -> None:
    async def go() -> float:
        limiter = ModelLimiter(Limit(rpm=60), window=1.0)  # about one call per second
        await limiter.acquire(0)
        queued = asyncio.ensure_future(limiter.acquire(0))  # waits for its limiter turn
        await asyncio.sleep(0.1)
        limiter.pause(5.0)  # a 429 arrives while it waits
        await queued
        return now()

    assert run_virtual(go()) >= 5.1


def test_learning_goes_on_after_a_failure_without_headers() -> None:
    """A dropped first call says nothing about limits: the slow start goes on."""

    async def go() -> tuple[bool, bool]:
        limiter = ModelLimiter(Limit(), window=1.0)
        await limiter.acquire(0)
        limiter.answered(None, ok=False)
        still_learning = limiter.learning
        await limiter.acquire(0)  # the next call goes through at once (the burst)
        limiter.answered(RateLimitInfo(limit_requests=600), ok=False)  # a 429 with headers
        return still_learning, limiter.learning

    assert run_virtual(go()) == (True, False)


def test_a_call_that_never_answers_holds_nobody_back() -> None:
    """The first call hangs: the others still go, on the slow start, never waiting for it."""

    async def go() -> float:
        limiter = ModelLimiter(Limit(), window=1.0)
        await limiter.acquire(0)  # ...and never gets an answer
        for _ in range(30):
            await asyncio.wait_for(limiter.acquire(0), 5.0)
        return now()

    assert run_virtual(go()) < 1.5


def test_callers_queued_before_a_lower_limit_is_adopted_follow_the_new_pace() -> None:
    async def go() -> list[float]:
        limiter = ModelLimiter(Limit(rpm=1200), window=1.0)
        starts: list[float] = []

        async def call() -> None:
            await limiter.acquire(0)
            starts.append(now())

        tasks = [asyncio.ensure_future(call()) for _ in range(40)]
        await asyncio.sleep(0.01)
        limiter.answered(RateLimitInfo(limit_requests=120), ok=True)  # 2 per second
        await asyncio.gather(*tasks)
        return starts

    starts = run_virtual(go())
    # At 1,200 RPM the 40 would be done in about 2 s; at the adopted 120 RPM it takes ~18 s.
    assert max(starts) > 15
