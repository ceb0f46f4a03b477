"""`orchestrate runs`: the runs of an outputs root, newest first, from real runs — finished,
with failed topics, interrupted, crashed (killed) and still running — and from stores and
run.json files that are missing or damaged."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

import orchestrator
from orchestrator import ChainFinished, Event, RunControl, RunManifest
from orchestrator._errors import ConfigError
from orchestrator.cli._runs import print_runs, runs_command
from orchestrator.session._run import STORE_FILE
from orchestrator.session._runs import RunSummary, list_runs
from orchestrator.store._store import Store
from tests.conftest import write
from tests.fakes import FakeClient

TOPICS = "configs/topics.example.yaml"
SIM = {"time_scale": 0.001}  # the simulated provider, 1 ms per call


def runs(*args: str) -> Result:
    return CliRunner().invoke(runs_command, list(args))


def by_id(out: str | Path = "outputs") -> dict[str, RunSummary]:
    return {run.run_id: run for run in list_runs(out).runs}


async def finished_run(**options: object) -> RunManifest:
    return await orchestrator.run(TOPICS, limit=2, sim=SIM, **options)  # type: ignore[arg-type]


async def run_with_a_failed_topic(project: Path) -> RunManifest:
    """Two short topics and one too long for the model's context: a 400, never retried."""
    topics = write(
        project / "mixed.yaml",
        "- Short topic A\n- Short topic B\n- 'Long " + "word " * 6000 + "'\n",
    )
    return await orchestrator.run(topics, sim={**SIM, "context_window": 6000})


class InterruptAfterFirstTopic:
    """Presses Ctrl-C (``control.interrupt``) as soon as one topic has finished."""

    def __init__(self, control: RunControl) -> None:
        self.control = control

    async def on_event(self, event: Event) -> None:
        if isinstance(event, ChainFinished):
            self.control.interrupt()


async def interrupted_run(**options: object) -> RunManifest:
    """Three topics one at a time, interrupted once the first is done."""
    control = RunControl(grace=5)
    manifest = await orchestrator.run(
        TOPICS,
        limit=3,
        concurrency=1,
        control=control,
        observers=[InterruptAfterFirstTopic(control)],
        **{"sim": SIM, **options},  # type: ignore[arg-type]
    )
    assert manifest.status == "interrupted"
    return manifest


async def test_runs_are_listed_newest_first_with_status_totals_and_resume_commands(
    project: Path,
) -> None:
    """Finished, finished with a failed topic, interrupted: newest first; only the
    interrupted one is resumable, with the command that resumes it."""
    first = await finished_run()
    mixed = await run_with_a_failed_topic(project)
    cut = await interrupted_run()

    listing = list_runs("outputs")
    assert [r.run_id for r in listing.runs] == [cut.run_id, mixed.run_id, first.run_id]
    assert listing.total == 3
    got = {r.run_id: r for r in listing.runs}
    done, failing = got[first.run_id], got[mixed.run_id]
    assert (done.status, done.succeeded, done.failed, done.topics) == ("finished", 2, 0, 2)
    assert (done.cost, done.wall_time_s) == (first.totals.cost, first.wall_time_s)
    assert (failing.status, failing.succeeded, failing.failed) == ("finished", 2, 1)
    assert not done.resumable and done.resume_command is None
    assert not failing.resumable, "failed topics are run again from failed.yaml, not resumed"
    interrupted = got[cut.run_id]
    assert (interrupted.status, interrupted.succeeded, interrupted.topics) == ("interrupted", 1, 3)
    assert interrupted.resumable
    assert interrupted.resume_command == f"orchestrate resume {cut.run_id}"
    assert interrupted.notes == ()

    result = runs()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line[:8].isdigit()]
    assert [row.split()[0] for row in rows] == [cut.run_id, mixed.run_id, first.run_id]
    assert "interrupted" in rows[0] and f"orchestrate resume {cut.run_id}" in rows[0]
    assert "1/0 of 3" in rows[0]
    assert "finished" in rows[1] and "2/1 of 3" in rows[1] and rows[1].endswith("no")
    assert f"${first.totals.cost:.4f}" in rows[2]


async def test_the_printed_command_resumes_the_interrupted_run(project: Path) -> None:
    """The command in the listing is one `orchestrate resume` accepts; once resumed the run
    is finished and no longer resumable. An --out other than the default is in it."""
    cut = await interrupted_run(out="results")
    (run,) = list_runs("results").runs
    assert run.resume_command == f"orchestrate resume {cut.run_id} --out results"
    argv = shlex.split(run.resume_command)
    assert argv[:2] == ["orchestrate", "resume"]
    resumed = await orchestrator.resume(argv[2], out=argv[4])
    assert (resumed.run_id, resumed.status, resumed.totals.succeeded) == (cut.run_id, "finished", 3)
    (run,) = list_runs("results").runs
    assert (run.status, run.succeeded, run.resumable, run.resume_command) == (
        "finished",
        3,
        False,
        None,
    )


