"""The simulated provider's rate limits and injected faults, over real HTTP.

Bucket tests drive the server with a fake clock: no sleeps, no wall-clock assertions.
Header and body details are read with a raw HTTP client; what a run sees goes through the
real openai client (``OpenAIChatClient``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from orchestrator import CallError, ChatRequest, OpenAIChatClient, SimServer, SimSettings
from orchestrator._errors import ConfigError
from orchestrator.config._sim_settings import resolve_sim_settings
from orchestrator.provider._tokens import estimate_message_tokens
from orchestrator.provider.sim._ratelimit import format_duration

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Topic: Tides\n\nPrepare a research brief."}]
MAX_TOKENS = 20
COST = estimate_message_tokens(MESSAGES) + MAX_TOKENS  # what one request charges to TPM


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def sim(
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Any] | None = None,
    **settings: Any,
) -> AsyncIterator[SimServer]:
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    if sleep is not None:
        kwargs["sleep"] = sleep
    async with SimServer(SimSettings(latency_mean=0, latency_jitter=0, **settings), **kwargs) as s:
        yield s


@asynccontextmanager
async def raw(server: SimServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=5) as client:
        yield client


async def post(client: httpx2.AsyncClient, model: str = MODEL, **body: Any) -> httpx2.Response:
    payload = {"model": model, "messages": MESSAGES, "max_tokens": MAX_TOKENS, **body}
    return await client.post("/chat/completions", json=payload)


@asynccontextmanager
async def sdk(server: SimServer, call_timeout: float = 5) -> AsyncIterator[OpenAIChatClient]:
    client = OpenAIChatClient.create(
        api_key="k", base_url=server.base_url, concurrency=4, timeout=call_timeout
    )
    try:
        yield client
    finally:
        await client.aclose()


def request(model: str = MODEL) -> ChatRequest:
    return ChatRequest(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS)


def ratelimit_headers(response: httpx2.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-ratelimit-")}


# -- headers -------------------------------------------------------------------------------


async def test_every_200_carries_ratelimit_headers_that_count_down() -> None:
    """limit = the configured RPM/TPM, remaining falls by one per request (and by the cost
    in tokens), as OpenAI counts it; reset is the time until the bucket is full again, in
    OpenAI's duration format."""
    clock = FakeClock()
    async with sim(clock, rpm=1200, tpm=60_000) as server, raw(server) as client:
        responses = [await post(client) for _ in range(3)]
    for i, response in enumerate(responses, start=1):
        assert response.status_code == 200
        # Each bucket holds a second's worth: 20 requests and 1,000 tokens.
        assert ratelimit_headers(response) == {
            "x-ratelimit-limit-requests": "1200",
            "x-ratelimit-remaining-requests": str(1200 - i),
            "x-ratelimit-reset-requests": f"{50 * i}ms",
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": str(60_000 - COST * i),
            "x-ratelimit-reset-tokens": f"{COST * i}ms",
        }


