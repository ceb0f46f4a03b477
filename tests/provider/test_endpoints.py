"""A chain or stage naming its own endpoint (``base_url``, ``api_key_env``): each endpoint is
called over real HTTP with its own client, key and rate limiters."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

import orchestrator
from orchestrator import ConfigError, SimServer, SimSettings
from orchestrator.provider._endpoints import PLACEHOLDER_API_KEY
from orchestrator.provider._limits import Limiters

from ..conftest import write
from ..fakes import FakeClient

FAST = SimSettings(latency_mean=0.0, latency_jitter=0.0, output_tokens=20)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RecordingServer(SimServer):
    """The simulated provider, also noting the API key and model of every chat request."""

    def __init__(self) -> None:
        super().__init__(FAST)
        self.seen: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.endswith("/chat/completions"):
                body = await request.json()
                self.seen.append((request.headers.get("Authorization", ""), body["model"]))
            return await handler(request)

        app.middlewares.append(note)
        return app

    @property
    def keys(self) -> set[str]:
        return {auth.removeprefix("Bearer ") for auth, _ in self.seen}


@pytest.fixture
async def servers() -> AsyncIterator[tuple[RecordingServer, RecordingServer]]:
    async with RecordingServer() as local, RecordingServer() as remote:
        yield local, remote


def chain_file(project: Path, stages: str, extra: str = "") -> Path:
    """A chain file: ``stages`` is the YAML under ``stages:``, ``extra`` more top-level keys."""
    text = "stages:\n" + textwrap.indent(textwrap.dedent(stages).strip("\n"), "  ") + "\n"
    text += "concurrency: 3\ndefaults: {model: gpt-4o-mini, max_tokens: 50}\n" + extra + "\n"
    return write(project / "configs" / "routed.yaml", text)


def topics(project: Path) -> Path:
    return write(project / "topics.yaml", "- alpha\n- beta\n- gamma\n")


async def test_a_stage_with_its_own_endpoint_is_called_there_with_its_own_key(
    project: Path, servers: tuple[RecordingServer, RecordingServer]
) -> None:
    local, remote = servers
    chain = chain_file(
        project,
        f"""
          - name: research
            base_url: {local.base_url}
            api_key_env: LOCAL_KEY
          - write
          - edit
        """,
    )
    environ = {
        "LOCAL_KEY": "local-secret",
        "OPENAI_API_KEY": "remote-secret",
        "OPENAI_BASE_URL": remote.base_url,
    }
    manifest = await orchestrator.run(
        topics(project), chain=chain, out=project / "out", environ=environ
    )

    assert manifest.totals.succeeded == 3
    assert len(local.seen) == 3 and local.keys == {"local-secret"}
    assert len(remote.seen) == 6 and remote.keys == {"remote-secret"}
    assert manifest.provider == "openai" and manifest.endpoint == remote.base_url
    assert manifest.endpoints == {"research": local.base_url}
    # Each stage's record says who answered it; the secrets are nowhere in the run folder.
    run_dir = Path(manifest.output_dir)
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert "local-secret" not in text and "remote-secret" not in text, path


async def test_the_chains_own_endpoint_serves_every_stage_and_no_key_leaks_to_it(
    project: Path, servers: tuple[RecordingServer, RecordingServer]
) -> None:
    local, _ = servers
    chain = chain_file(project, "- research\n- write", f"base_url: {local.base_url}")
    # OPENAI_API_KEY is set, but a base_url the chain names never receives it unless
    # api_key_env says so.
    manifest = await orchestrator.run(
        topics(project),
        chain=chain,
        out=project / "out",
        environ={"OPENAI_API_KEY": "sk-must-not-leave"},
    )
    assert manifest.totals.succeeded == 3
    assert len(local.seen) == 6 and local.keys == {PLACEHOLDER_API_KEY}
    assert manifest.provider == "openai" and manifest.endpoint == local.base_url


async def test_simulated_provider_answers_every_stage_itself(
    project: Path, servers: tuple[RecordingServer, RecordingServer]
) -> None:
    local, _ = servers
    chain = chain_file(
        project,
        f"""
          - name: research
            base_url: {local.base_url}
            api_key_env: LOCAL_KEY
          - write
        """,
        "simulated: {latency_mean: 0, latency_jitter: 0}",
    )
    # The key is not even set: trying a chain keyless is what --provider simulated is for.
    manifest = await orchestrator.run(
        topics(project), chain=chain, out=project / "out", provider="simulated", environ={}
    )
    assert manifest.totals.succeeded == 3
    assert local.seen == [] and manifest.provider == "simulated"
    assert manifest.endpoints is None


def test_a_missing_key_variable_names_the_file_line_and_field(project: Path) -> None:
    chain = chain_file(
        project,
        """
          - research
          - name: write
            base_url: http://localhost:11434/v1
            api_key_env: WRITE_KEY
        """,
    )
    with pytest.raises(ConfigError) as caught:
        orchestrator.session._setup.prepare(topics(project), chain=chain, environ={})
    error = caught.value
    assert error.file == str(chain) and error.field == "stages[1].api_key_env"
    assert error.line == 5
    assert "WRITE_KEY is not set" in error.message and "localhost:11434" in error.message
    assert error.hint is not None and "--provider simulated" in error.hint


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("base_url: localhost:11434/v1", "base_url must be an http(s) URL"),
        ("base_url: ftp://example.com/v1", "base_url must be an http(s) URL"),
        ("api_key_env: sk-proj-abc123", "NAME of an environment variable"),
        ("api_key_env: MY KEY", "NAME of an environment variable"),
        ("base_urll: http://x/v1", "did you mean 'base_url'?"),
    ],
)
def test_bad_endpoint_settings_are_config_errors(
    project: Path, setting: str, expected: str
) -> None:
    chain = chain_file(project, "- research", setting)
    with pytest.raises(ConfigError) as caught:
        orchestrator.load_plan(topics(project), chain=chain)
    assert expected in caught.value.render()
    assert caught.value.file == str(chain)


async def test_each_endpoint_gets_its_own_client_and_limiters() -> None:
    """The same model on two endpoints is paced by two sets of buckets, and each stage's
    calls go to its route's client only."""
    from orchestrator.engine._engine import Engine
    from orchestrator.provider._client import Route

    plan_dir = Path(__file__).resolve().parents[2]
    plan = orchestrator.load_plan(plan_dir / "configs" / "topics.example.yaml", limit=2)
    near, far = FakeClient(), FakeClient()
    limiters = Limiters(learn=False)
    engine = Engine(
        plan.stages,
        client=far,
        endpoint="http://far/v1",
        routes={"research": Route(near, "http://near/v1", "http://near/v1")},
        concurrency=2,
        limiters=limiters,
    )
    await engine.run(plan.topics)
    assert len(near.requests) == 2 and len(far.requests) == 4
    assert {r.messages[-1]["content"][:10] for r in near.requests} != set()
    assert limiters.for_model("http://near/v1", "gpt-4o-mini") is not limiters.for_model(
        "http://far/v1", "gpt-4o-mini"
    )