async def listed_when(ready: Callable[[RunSummary], bool], out: str = "outputs") -> RunSummary:
    """Poll the listing until its newest run is ``ready``."""
    for _ in range(1500):
        if (STORE_FILE in os.listdir(out) if os.path.isdir(out) else False) and (
            listed := list_runs(out).runs
        ):
            if ready(listed[0]):
                return listed[0]
        await asyncio.sleep(0.02)
    raise AssertionError("the run never got there")


async def test_a_killed_run_is_crashed_and_resumable_with_its_topics_counted_from_the_store(
    project: Path,
) -> None:
    """SIGKILL after the first topic: the row still says running, its process is gone.
    run.json lags (it is written every few seconds), so topics done come from the store;
    the printed command then finishes the run."""
    env = {
        **os.environ,
        "ORCHESTRATE_SIM_LATENCY_MEAN": "0.3",
        "ORCHESTRATE_SIM_LATENCY_JITTER": "0",
    }
    argv = (sys.executable, "-m", "orchestrator", "run", TOPICS, "--limit", "3", "-c", "1", "-q")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        # Seen from another process while it goes on: running, and not to be resumed.
        live = await listed_when(lambda run: bool(run.succeeded))
        assert (live.status, live.resumable, live.resume_command) == ("running", False, None)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()  # reaped: a zombie would still answer kill(pid, 0)

    (run,) = list_runs("outputs").runs
    assert (run.run_id, run.status, run.failed, run.topics) == (live.run_id, "crashed", 0, 3)
    assert run.succeeded is not None and 1 <= run.succeeded < 3
    assert run.resumable and run.resume_command == f"orchestrate resume {run.run_id}"
    assert run.wall_time_s is not None and run.wall_time_s > 0
    result = runs()
    assert result.exit_code == 0 and "crashed" in result.stdout

    command = shlex.split(run.resume_command)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "orchestrator", *command[1:], "-q"),
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    (run,) = list_runs("outputs").runs
    assert (run.status, run.succeeded, run.resumable) == ("finished", 3, False)


async def test_a_run_in_progress_is_running_and_not_resumable(project: Path) -> None:
    """Listed from inside the run (its own process): running, no resume command, and the
    topics done so far."""
    seen: list[RunSummary] = []

    class ListAfterFirstTopic:
        async def on_event(self, event: Event) -> None:
            if isinstance(event, ChainFinished) and not seen:
                seen.extend(list_runs("outputs").runs)

    await orchestrator.run(
        TOPICS, limit=2, concurrency=1, sim=SIM, observers=[ListAfterFirstTopic()]
    )
    (run,) = seen
    assert (run.status, run.resumable, run.resume_command) == ("running", False, None)
    assert run.topics == 2 and run.succeeded is not None and run.succeeded <= 1


async def test_a_missing_or_damaged_run_json_shows_what_the_store_knows(project: Path) -> None:
    """Without a usable run.json the listing still has the run, its status, the topics
    the store saved and a wall time; the cost and the topic total are unknown, and a note
    says why."""
    missing = await finished_run()
    damaged = await finished_run(fresh=True)
    other = await finished_run(fresh=True)
    Path(missing.output_dir, "run.json").unlink()
    Path(damaged.output_dir, "run.json").write_text('{"run_id": "')
    # A run.json copied from another run is not this run's.
    first_id = missing.run_id
    data = json.loads(Path(other.output_dir, "run.json").read_text())
    Path(other.output_dir, "run.json").write_text(json.dumps({**data, "run_id": first_id}))

    got = by_id()
    for manifest, note in (
        (missing, "no run.json"),
        (damaged, "run.json is damaged"),
        (other, f"run.json is another run's ({first_id})"),
    ):
        run = got[manifest.run_id]
        assert (run.status, run.succeeded, run.failed, run.topics) == ("finished", 2, 0, None)
        assert run.cost is None and run.notes == (note,)
        assert run.wall_time_s is not None and run.wall_time_s >= 0

    result = runs()
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith(missing.run_id))
    assert "finished*" in row and "2/0 of -" in row
    assert f"* {missing.run_id}: no run.json" in result.stdout


async def test_a_run_whose_folder_is_gone_cannot_be_resumed(project: Path) -> None:
    cut = await interrupted_run()
    shutil.rmtree(cut.output_dir)
    run = by_id()[cut.run_id]
    assert (run.status, run.resumable, run.resume_command) == ("interrupted", False, None)
    assert run.notes == ("no run.json", f"its folder {cut.output_dir} is gone")


