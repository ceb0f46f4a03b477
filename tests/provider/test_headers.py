"""Rate-limit and retry headers in every spelling real servers send: nothing raises, and
only a positive, finite limit is ever adopted (property tests, then the cases by name)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.provider._headers import ABSURD_LIMIT, RateLimitInfo, rate_limit_info, retry_after
from orchestrator.provider._limits import Limit, ModelLimiter

from ..virtual_time import run_virtual

NAMES = [
    f"x-ratelimit-{what}-{kind}"
    for what in ("limit", "remaining", "reset")
    for kind in ("requests", "tokens")
] + ["retry-after", "retry-after-ms", "x-ratelimit-limit", "content-type"]

# What servers and gateways put in these headers, well formed or not.
VALUES = st.one_of(
    st.sampled_from(
        [
            "-1",
            "0",
            "inf",
            "-inf",
            "nan",
            "Infinity",
            "unlimited",
            "",
            " ",
            "1200, 1200",
            "1e308",
            "1e400",
            "2147483647",
            "9223372036854775807",
            "6m0s",
            "-5s",
            "1h2m3.5s",
            "120ms",
            "0.5",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Mon, 99 Foo 2015",
            "1,2,3",
            "0x10",
        ]
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)


def _case(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title()])


HEADERS = st.dictionaries(st.sampled_from(NAMES).flatmap(_case), VALUES, max_size=10)


def _well_formed(info: RateLimitInfo) -> None:
    for value in (info.limit_requests, info.limit_tokens):
        assert value is None or (isinstance(value, int) and 1 <= value < ABSURD_LIMIT)
    for value in (info.remaining_requests, info.remaining_tokens):
        assert value is None or (isinstance(value, int) and value >= 0)
    for seconds in (info.reset_requests, info.reset_tokens):
        assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= 86_400)
    if info.limit_requests is None:
        assert info.remaining_requests is None, "remaining without a limit states nothing"


@given(HEADERS)
def test_any_header_dict_parses_to_well_formed_values_or_none(headers: dict[str, str]) -> None:
    info = rate_limit_info(headers)
    if info is not None:
        _well_formed(info)
    wait = retry_after(headers)
    assert wait is None or (math.isfinite(wait) and 0 <= wait <= 86_400)


LIMITS = st.builds(
    Limit,
    st.one_of(st.none(), st.integers(min_value=1, max_value=100_000)),
    st.one_of(st.none(), st.integers(min_value=1_000, max_value=10_000_000)),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(LIMITS, st.lists(st.tuples(HEADERS, st.booleans()), min_size=1, max_size=6))
def test_any_answers_leave_the_limiter_usable_and_within_the_configured_limit(
    configured: Limit, answers: list[tuple[dict[str, str], bool]]
) -> None:
    """Whatever the headers say, the limiter never raises, adopts only positive limits no
    higher than the configured ones, and still lets calls through."""

    async def go() -> Limit:
        limiter = ModelLimiter(configured, window=1.0)
        for headers, ok in answers:
            await limiter.acquire(10)
            limiter.answered(rate_limit_info(headers), ok=ok)
        limiter.answered(None, ok=True)  # learning, if any, ends
        for _ in range(3):
            await limiter.acquire(10)
        return limiter.limit

    limit = run_virtual(go(), limit=10_000)
    for value, ceiling in ((limit.rpm, configured.rpm), (limit.tpm, configured.tpm)):
        assert value is None or value >= 1
        if ceiling is not None:
            assert value is not None and value <= ceiling


@pytest.mark.parametrize("unlimited", ["-1", "0", "inf", "-inf", "nan", "unlimited", ""])
def test_a_dimension_stated_as_unlimited_is_no_limit(unlimited: str) -> None:
    """The crash of issue 15: `-1` tokens killed every run; `inf` overflowed; `0` paced."""
    headers = {
        "x-ratelimit-limit-tokens": unlimited,
        "x-ratelimit-remaining-tokens": unlimited,
        "x-ratelimit-limit-requests": unlimited,
        "x-ratelimit-remaining-requests": unlimited,
        "x-ratelimit-reset-requests": unlimited,
    }
    info = rate_limit_info(headers)
    assert info is not None and not info.has_limits
    assert (info.remaining_requests, info.remaining_tokens) == (None, None)

    async def go() -> tuple[Limit, float]:
        limiter = ModelLimiter(Limit(), window=1.0)
        await limiter.acquire(1764)
        limiter.answered(rate_limit_info(headers), ok=True)
        start = asyncio.get_running_loop().time()
        for _ in range(100):
            await limiter.acquire(1764)
        return limiter.limit, asyncio.get_running_loop().time() - start

    limit, took = run_virtual(go())
    assert limit == Limit()
    assert took < 0.01, "nothing paces an unlimited model"


def test_remaining_zero_without_a_limit_does_not_pause() -> None:
    info = rate_limit_info(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    )
    assert info is not None and info.remaining_requests is None


def test_absurdly_large_limits_mean_no_limit() -> None:
    info = rate_limit_info(
        {"x-ratelimit-limit-requests": "2147483647", "x-ratelimit-limit-tokens": "1e400"}
    )
    assert info == RateLimitInfo()


def test_a_repeated_header_joined_by_commas_reads_its_first_value() -> None:
    info = rate_limit_info({"x-ratelimit-limit-requests": "1200, 1200"})
    assert info is not None and info.limit_requests == 1200


@pytest.mark.parametrize("value", ["inf", "nan", "-3", "1e9", "soon", "Mon, 99 Foo 2015"])
def test_unusable_retry_after_is_none(value: str) -> None:
    assert retry_after({"retry-after": value}) is None
    assert retry_after({"retry-after-ms": value}) is None


def test_a_learned_limit_is_followed_up_and_down_within_the_configured_one() -> None:
    """A tier upgrade raises the pace, a shared key lowers it; never past what was set."""

    async def go() -> list[Limit]:
        learned = ModelLimiter(Limit(), window=1.0, learn=False)
        capped = ModelLimiter(Limit(rpm=1000, tpm=500_000), window=1.0)
        seen = []
        for rpm, tpm in ((600, 100_000), (3000, 900_000), (300, 50_000)):
            info = RateLimitInfo(limit_requests=rpm, limit_tokens=tpm)
            learned.answered(info, ok=True)
            capped.answered(info, ok=True)
            seen += [learned.limit, capped.limit]
        return seen

    assert run_virtual(go()) == [
        Limit(600, 100_000),
        Limit(600, 100_000),
        Limit(3000, 900_000),
        Limit(1000, 500_000),
        Limit(300, 50_000),
        Limit(300, 50_000),
    ]


def test_a_raised_limit_speeds_callers_up() -> None:
    async def go() -> float:
        limiter = ModelLimiter(Limit(), window=1.0, learn=False)
        limiter.answered(RateLimitInfo(limit_requests=60), ok=True)  # one a second
        for _ in range(3):
            await limiter.acquire(0)
        limiter.answered(RateLimitInfo(limit_requests=6000), ok=True)  # upgraded
        start = asyncio.get_running_loop().time()
        for _ in range(40):
            await limiter.acquire(0)
        return asyncio.get_running_loop().time() - start

    assert run_virtual(go()) < 1.0