class InterruptAfterFirst:
    """Interrupts the run gracefully once its first chain has finished."""

    def __init__(self, control: orchestrator.RunControl) -> None:
        self.control = control

    async def on_event(self, event: orchestrator.Event) -> None:
        if isinstance(event, orchestrator.ChainFinished) and self.control.interrupts == 0:
            self.control.interrupt()


async def test_a_resumed_run_keeps_its_stages_endpoints_and_needs_their_keys(
    project: Path, servers: tuple[RecordingServer, RecordingServer]
) -> None:
    """The first session ran on auto (simulated for the other stages): the resume resolves
    auto again rather than the simulated provider, which would answer every stage."""
    local, _ = servers
    chain = chain_file(
        project,
        f"""
          - name: research
            base_url: {local.base_url}
            api_key_env: LOCAL_KEY
          - write
        """,
        "concurrency: 1\nsimulated: {latency_mean: 0.05, latency_jitter: 0}",
    )
    control = orchestrator.RunControl()
    first = await orchestrator.run(
        topics(project),
        chain=chain,
        out=project / "out",
        environ={"LOCAL_KEY": "k"},
        control=control,
        observers=[InterruptAfterFirst(control)],
        progress=False,
    )
    assert first.status == "interrupted" and first.totals.succeeded < 3
    with pytest.raises(ConfigError, match="LOCAL_KEY is not set"):
        await orchestrator.resume(first.run_id, out=project / "out", environ={}, progress=False)
    resumed = await orchestrator.resume(
        first.run_id, out=project / "out", environ={"LOCAL_KEY": "k"}, progress=False
    )
    assert resumed.status == "finished" and resumed.totals.succeeded == 3
    assert resumed.endpoints == {"research": local.base_url}
    assert len(local.seen) == 3 and local.keys == {"k"}  # every research call, both sessions