async def test_a_run_made_with_a_client_passed_in_is_resumable_only_from_python(
    project: Path,
) -> None:
    """`orchestrate resume` refuses such a run (only the program has the client): no
    command, a note on how to resume it instead."""
    cut = await interrupted_run(client=FakeClient(), sim=None)
    run = by_id()[cut.run_id]
    assert run.resumable and run.resume_command is None
    assert run.notes == (f"made with a client passed in: resume({cut.run_id!r}, client=...)",)
    result = runs()
    assert "from Python*" in result.stdout


async def test_json_is_one_array_with_the_same_facts(project: Path) -> None:
    first = await finished_run()
    cut = await interrupted_run()
    result = runs("--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # nothing else on stdout
    assert [d["run_id"] for d in data] == [cut.run_id, first.run_id]
    assert data == [r.as_json() for r in list_runs("outputs").runs]
    newest = data[0]
    assert newest["status"] == "interrupted" and newest["resumable"] is True
    assert newest["resume_command"] == f"orchestrate resume {cut.run_id}"
    assert (newest["succeeded"], newest["failed"], newest["topics"]) == (1, 0, 3)
    assert newest["started_at"].endswith("+00:00")
    assert data[1]["cost"] == first.totals.cost and data[1]["resume_command"] is None


async def test_limit_shows_the_newest_and_says_how_many_there_are(project: Path) -> None:
    made = [(await finished_run(fresh=True)).run_id for _ in range(3)]
    result = runs("--limit", "2")
    rows = [line.split()[0] for line in result.stdout.splitlines() if line[:8].isdigit()]
    assert rows == made[:0:-1]
    assert "the 2 newest of 3 runs; --all lists every one" in result.stdout
    assert [d["run_id"] for d in json.loads(runs("--limit", "1", "--json").stdout)] == [made[2]]
    result = runs("--all", "--limit", "1")
    assert [line.split()[0] for line in result.stdout.splitlines() if line[:8].isdigit()] == (
        made[::-1]
    )
    assert "newest of" not in result.stdout


async def test_a_narrow_terminal_gets_the_commands_under_the_table(project: Path) -> None:
    """A resume command folded over lines cannot be pasted: under 80 columns they move
    below the table, whole."""
    cut = await interrupted_run()
    buffer = io.StringIO()
    print_runs(list_runs("outputs"), Path("outputs"), console=Console(file=buffer, width=80))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert f"  orchestrate resume {cut.run_id}" in lines
    assert "resumable" not in buffer.getvalue()


def test_no_store_is_a_usage_error_and_creates_nothing(project: Path) -> None:
    result = runs("--out", "typo")
    assert result.exit_code == 2
    assert "no runs in typo (no state.db)" in result.stderr
    assert "hint: pass the --out" in result.stderr
    assert result.stdout == ""
    assert not (project / "typo").exists()
    with pytest.raises(ConfigError):
        list_runs(project / "typo")


def test_a_corrupt_store_is_a_usage_error_without_a_traceback(project: Path) -> None:
    out = project / "outputs"
    out.mkdir()
    (out / "state.db").write_bytes(os.urandom(8192))
    result = runs()
    assert result.exit_code == 2
    assert "state.db" in result.stderr and "move it aside" in result.stderr
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)


def test_an_empty_store_lists_no_runs(project: Path) -> None:
    Store.open(project / "outputs" / "state.db").close()
    result = runs()
    assert result.exit_code == 0 and result.stdout == "no runs in outputs yet\n"
    assert json.loads(runs("--json").stdout) == []


async def test_text_from_files_is_never_rich_markup(project: Path) -> None:
    """An --out (and so every command) holding markup is printed as it is."""
    out = "res[bold]ults[/bold]"
    cut = await interrupted_run(out=out)
    result = runs("--out", out)
    assert result.exit_code == 0, result.output
    assert f"runs in {out}" in result.stdout
    assert f"orchestrate resume {cut.run_id} --out '{out}'" in result.stdout


def test_help_has_examples() -> None:
    result = runs("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "\n    orchestrate runs --out results --all\n" in result.stdout  # \b kept the lines


async def test_a_crash_on_another_host_counts_as_crashed(project: Path) -> None:
    """A row marked running by a process we cannot see (another host) is a crash, as
    `orchestrate resume` judges it."""
    cut = await interrupted_run()
    store = Store.open(project / "outputs" / "state.db")
    try:
        record = store.get_run(cut.run_id)
        assert record is not None
        store.start_run(replace(record, status="running", host="elsewhere"))
    finally:
        store.close()
    run = by_id()[cut.run_id]
    assert (run.status, run.resumable) == ("crashed", True)
