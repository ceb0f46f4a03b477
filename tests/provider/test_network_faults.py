"""The network misbehaves: connection refused, a host that does not resolve, TLS against a
plain server, a server that accepts and never answers, a body that trickles in. Each is a
classified error on its stage, bounded by the chain's timeout as a total deadline; the other
chains go on meanwhile, and nothing hangs or crashes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import orchestrator
from orchestrator import SimServer, SimSettings
from orchestrator.provider._client import ChatRequest, OpenAIChatClient

from ..conftest import write

REQUEST = ChatRequest("m", [{"role": "user", "content": "hello"}])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    """A server that accepts connections and never says a word."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(-1)  # until the client gives up and closes
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    server.close()


async def _error_of(url: str, deadline: float = 5.0) -> orchestrator.CallError:
    client = OpenAIChatClient.create(api_key="k", base_url=url, concurrency=1, timeout=deadline)
    try:
        with pytest.raises(orchestrator.CallError) as caught:
            await client.complete(REQUEST)
    finally:
        await client.aclose()
    return caught.value


async def test_connection_refused_says_nothing_is_listening() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    error = await _error_of(url)
    assert error.code == "connection_refused" and error.retryable
    assert f"nothing is listening at {url}" in str(error)


async def test_a_host_that_does_not_resolve_is_named() -> None:
    error = await _error_of("http://no-such-host.invalid/v1")
    assert error.code == "dns"
    assert "no-such-host.invalid" in str(error)


async def test_tls_to_a_plain_server_says_so(silent: str) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        error = await _error_of(f"https://127.0.0.1:{port}/v1")
    finally:
        server.close()
    assert error.code == "tls" and not error.retryable
    assert "TLS handshake" in str(error)


async def test_a_server_that_never_answers_times_out_within_the_deadline(silent: str) -> None:
    started = time.monotonic()
    error = await _error_of(silent, deadline=0.5)
    assert error.code == "timeout" and error.retryable
    assert time.monotonic() - started < 3, "bounded by the timeout, not hung"


async def test_a_trickling_body_is_cut_by_the_total_deadline() -> None:
    """A body that arrives 8 bytes at a time never trips a per-read timeout; the deadline
    is per call."""
    settings = SimSettings(
        latency_mean=0.0,
        latency_jitter=0.0,
        bad_response_rate=1.0,
        bad_response="trickle",
        hang_seconds=30,
    )
    async with SimServer(settings) as server:
        started = time.monotonic()
        error = await _error_of(server.base_url, deadline=1.0)
    assert error.code == "timeout"
    assert time.monotonic() - started < 4


async def test_a_silent_endpoint_fails_its_stages_while_other_chains_go_on(
    project: Path, silent: str
) -> None:
    """One stage talks to a server that never answers: its chains fail on their timeout,
    classified; the run ends, every other stage of theirs is untouched, and no run hangs."""
    write(
        project / "chain.yaml",
        f"""
        stages:
          - research
          - name: write
            agent: write
            base_url: {silent}
          - edit
        agents_dir: agents
        defaults: {{model: gpt-4o-mini}}
        timeout: 0.5
        retry: {{attempts: 2, backoff_base: 0.05, backoff_max: 0.1}}
        retry_passes: 0
        simulated: {{time_scale: 0.01}}
        """,
    )
    topics = write(project / "topics.yaml", "- One\n- Two\n- Three\n")
    started = time.monotonic()
    manifest = await orchestrator.run(topics, chain=project / "chain.yaml", progress=False)
    assert time.monotonic() - started < 20
    assert manifest.totals.failed == 3
    for record in manifest.topics:
        assert record.failed_stage == "write"
        assert "timeout" in (record.error or "")
        assert record.stages[0].status == "succeeded"