async def test_no_ratelimit_headers_without_limits_and_only_the_configured_kind() -> None:
    async with sim() as server, raw(server) as client:
        unlimited = await post(client)
    async with sim(FakeClock(), rpm=600) as server, raw(server) as client:
        rpm_only = await post(client)
    assert unlimited.status_code == rpm_only.status_code == 200
    assert ratelimit_headers(unlimited) == {}
    assert set(ratelimit_headers(rpm_only)) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.12, "120ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3600, "1h0m0s"),
        (-1, "0s"),
    ],
)
def test_durations_are_formatted_like_openai_headers(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- the buckets ---------------------------------------------------------------------------


async def test_21st_request_in_one_second_at_1200_rpm_is_refused_for_50ms() -> None:
    """1,200 RPM is 20 per second: the 21st request of a second waits one refill (50 ms)."""
    clock = FakeClock()
    async with sim(clock, rpm=1200) as server, raw(server) as client, sdk(server) as llm:
        for _ in range(20):
            await llm.complete(request())
        with pytest.raises(CallError) as info:
            await llm.complete(request())
        refused = await post(client)
        clock.now += 0.05
        admitted = await post(client)
        again = await post(client)
    assert (info.value.status, info.value.code, info.value.retryable) == (
        429,
        "rate_limit_exceeded",
        True,
    )
    assert refused.status_code == 429
    assert refused.headers["retry-after-ms"] == "50"
    assert refused.headers["retry-after"] == "1"
    # The second's 20 are spent: 1,180 of the minute's 1,200 remain (OpenAI's units).
    assert refused.headers["x-ratelimit-remaining-requests"] == "1180"
    assert refused.json() == {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-simulated on "
            "requests per min (RPM): Limit 1200, Used 20, Requested 1. "
            "Please try again in 50ms.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    # Refused requests charge nothing, so waiting retry-after-ms is enough.
    assert admitted.status_code == 200
    assert again.status_code == 429
    assert server.stats.ok == 21
    assert server.stats.rate_limited == 3


async def test_a_request_over_the_remaining_tokens_is_refused_with_type_tokens() -> None:
    """prompt + max_tokens is charged up front; the wait is until enough tokens flowed in."""
    clock = FakeClock()
    tpm = 60 * (COST + COST // 2)  # a bucket of one and a half requests
    async with sim(clock, tpm=tpm) as server, raw(server) as client:
        first = await post(client)
        second = await post(client)
    assert first.status_code == 200
    assert second.status_code == 429
    error = second.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    left = COST // 2
    wait_ms = -(-(COST - left) * 1000 // (COST + COST // 2))  # shortfall / refill rate, ceil
    assert second.headers["retry-after-ms"] == str(wait_ms)
    assert error["message"] == (
        f"Rate limit reached for gpt-4o-mini in organization org-simulated on tokens per min "
        f"(TPM): Limit {tpm}, Used {COST}, Requested {COST}. "
        f"Please try again in {wait_ms}ms."
    )


async def test_a_request_bigger_than_the_whole_token_bucket_is_slow_not_impossible() -> None:
    """Admitted when the bucket is full; the level goes negative and the next one waits."""
    clock = FakeClock()
    async with sim(clock, tpm=600) as server, raw(server) as client:  # 10 tokens a second
        big = await post(client)
        after = await post(client)
        clock.now += COST / 10 + 0.001
        later = await post(client)
    assert big.status_code == 200
    assert big.headers["x-ratelimit-remaining-tokens"] == str(600 - COST)
    assert big.headers["x-ratelimit-reset-tokens"] == format_duration(COST / 10)
    assert after.status_code == 429
    assert after.headers["retry-after-ms"] == str(COST * 100)  # (10 + COST - 10) / 10 s
    assert after.headers["retry-after"] == str(-(-COST // 10))
    assert later.status_code == 200


async def test_limits_are_per_model() -> None:
    clock = FakeClock()
    async with sim(clock, rpm=60) as server, sdk(server) as llm:
        await llm.complete(request("gpt-4o-mini"))
        with pytest.raises(CallError) as info:
            await llm.complete(request("gpt-4o-mini"))
        other = await llm.complete(request("gpt-4o"))
    assert info.value.status == 429
    assert other.headers["x-ratelimit-remaining-requests"] == "59"
    assert other.model == "gpt-4o"


# -- random faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "status", "code", "message"),
    [
        ("error_rate_429", 429, "rate_limit_exceeded", "Please try again in"),
        ("error_rate_500", 500, None, "The server had an error while processing your request."),
        ("error_rate_503", 503, None, "The engine is currently overloaded"),
    ],
)
async def test_an_error_rate_of_one_fails_every_call_with_that_status(
    setting: str, status: int, code: str | None, message: str
) -> None:
    async with sim(**{setting: 1.0}) as server, sdk(server) as llm:
        with pytest.raises(CallError) as info:
            await llm.complete(request())
    assert (info.value.status, info.value.code, info.value.retryable) == (status, code, True)
    assert message in info.value.message
    assert getattr(server.stats, setting.replace("_rate", "")) == 1
    assert server.stats.total == 1


async def test_error_responses_carry_openai_bodies_and_the_ratelimit_headers() -> None:
    async with sim(FakeClock(), rpm=1200, error_rate_503=1.0) as server, raw(server) as client:
        response = await post(client)
    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "message": "The engine is currently overloaded, please try again later.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert response.headers["x-ratelimit-remaining-requests"] == "1199"  # it was admitted


async def test_a_random_429_asks_for_a_short_wait_in_both_retry_headers() -> None:
    async with sim(error_rate_429=1.0) as server, raw(server) as client:
        responses = [await post(client) for _ in range(5)]
    waits = [int(r.headers["retry-after-ms"]) for r in responses]
    assert all(50 <= w <= 500 for w in waits)
    assert len(set(waits)) > 1
    assert {r.headers["retry-after"] for r in responses} == {"1"}
    error = responses[0].json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert error["message"].endswith(f"Please try again in {waits[0]}ms.")


async def test_a_dropped_connection_is_a_retryable_connection_error_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with sim(drop_rate=1.0) as server, sdk(server) as llm:
        with caplog.at_level(logging.WARNING):
            with pytest.raises(CallError) as info:
                await llm.complete(request())
    assert info.value.status is None
    assert info.value.retryable
    assert "connection failed" in info.value.message
    assert server.stats.dropped == 1
    assert [r for r in caplog.records if r.name.startswith("aiohttp")] == []


async def test_rates_of_a_tenth_give_about_a_tenth_each_and_the_same_counts_per_seed() -> None:
    async def counts() -> tuple[int, int, int]:
        async with sim(error_rate_500=0.1, error_rate_503=0.1, seed=7) as server:
            async with raw(server) as client:
                statuses = await asyncio.gather(*(post(client) for _ in range(200)))
        assert [r.status_code for r in statuses].count(500) == server.stats.error_500
        return server.stats.ok, server.stats.error_500, server.stats.error_503

    first = await counts()
    ok, e500, e503 = first
    assert ok + e500 + e503 == 200
    assert 8 <= e500 <= 35 and 8 <= e503 <= 35
    assert await counts() == first


async def test_faults_are_drawn_per_arrival_not_from_the_request() -> None:
    """The same request repeated fails sometimes and succeeds sometimes, so a retry can work."""
    async with sim(error_rate_500=0.5) as server, raw(server) as client:
        statuses = {(await post(client)).status_code for _ in range(20)}
    assert statuses == {200, 500}


async def test_limits_come_before_faults_and_refused_calls_draw_nothing() -> None:
    clock = FakeClock()
    async with sim(clock, rpm=60, error_rate_500=1.0) as server, raw(server) as client:
        first = await post(client)
        second = await post(client)
    assert (first.status_code, second.status_code) == (500, 429)
    assert (server.stats.error_500, server.stats.rate_limited) == (1, 1)


async def test_insufficient_quota_is_a_429_with_that_code_and_no_retry_after() -> None:
    async with sim(FakeClock(), rpm=60, insufficient_quota=True) as server:
        async with sdk(server) as llm:
            with pytest.raises(CallError) as info:
                await llm.complete(request())
        async with raw(server) as client:
            response = await post(client)
    assert (info.value.status, info.value.code) == (429, "insufficient_quota")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert "retry-after-ms" not in response.headers
    assert response.headers["x-ratelimit-remaining-requests"] == "60"  # nothing was charged
    assert response.json()["error"] == {
        "message": "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    assert server.stats.quota == 2


async def test_a_hang_ends_in_the_clients_timeout_and_frees_the_server() -> None:
    async with sim(hang_rate=1.0, hang_seconds=30) as server, sdk(server, call_timeout=0.2) as llm:
        with pytest.raises(CallError, match="timeout") as info:
            await llm.complete(request())
        for _ in range(200):
            if server.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert server.in_flight == 0
    assert info.value.retryable
    assert server.stats.hung == 1
    assert server.requests_served == 0


async def test_a_hang_waits_real_seconds_then_answers() -> None:
    """hang_seconds is not scaled by time_scale; a client that waits gets the answer."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async with sim(sleep=fake_sleep, hang_rate=1.0, hang_seconds=5, time_scale=0.01) as server:
        async with raw(server) as client:
            response = await post(client)
    assert response.status_code == 200
    assert slept == [5, 0]


# -- settings ------------------------------------------------------------------------------


def test_fault_rates_must_fit_in_one_draw() -> None:
    with pytest.raises(ValidationError, match="above 1; they are shares of one draw"):
        SimSettings(error_rate_500=0.6, drop_rate=0.5)
    with pytest.raises(ValidationError):
        SimSettings(error_rate_429=1.5)
    with pytest.raises(ConfigError) as info:
        resolve_sim_settings(
            {}, environ={"ORCHESTRATE_SIM_HANG_RATE": "0.7", "ORCHESTRATE_SIM_DROP_RATE": "0.7"}
        )
    assert "lower some" in info.value.message
    assert SimSettings(error_rate_500=0.5, error_rate_503=0.5).error_rate_503 == 0.5


def test_limits_and_faults_come_from_the_environment() -> None:
    settings = resolve_sim_settings(
        environ={
            "ORCHESTRATE_SIM_RPM": "1200",
            "ORCHESTRATE_SIM_ERROR_RATE_500": "0.1",
            "ORCHESTRATE_SIM_INSUFFICIENT_QUOTA": "true",
        }
    )
    assert (settings.rpm, settings.tpm) == (1200, None)
    assert settings.error_rate_500 == 0.1
    assert settings.insufficient_quota is True


def test_limits_and_faults_are_serve_sim_flags() -> None:
    from orchestrator.cli._tools import serve_sim

    args = ["--rpm", "1200", "--drop-rate", "0.02", "--insufficient-quota"]
    ctx = serve_sim.make_context("serve-sim", args)
    flags = {k: v for k, v in ctx.params.items() if k not in ("chain", "host", "port")}
    settings = resolve_sim_settings(flags=flags, environ={})
    assert (settings.rpm, settings.drop_rate, settings.insufficient_quota) == (1200, 0.02, True)
    assert settings.tpm is None
