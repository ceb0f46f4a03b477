"""Never losing finished work, as a user meets it: the real CLI in a subprocess, killed or
interrupted, then resumed; prompt edits that re-run one stage; a budget; a broken store.

The provider is a simulated server in the test's own process (reached through
OPENAI_BASE_URL), so the test counts exactly which calls each session made.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

import orchestrator
from orchestrator import RunManifest, SimServer, SimSettings
from orchestrator.session._setup import prepare
from orchestrator.store._store import Store

TOPICS = "configs/topics.example.yaml"
CALLS = 30  # 10 example topics × 3 stages


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A simulated provider, 0.15 s per call, that the subprocess reaches over HTTP."""
    settings = SimSettings(latency_mean=0.15, latency_jitter=0.0, output_tokens=120)
    async with SimServer(settings) as server:
        yield server


def env_for(server: SimServer) -> dict[str, str]:
    return {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}


async def start(*args: str, cwd: Path, server: SimServer) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *args,
        cwd=cwd,
        env=env_for(server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def cli(*args: str, cwd: Path, server: SimServer) -> tuple[int, str, str]:
    proc = await start(*args, cwd=cwd, server=server)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def until_topics_done(proc: asyncio.subprocess.Process, count: int) -> None:
    """Read progress lines until ``count`` topics are reported done (each one committed):
    ``-v`` prints a line per finished topic."""
    assert proc.stderr is not None
    done = 0
    while done < count:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, "the run ended before it was interrupted"
        done += line.startswith(b"ok ")


async def settled(server: SimServer) -> int:
    """Calls the server has answered, once nothing is in flight any more."""
    for _ in range(100):
        if server.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    return server.requests_served


def manifest_at(run_dir: Path) -> RunManifest:
    return RunManifest.model_validate_json((run_dir / "run.json").read_text())


def committed_stages(out: Path) -> int:
    with sqlite3.connect(out / "state.db") as db:
        return int(db.execute("SELECT count(*) FROM stages").fetchone()[0])


def articles(run_dir: Path) -> dict[str, str]:
    """Every article and stage file, with the front matter's run id blanked out."""
    files = {}
    for path in sorted(run_dir.rglob("*.md")):
        text = path.read_text()
        front = text.split("---\n")[1] if text.startswith("---\n") else ""
        if front:
            header = yaml.safe_load(front)
            header.pop("run_id")
            text = yaml.safe_dump(header) + text.split("---\n", 2)[2]
        files[str(path.relative_to(run_dir))] = text
    return files


def shape(manifest: RunManifest) -> list[tuple[object, ...]]:
    """What must not depend on whether the run stopped: statuses, stages, models, tokens."""
    return [
        (
            t.topic,
            t.status,
            t.output,
            [
                (s.name, s.status, s.model, s.prompt_tokens, s.completion_tokens, s.cost, s.output)
                for s in t.stages
            ],
        )
        for t in manifest.topics
    ]


async def test_sigkill_midway_then_resume_makes_only_the_unfinished_calls(
    project: Path, sim: SimServer
) -> None:
    """Killed with SIGKILL after 3 topics: the run is detectably unfinished; `run --resume`
    keeps its id and folder, calls exactly the stages not committed, and ends with the same
    outputs and run.json as a run that never stopped."""
    proc = await start("run", "-v", TOPICS, "-c", "2", cwd=project, server=sim)
    await until_topics_done(proc, 3)
    proc.kill()
    await proc.wait()
    first_session = await settled(sim)
    out = project / "outputs"
    committed = committed_stages(out)
    assert 9 <= committed < CALLS
    assert first_session - committed <= 2, "only the calls in flight (-c 2) may be lost"
    store = Store.open(out / "state.db")
    (record,) = store.runs()
    store.close()
    assert record.crashed and record.status == "running"
    killed_dir = Path(record.run_dir)
    assert manifest_at(killed_dir).status == "running"
    # A topic committed as done whose article never reached the disk: resume rewrites it.
    done_article = next(p for p in killed_dir.glob("*.md"))
    done_article.unlink()

    code, stdout, err = await cli("run", TOPICS, "-c", "2", "--resume", cwd=project, server=sim)
    assert code == 0, err
    assert f"resuming run {record.run_id}" in err
    assert sim.requests_served - first_session == CALLS - committed
    resumed = manifest_at(killed_dir)
    assert (resumed.run_id, resumed.status, resumed.sessions) == (record.run_id, "finished", 2)
    assert resumed.totals.succeeded == 10

    code, _, err = await cli("run", TOPICS, "-c", "2", "--out", "clean", cwd=project, server=sim)
    assert code == 0, err
    clean = manifest_at(project / "clean" / "latest")
    assert shape(resumed) == shape(clean)
    assert articles(killed_dir) == articles(project / "clean" / "latest")
    assert resumed.totals.total_tokens == clean.totals.total_tokens
    assert resumed.totals.calls == clean.totals.calls == CALLS
    assert not (killed_dir / "failed.yaml").exists()
    assert resumed.totals.cost == clean.totals.cost


async def test_ctrl_c_drains_then_the_printed_command_resumes(
    project: Path, sim: SimServer
) -> None:
    """First Ctrl-C: the calls in flight finish and are saved, nothing new starts, exit 130,
    and the printed `orchestrate resume …` command finishes the run without a repeat call."""
    proc = await start("run", "-v", TOPICS, "-c", "3", "--out", "my runs", cwd=project, server=sim)
    await until_topics_done(proc, 2)
    proc.send_signal(signal.SIGINT)
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 30)
    err = err_bytes.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    first_session = await settled(sim)
    out = project / "my runs"
    assert committed_stages(out) == first_session, "every call that came back was saved"
    command = next(line for line in err.splitlines() if "to continue:" in line)
    argv = shlex.split(command.split("to continue:", 1)[1])
    assert argv[:2] == ["orchestrate", "resume"] and argv[3] == "--out"
    assert Path(argv[4]) == out.resolve()
    interrupted = manifest_at(out / "latest")
    assert interrupted.status == "interrupted"
    assert not [s for t in interrupted.topics for s in t.stages if s.status == "interrupted"]

    code, stdout, err = await cli(*argv[1:], cwd=project, server=sim)
    assert code == 0, err
    assert sim.requests_served - first_session == CALLS - first_session
    done = manifest_at(out / "latest")
    assert (done.run_id, done.status, done.totals.succeeded) == (interrupted.run_id, "finished", 10)
    assert not (Path(done.output_dir) / "failed.yaml").exists(), "the earlier one is gone"
    assert done.sessions == 2


