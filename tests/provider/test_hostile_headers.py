"""Whole runs against servers that spell "no limit" their own way: the real openai client over
real HTTP, to a simulator set to send `-1`, `0`, `inf` or no rate-limit headers at all, and to
a gateway of the test's own that sends odd headers on every answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import orchestrator
from orchestrator import SimServer, SimSettings

from ..conftest import write
from ..fakes import completion_json

TOPICS = "".join(f"- Topic number {i}\n" for i in range(12))


def _settings(**knobs: Any) -> SimSettings:
    return SimSettings(latency_mean=0.05, latency_jitter=0.0, **knobs)


@pytest.mark.parametrize(
    "knobs",
    [
        {"unlimited_header": "-1"},
        {"unlimited_header": "0"},
        {"unlimited_header": "inf"},
        {"unlimited_header": "-1", "rpm": 60_000},  # tokens "-1", requests limited
        {"ratelimit_headers": False},
    ],
    ids=["minus-one", "zero", "inf", "minus-one-tokens-only", "no-headers"],
)
async def test_a_12_topic_run_against_unlimited_spellings_finishes(
    project: Path, knobs: dict[str, Any]
) -> None:
    topics = write(project / "topics.yaml", TOPICS)
    async with SimServer(_settings(**knobs)) as server:
        manifest = await orchestrator.run(
            topics,
            concurrency=12,
            progress=False,
            environ={"OPENAI_BASE_URL": server.base_url},
        )
    assert manifest.provider == "openai"
    assert (manifest.status, manifest.totals.succeeded) == ("finished", 12)
    assert manifest.totals.failed_calls == 0
    assert manifest.parallelism is not None
    assert manifest.parallelism.paced_by != "limiter", manifest.parallelism.explanation


class OddGateway:
    """An OpenAI-compatible gateway that answers at once and states limits oddly."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls += 1
        return web.json_response(
            completion_json(body["model"], f"answer {self.calls}", n=self.calls),
            headers=self.headers,
        )


@pytest.fixture
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[tuple[OddGateway, str]]:
    server = OddGateway(request.param)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


@pytest.mark.parametrize(
    "gateway",
    [
        {"X-RateLimit-Limit-Tokens": "-1", "X-RateLimit-Remaining-Tokens": "-1"},
        {"x-ratelimit-limit-requests": "Infinity", "x-ratelimit-remaining-requests": "0"},
        {"x-ratelimit-limit-requests": "2147483647", "x-ratelimit-limit-tokens": "unlimited"},
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1h"},
        {"x-ratelimit-limit-requests": "1e400", "x-ratelimit-reset-tokens": "-5s"},
    ],
    indirect=True,
    ids=["minus-one", "infinity-remaining-zero", "int32-max", "remaining-only", "overflow"],
)
async def test_odd_gateway_headers_never_stop_or_slow_a_run(
    project: Path, gateway: tuple[OddGateway, str]
) -> None:
    server, url = gateway
    topics = write(project / "topics.yaml", TOPICS)
    manifest = await orchestrator.run(
        topics, concurrency=12, progress=False, environ={"OPENAI_BASE_URL": url}
    )
    assert (manifest.status, manifest.totals.succeeded) == ("finished", 12)
    assert server.calls == 36
    assert manifest.totals.waits.limiter < 0.5, "nothing stated a limit, so nothing paces"


@pytest.mark.parametrize("value", ["-1", "inf", "0"])
async def test_cli_against_an_unlimited_spelling_exits_0(project: Path, value: str) -> None:
    """The report of issue 15, as the user ran it: `orchestrate run` against serve-sim."""
    from ..session.test_end_to_end import orchestrate

    topics = write(project / "topics.yaml", TOPICS)
    async with SimServer(_settings(unlimited_header=value)) as server:
        code, _, err = await orchestrate(
            "run", str(topics), "-c", "12", cwd=project, env={"OPENAI_BASE_URL": server.base_url}
        )
    assert code == 0, err
    assert "observer failed" not in err and "Traceback" not in err
