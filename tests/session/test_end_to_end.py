"""Whole runs, as a user runs them: the real CLI, the real openai client, real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import orchestrator
from orchestrator import RunManifest

from ..conftest import write

FAST_SIM = {"ORCHESTRATE_SIM_TIME_SCALE": "0.01"}


async def orchestrate(
    *args: str, cwd: Path, env: dict[str, str] | None = None, wait_s: float = 60
) -> tuple[int, str, str]:
    """Run ``python -m orchestrator ARGS`` without blocking the test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), wait_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def manifest_of(run_root: Path) -> RunManifest:
    return RunManifest.model_validate_json((run_root / "latest" / "run.json").read_text())


async def test_library_run_on_the_simulated_provider_writes_every_output(project: Path) -> None:
    manifest = await orchestrator.run(
        "configs/topics.example.yaml", out="outs", sim={"time_scale": 0.01}
    )
    run_dir = Path(manifest.output_dir)
    assert manifest.status == "finished"
    assert manifest.provider == "simulated"
    assert manifest.endpoint.startswith("http://127.0.0.1:")
    assert (manifest.totals.topics, manifest.totals.succeeded, manifest.totals.calls) == (
        10,
        10,
        30,
    )
    assert manifest.totals.total_tokens > 0
    assert (project / "outs" / "latest").resolve() == run_dir.resolve()
    for record in manifest.topics:
        article = (run_dir / f"{record.slug}.md").read_text()
        assert article.startswith("---\n")
        assert [s.name for s in record.stages] == ["research", "write", "edit"]
        for stage in record.stages:
            assert stage.attempts == 1
            assert stage.prompt_tokens and stage.completion_tokens
            assert stage.latency_s is not None and stage.latency_s >= 0
            assert (run_dir / "stages" / record.slug / f"{stage.name}.md").is_file()
        # The article is the edit stage's output.
        edit = (run_dir / "stages" / record.slug / "edit.md").read_text().strip()
        assert article.rstrip().endswith(edit)
    on_disk = RunManifest.model_validate_json((run_dir / "run.json").read_text())
    assert on_disk == manifest


async def test_cli_run_prints_progress_and_summary_and_exits_0(project: Path) -> None:
    code, out, err = await orchestrate(
        "run", "configs/topics.example.yaml", "-c", "10", cwd=project, env=FAST_SIM
    )
    assert code == 0, err
    assert "provider: simulated at http://127.0.0.1:" in err
    # Not a terminal: a status line now and then, not a line per topic (that is -v).
    assert "run finished: 10/10 topics done, 0 failed" in err
    assert "ok   [" not in err and "\x1b[" not in err
    assert "10 done, 0 failed of 10" in out
    assert "Traceback" not in out + err
    manifest = manifest_of(project / "outputs")
    assert (manifest.mode, manifest.concurrency) == ("parallel", 10)


async def test_cli_failing_topic_is_isolated_and_exits_1(project: Path) -> None:
    """One topic whose prompt overflows the model's context fails; the others finish."""
    topics = write(
        project / "topics.yaml",
        f"""
        - Tides
        - {"very long topic " * 800}
        - Volcanoes
        """,
    )
    env = {**FAST_SIM, "ORCHESTRATE_SIM_CONTEXT_WINDOW": "3000"}
    code, out, err = await orchestrate("run", str(topics), cwd=project, env=env)
    assert code == 1
    assert "2 done, 1 failed of 3" in out
    assert "context_length_exceeded" in err + out
    manifest = manifest_of(project / "outputs")
    failed = [t for t in manifest.topics if t.status == "failed"]
    assert len(failed) == 1
    assert failed[0].failed_stage == "research"
    assert "HTTP 400 context_length_exceeded" in (failed[0].error or "")
    assert failed[0].output is None
    run_dir = Path(manifest.output_dir)
    assert sorted(p.name for p in run_dir.glob("*.md")) == ["tides.md", "volcanoes.md"]


async def test_cli_config_error_exits_2_with_no_traceback_and_no_run(project: Path) -> None:
    write(project / "configs" / "chain.yaml", "stages: [research, write, edit]\nconcurency: 3\n")
    code, out, err = await orchestrate("run", "configs/topics.example.yaml", cwd=project)
    assert code == 2
    assert "configs/chain.yaml:2: concurency: unknown field 'concurency'" in err
    assert "did you mean 'concurrency'?" in err
    assert "Traceback" not in err
    assert not (project / "outputs").exists(), "a config error must not start a run"


