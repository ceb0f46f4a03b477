"""Text from topics, models and servers is shown, never obeyed: no escape sequence they
contain reaches the terminal through any line we print."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from orchestrator.report._format import printable, shorten

from ..conftest import write
from ..fakes import completion_json
from ..session.test_end_to_end import orchestrate

EVIL = "\x1b[2J\x1b]0;pwned\x07\r\x1b[31mred"


def test_shorten_shows_control_characters_as_text() -> None:
    line = shorten(f"topic {EVIL}")
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line
    assert "\\x1b[2J" in line


def test_printable_keeps_newlines_and_plain_text() -> None:
    assert printable("a\nb\tc") == "a\nb\tc"
    assert printable("x\x1by") == "x\\x1by"


@pytest.fixture
async def evil_server() -> AsyncIterator[str]:
    """Answers the first stage with escapes in its text and fails the second with escapes
    in its error message."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if "Draft" in body["messages"][-1]["content"] or "brief" in body["messages"][-1]["content"]:
            error = {"error": {"message": f"boom {EVIL}", "type": "server_error"}}
            return web.json_response(error, status=400)
        return web.json_response(completion_json(body["model"], f"answer {EVIL}", n=1))

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_no_escape_sequence_reaches_the_terminal(project: Path, evil_server: str) -> None:
    topics = write(project / "topics.yaml", f'- "Topic {EVIL.encode("unicode_escape").decode()}"\n')
    assert "\\x1b" in topics.read_text()  # YAML turns it back into a real ESC
    env = {"OPENAI_BASE_URL": evil_server}
    code, out, err = await orchestrate(
        "-v", "run", str(topics), "--retry-passes", "0", cwd=project, env=env
    )
    assert code == 1, err
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text
    assert "boom" in out + err
    code, out, err = await orchestrate("trace", "outputs/latest", cwd=project)
    assert code == 0, err
    assert "\x1b" not in out + err
