"""The simulated provider, reached through the real openai client over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import openai
import pytest

from orchestrator import CallError, ChatRequest, OpenAIChatClient, SimServer, SimSettings
from orchestrator._errors import ConfigError
from orchestrator.config._sim_settings import resolve_sim_settings
from orchestrator.provider._tokens import estimate_message_tokens, estimate_tokens

FAST = SimSettings(latency_mean=0.0, latency_jitter=0.0)


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(FAST) as s:
        yield s


@pytest.fixture
async def client(server: SimServer) -> AsyncIterator[OpenAIChatClient]:
    c = OpenAIChatClient.create(api_key="k", base_url=server.base_url, concurrency=4, timeout=10)
    yield c
    await c.aclose()


def research_request(topic: str = "Tides", **kw: object) -> ChatRequest:
    return ChatRequest(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a meticulous research analyst."},
            {"role": "user", "content": f"Topic: {topic}\n\nPrepare a research brief."},
        ],
        **kw,  # type: ignore[arg-type]
    )


async def test_same_request_same_answer_with_consistent_usage(client: OpenAIChatClient) -> None:
    first = await client.complete(research_request(max_tokens=500))
    second = await client.complete(research_request(max_tokens=500))
    assert first.text == second.text
    assert "Tides" in first.text
    assert first.completion_tokens == estimate_tokens(first.text)
    assert first.prompt_tokens == estimate_message_tokens(research_request().messages)
    assert first.finish_reason in ("stop", "length")


async def test_different_requests_get_different_answers(client: OpenAIChatClient) -> None:
    a = await client.complete(research_request("Tides"))
    b = await client.complete(research_request("Volcanoes"))
    c = await client.complete(research_request("Tides", temperature=0.1))
    assert len({a.text, b.text, c.text}) == 3


async def test_max_tokens_caps_the_answer(client: OpenAIChatClient) -> None:
    response = await client.complete(research_request(max_tokens=20))
    assert response.completion_tokens <= 20
    assert response.finish_reason == "length"


async def test_prompt_over_the_context_window_is_a_400_not_retryable() -> None:
    async with SimServer(SimSettings(latency_mean=0, context_window=50)) as server:
        client = OpenAIChatClient.create(
            api_key="k", base_url=server.base_url, concurrency=1, timeout=10
        )
        try:
            with pytest.raises(CallError) as info:
                await client.complete(research_request("x" * 400, max_tokens=10))
        finally:
            await client.aclose()
    assert info.value.status == 400
    assert info.value.code == "context_length_exceeded"
    assert not info.value.retryable
    assert "maximum context length is 50 tokens" in info.value.message


async def test_models_endpoint_lists_models(server: SimServer) -> None:
    sdk = openai.AsyncOpenAI(api_key="k", base_url=server.base_url, max_retries=0)
    try:
        models = [m.id async for m in sdk.models.list()]
    finally:
        await sdk.close()
    assert "gpt-4o-mini" in models


async def test_malformed_request_gets_an_openai_style_400(server: SimServer) -> None:
    sdk = openai.AsyncOpenAI(api_key="k", base_url=server.base_url, max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(model="m", messages=[])
    finally:
        await sdk.close()
    assert "messages" in str(info.value)


async def test_latency_follows_settings_and_time_scale() -> None:
    """A "10 s" call plus 0.01 s per output token, at time_scale 0.01, sleeps
    (10 + 0.01 * tokens) * 0.01 real seconds."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = SimSettings(
        latency_mean=10.0, latency_jitter=0.0, per_output_token=0.01, time_scale=0.01
    )
    async with SimServer(settings, sleep=fake_sleep) as server:
        client = OpenAIChatClient.create(
            api_key="k", base_url=server.base_url, concurrency=1, timeout=10
        )
        try:
            response = await client.complete(research_request())
        finally:
            await client.aclose()
    assert slept == [pytest.approx((10 + 0.01 * response.completion_tokens) * 0.01)]


async def test_a_client_that_gives_up_cancels_its_simulated_wait() -> None:
    """A timed-out call does not keep the server busy (nor delay its shutdown)."""
    async with SimServer(SimSettings(latency_mean=30, latency_jitter=0)) as server:
        client = OpenAIChatClient.create(
            api_key="k", base_url=server.base_url, concurrency=1, timeout=0.2
        )
        try:
            with pytest.raises(CallError, match="timeout"):
                await client.complete(research_request())
        finally:
            await client.aclose()
        for _ in range(200):
            if server.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert server.in_flight == 0
        assert server.requests_served == 0


async def test_connection_refused_is_a_retryable_call_error() -> None:
    async with SimServer(FAST) as server:
        url = server.base_url
    client = OpenAIChatClient.create(api_key="k", base_url=url, concurrency=1, timeout=5)
    try:
        with pytest.raises(CallError) as info:
            await client.complete(research_request())
    finally:
        await client.aclose()
    assert info.value.retryable
    assert info.value.status is None


def test_settings_precedence_is_flag_then_env_then_file() -> None:
    file_values = {"latency_mean": 1.0, "time_scale": 0.5, "seed": 1}
    env = {"ORCHESTRATE_SIM_LATENCY_MEAN": "2.0", "ORCHESTRATE_SIM_TIME_SCALE": "0.25"}
    settings = resolve_sim_settings(file_values, flags={"latency_mean": 3.0}, environ=env)
    assert (settings.latency_mean, settings.time_scale, settings.seed) == (3.0, 0.25, 1)


def test_bad_env_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_sim_settings({}, environ={"ORCHESTRATE_SIM_TIME_SCALE": "fast"})
    assert "ORCHESTRATE_SIM_TIME_SCALE" in info.value.render()
    assert info.value.field == "simulated.time_scale"


def test_a_misspelt_environment_setting_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_sim_settings({}, environ={"ORCHESTRATE_SIM_TIMESCALE": "0.1"})
    assert info.value.field == "ORCHESTRATE_SIM_TIMESCALE"
    assert info.value.hint == "did you mean ORCHESTRATE_SIM_TIME_SCALE?"