async def test_cli_refuses_flags_that_make_no_sense(project: Path) -> None:
    code, _, err = await orchestrate("run", "configs/topics.example.yaml", "-c", "0", cwd=project)
    assert code == 2
    assert "-c" in err or "--concurrency" in err
    code, _, err = await orchestrate(
        "run", "configs/topics.example.yaml", "--sequential", "-c", "4", cwd=project
    )
    assert code == 2
    assert "--sequential" in err


async def test_library_refuses_zero_concurrency_before_starting(project: Path) -> None:
    with pytest.raises(orchestrator.ConfigError, match="at least 1"):
        await orchestrator.run("configs/topics.example.yaml", concurrency=0)
    assert not (project / "outputs").exists()


async def test_provider_openai_without_key_or_url_is_a_clear_error(project: Path) -> None:
    code, _, err = await orchestrate(
        "run", "configs/topics.example.yaml", "--provider", "openai", cwd=project
    )
    assert code == 2
    assert "OPENAI_API_KEY" in err


class RecordingServer:
    """Another OpenAI-compatible server: records each request, answers with a marker that
    names the request, so a test can see which answer reached which later request."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.auth.append(request.headers.get("Authorization", ""))
        n = len(self.bodies)
        first_line = body["messages"][-1]["content"].splitlines()[0]
        content = f"ANSWER-{n} to <{first_line}> from {body['model']}"
        return web.json_response(
            {
                "id": f"c{n}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )


@pytest.fixture
async def recording_server() -> AsyncIterator[RecordingServer]:
    server = RecordingServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base_url = f"http://127.0.0.1:{port}/v1"
    yield server
    await runner.cleanup()


async def test_openai_base_url_reaches_another_server_and_chains_outputs(
    project: Path, recording_server: RecordingServer
) -> None:
    """With OPENAI_BASE_URL set, auto picks openai; each stage's request carries the
    previous stage's answer; a keyless local endpoint gets a placeholder key."""
    topics = write(project / "topics.yaml", "- Tides\n- topic: Volcanoes\n  audience: kids\n")
    env = {"OPENAI_BASE_URL": recording_server.base_url}
    code, out, err = await orchestrate("run", str(topics), "-c", "2", cwd=project, env=env)
    assert code == 0, err
    assert f"provider: openai at {recording_server.base_url}" in err
    assert len(recording_server.bodies) == 6
    assert all(a == "Bearer orchestrate-no-key" for a in recording_server.auth)

    answers: dict[str, list[str]] = {}
    for n, body in enumerate(recording_server.bodies, start=1):
        prompt = body["messages"][-1]["content"]
        assert body["max_tokens"] > 0 and "temperature" in body
        topic = "Tides" if "Topic: Tides" in prompt else "Volcanoes"
        answers.setdefault(topic, []).append(f"ANSWER-{n} ")
        stage = len(answers[topic])  # 1 research, 2 write, 3 edit
        if stage == 2:
            assert answers[topic][0] in prompt, "write sees the research answer"
        if stage == 3:
            assert answers[topic][1] in prompt, "edit sees the draft"
            assert answers[topic][0] in prompt, "edit sees the research too"
        if topic == "Volcanoes":
            assert "Audience: kids" in prompt
    manifest = manifest_of(project / "outputs")
    assert (manifest.provider, manifest.endpoint) == ("openai", recording_server.base_url)
    assert manifest.totals.prompt_tokens == 6 * 11


async def test_api_key_is_sent_but_never_written(
    project: Path, recording_server: RecordingServer
) -> None:
    secret = "sk-test-SECRET-123"
    env = {"OPENAI_BASE_URL": recording_server.base_url, "OPENAI_API_KEY": secret}
    topics = write(project / "topics.yaml", "- Tides\n")
    code, out, err = await orchestrate("run", str(topics), cwd=project, env=env)
    assert code == 0, err
    assert recording_server.auth[0] == f"Bearer {secret}"
    assert secret not in out + err
    for path in (project / "outputs").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path  # state.db included


async def test_provider_simulated_wins_over_a_key_in_the_environment(project: Path) -> None:
    env = {**FAST_SIM, "OPENAI_API_KEY": "sk-unused"}
    code, _, err = await orchestrate(
        "run",
        "configs/topics.example.yaml",
        "--provider",
        "simulated",
        "--limit",
        "2",
        cwd=project,
        env=env,
    )
    assert code == 0, err
    assert "provider: simulated" in err
    assert manifest_of(project / "outputs").totals.topics == 2