async def test_a_second_ctrl_c_quits_at_once_and_the_store_stays_sound(
    project: Path, sim: SimServer
) -> None:
    """Second Ctrl-C: no grace; exit 130; the store passes SQLite's integrity check and the
    run resumes."""
    proc = await start("run", "-v", TOPICS, "-c", "4", cwd=project, server=sim)
    await until_topics_done(proc, 1)
    proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 130, err.decode()
    with sqlite3.connect(project / "outputs" / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    run_id = manifest_at(project / "outputs" / "latest").run_id
    code, _, err_text = await cli("resume", run_id, cwd=project, server=sim)
    assert code == 0, err_text
    assert manifest_at(project / "outputs" / "latest").totals.succeeded == 10


async def test_editing_the_edit_prompt_calls_the_provider_once_per_topic(
    project: Path, sim: SimServer
) -> None:
    """Prompt iteration: after an edit to agents/edit.yaml only Edit is called; Research and
    Write come from the store, and the summary and run.json say so. --fresh calls all."""
    code, _, err = await cli("run", TOPICS, cwd=project, server=sim)
    assert code == 0, err
    assert sim.requests_served == CALLS
    edit = project / "agents" / "edit.yaml"
    edit.write_text(edit.read_text().replace("prompt: |\n", "prompt: |\n  Keep it short.\n", 1))

    code, stdout, err = await cli("run", TOPICS, cwd=project, server=sim)
    assert code == 0, err
    assert sim.requests_served == CALLS + 10
    assert "20 stage(s) served from the store" in stdout
    manifest = manifest_at(project / "outputs" / "latest")
    assert manifest.totals.reused == 20 and manifest.totals.calls == 10
    for topic in manifest.topics:
        assert [s.cached for s in topic.stages] == [True, True, False]

    code, _, err = await cli("run", TOPICS, "--fresh", cwd=project, server=sim)
    assert code == 0, err
    assert sim.requests_served == 2 * CALLS + 10


async def test_max_cost_skips_what_would_pass_it_and_exits_1(project: Path, sim: SimServer) -> None:
    """A budget starts only the chains whose worst case fits; the rest are skipped, listed in
    failed.yaml, the spend stays under the budget, and the exit code is 1."""
    code, stdout, err = await cli(
        "run", TOPICS, "-c", "2", "--max-cost", "0.004", cwd=project, server=sim
    )
    assert code == 1, err
    manifest = manifest_at(project / "outputs" / "latest")
    assert manifest.status == "stopped" and manifest.max_cost == 0.004
    assert manifest.stop_reason is not None and "--max-cost" in manifest.stop_reason
    assert 0 < manifest.totals.succeeded < 10
    assert manifest.totals.skipped == 10 - manifest.totals.succeeded
    assert manifest.totals.cost is not None and 0 < manifest.totals.cost <= 0.004
    failed = yaml.safe_load((Path(manifest.output_dir) / "failed.yaml").read_text())
    assert len(failed["topics"]) == manifest.totals.skipped


async def test_a_budget_needs_a_price_for_every_model(project: Path, sim: SimServer) -> None:
    """--max-cost with a model no price list knows is a config error, before any call."""
    chain = project / "configs" / "chain.yaml"
    chain.write_text(chain.read_text().replace("model: gpt-4o-mini", "model: my-local-llm"))
    for agent in (project / "agents").glob("*.yaml"):
        agent.write_text(agent.read_text().replace("gpt-4o-mini", "my-local-llm"))
    code, _, err = await cli("run", TOPICS, "--max-cost", "1", cwd=project, server=sim)
    assert code == 2, err
    assert "'my-local-llm'" in err and "prices:" in err
    assert sim.requests_served == 0
    code, stdout, err = await cli("run", TOPICS, "--limit", "1", cwd=project, server=sim)
    assert code == 0 and "unknown (a model has no price)" in stdout
    assert manifest_at(project / "outputs" / "latest").totals.cost is None


async def test_resume_refuses_a_changed_topics_file_and_an_unknown_run(
    project: Path, sim: SimServer
) -> None:
    code, _, _ = await cli("run", TOPICS, "--max-cost", "0.003", cwd=project, server=sim)
    assert code == 1  # stopped by the budget: resumable
    topics = project / TOPICS
    topics.write_text(topics.read_text() + "- One more topic\n")
    code, _, err = await cli("run", TOPICS, "--resume", cwd=project, server=sim)
    assert code == 2
    assert "cannot be resumed: the topics" in err and "changed since it started" in err
    code, _, err = await cli("resume", "20990101-000000-dead", cwd=project, server=sim)
    assert code == 2 and "no run '20990101-000000-dead'" in err


async def test_resume_of_a_finished_run_says_there_is_nothing_to_do(
    project: Path, sim: SimServer
) -> None:
    code, _, _ = await cli("run", TOPICS, "--limit", "2", cwd=project, server=sim)
    assert code == 0
    run_id = manifest_at(project / "outputs" / "latest").run_id
    code, _, err = await cli("resume", run_id, cwd=project, server=sim)
    assert code == 2 and "already finished" in err
    # --resume with nothing unfinished simply starts a new run (stages come from the store).
    code, _, err = await cli("run", TOPICS, "--limit", "2", "--resume", cwd=project, server=sim)
    assert code == 0, err
    assert manifest_at(project / "outputs" / "latest").run_id != run_id


async def test_a_corrupted_store_is_refused_before_any_run_folder(project: Path) -> None:
    out = project / "outputs"
    out.mkdir()
    (out / "state.db").write_bytes(os.urandom(8192))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        TOPICS,
        cwd=project,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, err.decode()
    assert "state.db" in err.decode() and "move it aside" in err.decode()
    assert "Traceback" not in err.decode()
    assert sorted(p.name for p in out.iterdir()) == ["state.db"]


async def test_a_store_that_fills_up_mid_run_stops_it_and_keeps_the_files(
    project: Path,
) -> None:
    """SQLITE_FULL on a commit: the run stops as failed with a StoreError that says so; the
    stage files written so far are on disk and run.json is closed."""
    setup = prepare(TOPICS, sim={"time_scale": 0.01})
    run_dir = project / "outputs" / "r1"
    run_dir.mkdir(parents=True)
    with pytest.raises(orchestrator.RunError, match="full"):
        async with Store.open(project / "outputs" / "state.db", max_pages=40) as store:
            await setup.execute("r1", run_dir, store=store)
    manifest = manifest_at(run_dir)
    assert manifest.status == "failed"
    assert list((run_dir / "stages").rglob("*.md")), "what finished is on disk"


async def test_two_runs_share_one_store(project: Path, sim: SimServer) -> None:
    """Two runs at once in the same outputs root both commit (WAL, busy timeout)."""
    results = await asyncio.gather(
        cli("run", TOPICS, "--limit", "4", cwd=project, server=sim),
        cli("run", TOPICS, "--limit", "4", "--fresh", cwd=project, server=sim),
    )
    assert [code for code, _, _ in results] == [0, 0], results
    store = Store.open(project / "outputs" / "state.db")
    assert len(store.runs()) == 2
    store.close()


async def test_run_resume_keeps_the_runs_budget_and_refuses_another_provider(
    project: Path, sim: SimServer
) -> None:
    """`run --resume` without --max-cost keeps the budget the run started with, and a
    session that would talk to another provider is refused: one run, one source."""
    code, _, _ = await cli("run", TOPICS, "--max-cost", "0.004", cwd=project, server=sim)
    assert code == 1
    first = manifest_at(project / "outputs" / "latest")
    code, _, err = await cli(
        "run", TOPICS, "--resume", "--provider", "simulated", cwd=project, server=sim
    )
    assert code == 2
    assert "ran with provider 'openai'" in err and "'simulated'" in err
    code, _, err = await cli("run", TOPICS, "--resume", cwd=project, server=sim)
    assert code == 1, err
    again = manifest_at(project / "outputs" / "latest")
    assert again.run_id == first.run_id and again.max_cost == 0.004
    assert again.stop_reason is not None and "--max-cost $0.004" in again.stop_reason
    assert again.totals.cost is not None and again.totals.cost <= 0.004


async def test_resume_with_a_wrong_out_says_so_and_creates_nothing(
    project: Path, sim: SimServer
) -> None:
    code, _, err = await cli(
        "resume", "20261122-000000-abcd", "--out", "typo", cwd=project, server=sim
    )
    assert code == 2 and "no state store at typo/state.db" in err
    assert not (project / "typo").exists()


async def test_a_price_for_a_model_no_stage_uses_is_a_config_error(
    project: Path, sim: SimServer
) -> None:
    chain = project / "configs" / "chain.yaml"
    chain.write_text(chain.read_text() + "prices:\n  gpt-4o-mnii: {input: 1, output: 2}\n")
    code, _, err = await cli("run", TOPICS, cwd=project, server=sim)
    assert code == 2
    assert "prices.gpt-4o-mnii" in err and "did you mean 'gpt-4o-mini'?" in err


async def test_two_resumes_of_one_run_at_once_the_second_refuses(
    project: Path, sim: SimServer
) -> None:
    """Both read the run as resumable; the store's claim lets only one go on, so no stage is
    called twice. The other exits 2 with a clear message and no traceback."""
    code, _, _ = await cli("run", TOPICS, "--max-cost", "0.004", cwd=project, server=sim)
    assert code == 1
    run_id = manifest_at(project / "outputs" / "latest").run_id
    results = await asyncio.gather(
        *(cli("resume", run_id, "--max-cost", "1", cwd=project, server=sim) for _ in range(2))
    )
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert run_id in refused and "Traceback" not in refused
    assert "being resumed by another process" in refused or "still running" in refused
    manifest = manifest_at(project / "outputs" / run_id)
    assert manifest.totals.succeeded == 10
    assert sim.requests_served == CALLS, "no stage was called twice, in either session"
