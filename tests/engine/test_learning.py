"""Learning the limits never serialises a run: the first wave goes out at once against a
real HTTP server of the test's own, and a first call that hangs holds nobody back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import orchestrator

from ..conftest import write
from ..fakes import Recorder, completion_json

HANG_S = 2.0


class FirstCallHangs:
    """An OpenAI-compatible server without rate-limit headers whose first call takes
    HANG_S seconds; every other call answers at once."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(HANG_S)
        return web.json_response(
            completion_json(body["model"], f"answer {self.calls}", n=self.calls)
        )


@pytest.fixture
async def hanging() -> AsyncIterator[str]:
    server = FirstCallHangs()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_a_hanging_first_call_holds_no_other_chain_back(project: Path, hanging: str) -> None:
    topics = write(project / "topics.yaml", "".join(f"- Topic {i}\n" for i in range(8)))
    recorder = Recorder()
    manifest = await orchestrator.run(
        topics,
        concurrency=8,
        progress=False,
        observers=[recorder],
        environ={"OPENAI_BASE_URL": hanging},
    )
    assert (manifest.status, manifest.totals.succeeded) == ("finished", 8)
    chains = recorder.of(orchestrator.ChainFinished)
    first = min(e.at for e in recorder.of(orchestrator.CallStarted))
    done_early = [c for c in chains if c.at - first < HANG_S]
    assert len(done_early) == 7, "every chain but the hung one finished during the hang"
    assert manifest.parallelism is not None
    assert "synchronous" not in (manifest.parallelism.explanation or "")
    assert manifest.totals.waits.limiter == 0.0, "no limit was stated: nothing to blame"