async def test_ctrl_c_exits_130_and_keeps_finished_work(project: Path) -> None:
    """SIGINT mid-run: exit 130, run.json says interrupted, finished topics are on disk."""
    env = {
        **os.environ,
        "ORCHESTRATE_SIM_LATENCY_MEAN": "0.3",
        "ORCHESTRATE_SIM_LATENCY_JITTER": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        "configs/topics.example.yaml",
        "-c",
        "2",
        "-v",  # a line per finished topic
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    finished = 0
    while finished < 2:  # wait until two topics are done
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        finished += line.startswith(b"ok ")
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    manifest = manifest_of(project / "outputs")
    assert manifest.status == "interrupted"
    assert f"to continue: orchestrate resume {manifest.run_id}\n" in err.decode()
    assert not [t for t in manifest.topics if t.status == "running"], "in flight -> pending"
    # The calls in flight were given time to finish: no stage was cut off.
    assert not [s for t in manifest.topics for s in t.stages if s.status == "interrupted"]
    done = [t for t in manifest.topics if t.status == "succeeded"]
    assert len(done) >= 2
    assert len(done) < 10
    for record in done:
        assert (Path(manifest.output_dir) / f"{record.slug}.md").is_file()


async def test_results_that_cannot_be_saved_stop_the_run_as_failed(project: Path) -> None:
    """A disk that fills up mid-run: RunError, run.json closed as failed, nothing hangs."""
    from orchestrator import OutputError, StageFinished

    class DiskFullAfterTwoStages:
        seen = 0

        async def on_event(self, event: orchestrator.Event) -> None:
            if isinstance(event, StageFinished):
                self.seen += 1
                if self.seen > 2:
                    raise OutputError("outputs/x.md", "No space left on device")

    with pytest.raises(OutputError):
        await orchestrator.run(
            "configs/topics.example.yaml",
            sim={"time_scale": 0.01},
            observers=[DiskFullAfterTwoStages()],
        )
    manifest = manifest_of(project / "outputs")
    assert manifest.status == "failed"
    assert manifest.totals.pending == 10 - manifest.totals.succeeded - manifest.totals.failed


async def test_cli_out_blocked_by_a_file_is_a_usage_error(project: Path) -> None:
    (project / "blocker").write_text("a file, not a folder")
    code, _, err = await orchestrate(
        "run", "configs/topics.example.yaml", "--out", "blocker/runs", cwd=project
    )
    assert code == 2
    assert "--out" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["", "localhost:11434/v1", "not a url"])
async def test_cli_bad_openai_base_url_is_a_usage_error(project: Path, value: str) -> None:
    code, _, err = await orchestrate(
        "run",
        "configs/topics.example.yaml",
        cwd=project,
        env={"OPENAI_BASE_URL": value, "OPENAI_API_KEY": "sk-x"},
    )
    assert code == 2, err
    assert "OPENAI_BASE_URL" in err
    assert not (project / "outputs").exists()


async def test_endpoint_credentials_never_reach_the_manifest(project: Path) -> None:
    from ..fakes import FakeClient

    client = FakeClient()
    client.base_url = "https://user:hunter2@gateway.example/v1?api-key=hunter3"  # type: ignore[attr-defined]
    manifest = await orchestrator.run("configs/topics.example.yaml", client=client, limit=1)
    assert manifest.endpoint == "https://gateway.example/v1"
    assert "hunter" not in (Path(manifest.output_dir) / "run.json").read_text()


async def test_environ_argument_is_honoured_without_os_environ(
    project: Path, recording_server: RecordingServer
) -> None:
    """The library's environ= supplies key and URL even when os.environ has neither."""
    manifest = await orchestrator.run(
        "configs/topics.example.yaml",
        limit=1,
        environ={"OPENAI_BASE_URL": recording_server.base_url, "OPENAI_API_KEY": "sk-env"},
    )
    assert manifest.totals.succeeded == 1
    assert recording_server.auth[0] == "Bearer sk-env"


async def test_an_endpoint_that_is_not_openai_compatible_fails_clearly(project: Path) -> None:
    """A 200 HTML page (e.g. a base URL missing /v1) is a CallError, not an AttributeError."""

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>welcome</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/{tail:.*}", html)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        manifest = await orchestrator.run(
            "configs/topics.example.yaml",
            limit=1,
            environ={"OPENAI_BASE_URL": f"http://127.0.0.1:{port}", "OPENAI_API_KEY": "k"},
        )
    finally:
        await runner.cleanup()
    error = manifest.topics[0].error or ""
    assert "did not answer with a chat completion (text/html" in error
    assert "/v1" in error


async def test_cli_out_of_quota_stops_at_once_exits_1_and_says_why(project: Path) -> None:
    env = {**FAST_SIM, "ORCHESTRATE_SIM_INSUFFICIENT_QUOTA": "true"}
    code, out, err = await orchestrate(
        "run", "configs/topics.example.yaml", "-c", "3", cwd=project, env=env
    )
    assert code == 1
    assert "out of quota" in out
    assert "Traceback" not in out + err
    manifest = manifest_of(project / "outputs")
    assert manifest.status == "stopped"
    assert manifest.totals.calls <= 3
    assert manifest.totals.skipped >= 7
    assert (Path(manifest.output_dir) / "failed.yaml").is_file()
    assert f"to continue this run: orchestrate resume {manifest.run_id}" in out


async def test_cli_finishes_every_topic_through_5xx_and_dropped_connections(
    project: Path,
) -> None:
    """A quarter of calls answered 500/503 or dropped: all done, no stage twice, exit 0.
    (Rates high enough that 30-odd calls cannot all get through untouched.)"""
    env = {
        **FAST_SIM,
        "ORCHESTRATE_SIM_ERROR_RATE_500": "0.1",
        "ORCHESTRATE_SIM_ERROR_RATE_503": "0.1",
        "ORCHESTRATE_SIM_DROP_RATE": "0.05",
        "ORCHESTRATE_SIM_SEED": "7",
    }
    write(
        project / "configs" / "chain.yaml",
        "stages: [research, write, edit]\nretry: {backoff_base: 0.01, backoff_max: 0.1}\n",
    )
    code, out, err = await orchestrate(
        "run", "configs/topics.example.yaml", "-c", "10", cwd=project, env=env
    )
    assert code == 0, out + err
    manifest = manifest_of(project / "outputs")
    assert manifest.totals.succeeded == 10
    assert manifest.totals.retries and manifest.totals.retries > 0
    for record in manifest.topics:
        assert [s.name for s in record.stages] == ["research", "write", "edit"]
    assert not (Path(manifest.output_dir) / "failed.yaml").exists()


@pytest.mark.parametrize("limited", [False, True])
async def test_learning_limits_never_holds_the_first_wave_back(
    project: Path, limited: bool
) -> None:
    """The first wave goes out at once, limits or not (a wave of 5 fits the slow start's
    burst); with limits, the pace after the first answer follows the headers."""
    from ..fakes import Recorder

    recorder = Recorder()
    sim: dict[str, object] = {"latency_mean": 0.2, "latency_jitter": 0.0}
    if limited:
        sim["rpm"] = 6000
    manifest = await orchestrator.run(
        "configs/topics.example.yaml", concurrency=5, limit=5, sim=sim, observers=[recorder]
    )
    starts = sorted(e.at for e in recorder.of(orchestrator.CallStarted))[:5]
    first_answer = min(e.at for e in recorder.of(orchestrator.CallFinished))
    assert starts[4] < first_answer
    assert manifest.totals.rate_limited == 0


async def test_cli_tpm_reaches_the_run(project: Path) -> None:
    """--tpm below a stage's max_tokens is refused before any call (so the flag is used)."""
    code, _, err = await orchestrate(
        "run", "configs/topics.example.yaml", "--tpm", "100", "--rpm", "60", cwd=project
    )
    assert code == 2
    assert "--tpm" in err and "max_tokens" in err


async def test_cli_retry_passes_reaches_the_run(project: Path) -> None:
    """Every call fails with a 500 and one attempt per call: --retry-passes 2 makes exactly
    two more passes over the one topic."""
    write(
        project / "configs" / "chain.yaml",
        "stages: [research, write, edit]\nretry: {attempts: 1}\n",
    )
    env = {**FAST_SIM, "ORCHESTRATE_SIM_ERROR_RATE_500": "1"}
    code, out, err = await orchestrate(
        "run",
        "configs/topics.example.yaml",
        "--limit",
        "1",
        "--retry-passes",
        "2",
        cwd=project,
        env=env,
    )
    assert code == 1
    assert "retry pass 2: 1 failed topic(s) again" in err
    manifest = manifest_of(project / "outputs")
    assert manifest.totals.calls == 3
    assert manifest.topics[0].passes == 3


async def test_cli_rpm_paces_the_run(project: Path) -> None:
    """--rpm 600 (about 10 calls a second) makes 30 quick calls wait for the limiter."""
    code, _, err = await orchestrate(
        "run",
        "configs/topics.example.yaml",
        "-c",
        "10",
        "--rpm",
        "600",
        cwd=project,
        env=FAST_SIM,
    )
    assert code == 0, err
    manifest = manifest_of(project / "outputs")
    assert manifest.totals.waits.limiter > 1.0
    assert manifest.totals.rate_limited == 0
