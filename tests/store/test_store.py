"""The state store: round trips, durability, group commit, and every way state.db can fail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator._errors import StoreError
from orchestrator.store._records import RunRecord, StageResult
from orchestrator.store._store import Store

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def answer(fingerprint: str = "f" * 64, output: str = "text", **kw: Any) -> StageResult:
    fields: dict[str, Any] = {
        "model": "gpt-test",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "cached_tokens": 4,
        "cost": 0.0012,
    }
    fields.update(kw)
    return StageResult(fingerprint=fingerprint, output=output, **fields)


def run_record(run_id: str = "r1", **kw: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "topics_file": "/abs/topics.yaml",
        "plan_hash": "h1",
        "run_dir": f"/out/{run_id}",
        "status": "running",
        "started_at": T0,
        "updated_at": T0,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "settings": {"concurrency": 8, "provider": "sim"},
    }
    fields.update(kw)
    return RunRecord(run_id=run_id, **fields)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "out" / "state.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    async with Store.open(db) as s:
        s.start_run(run_record())
        yield s


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh connection of our own, as another process would open one."""
    conn = sqlite3.connect(path)
    try:
        yield conn
    finally:
        conn.close()


# --- round trips ---


async def test_saved_stage_comes_back_by_fingerprint_and_by_run(store: Store) -> None:
    result = answer(output="é — unicode kept")
    await store.save_stage("r1", 0, "research", result, {"attempts": 1, "ms": 12.5})
    await store.save_stage("r1", 0, "write", answer("a" * 64, cost=None), {"attempts": 2})
    await store.save_stage("r1", 3, "research", answer("b" * 64), {})

    assert store.lookup("f" * 64) == result
    assert store.lookup("0" * 64) is None
    assert store.run_stages("r1") == {
        0: {
            "research": (result, {"attempts": 1, "ms": 12.5}),
            "write": (answer("a" * 64, cost=None), {"attempts": 2}),
        },
        3: {"research": (answer("b" * 64), {})},
    }
    assert store.run_stages("nope") == {}


async def test_topics_round_trip_and_a_later_save_replaces(store: Store) -> None:
    await store.save_topic("r1", 0, "running", {"slug": "a"})
    await store.save_topic("r1", 1, "failed", {"error": "boom"})
    await store.save_topic("r1", 0, "succeeded", {"slug": "a", "tokens": 30})
    assert store.run_topics("r1") == {
        0: ("succeeded", {"slug": "a", "tokens": 30}),
        1: ("failed", {"error": "boom"}),
    }


async def test_run_record_round_trips_and_status_bumps_updated_at(store: Store) -> None:
    got = store.get_run("r1")
    assert got == run_record()
    assert got is not None and got.started_at.tzinfo is not None
    await store.set_status("r1", "finished")
    after = store.get_run("r1")
    assert after is not None and after.status == "finished" and after.updated_at > T0
    await store.set_status("r1", "interrupted")
    last = store.get_run("r1")
    assert last is not None and last.status == "interrupted"
    assert last.updated_at >= after.updated_at
    assert store.get_run("nope") is None
    with pytest.raises(ValueError, match="not one of"):
        await store.set_status("r1", "done")


async def test_save_stage_bumps_the_run_heartbeat(store: Store) -> None:
    await store.save_stage("r1", 0, "s", answer(), {})
    got = store.get_run("r1")
    assert got is not None and got.updated_at > T0 and got.started_at == T0


async def test_runs_newest_first_and_filtered_by_topics_file(store: Store) -> None:
    later = T0 + timedelta(seconds=1)
    store.start_run(run_record("r2", started_at=later, topics_file="/abs/other.yaml"))
    store.start_run(run_record("r3", started_at=later))  # same time: run_id breaks the tie
    store.start_run(run_record("r0", started_at=T0 - timedelta(microseconds=1)))
    assert [r.run_id for r in store.runs()] == ["r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.runs(topics_file="/abs/topics.yaml")] == ["r3", "r1", "r0"]
    assert store.runs(topics_file="/abs/none.yaml") == []


async def test_a_second_save_of_the_same_stage_replaces_it(store: Store) -> None:
    await store.save_stage("r1", 0, "s", answer(output="first"), {"n": 1})
    await store.save_stage("r1", 0, "s", answer("c" * 64, output="second"), {"n": 2})
    assert store.run_stages("r1") == {0: {"s": (answer("c" * 64, output="second"), {"n": 2})}}
    with raw(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM stages").fetchone() == (1,)


async def test_fresh_answer_replaces_reuse_but_not_an_earlier_runs_own_stage(
    store: Store,
) -> None:
    """--fresh: results[fp] gets the newer answer; r1 still restores what r1 saved."""
    old = answer(output="old answer", completion_tokens=5)
    new = answer(output="new answer", completion_tokens=7, model="gpt-other")
    await store.save_stage("r1", 0, "s", old, {"run": 1})
    store.start_run(run_record("r2"))
    await store.save_stage("r2", 0, "s", new, {"run": 2})
    assert store.lookup(old.fingerprint) == new
    assert store.run_stages("r1") == {0: {"s": (old, {"run": 1})}}
    assert store.run_stages("r2") == {0: {"s": (new, {"run": 2})}}


async def test_a_record_that_is_not_json_fails_in_the_caller_and_queues_nothing(
    store: Store,
) -> None:
    commits = store.commits
    with pytest.raises(TypeError):
        await store.save_stage("r1", 0, "s", answer(), {"bad": {1, 2}})
    assert store.commits == commits and store.run_stages("r1") == {}


async def test_a_reused_stage_keeps_the_stored_answer_as_it_was(store: Store) -> None:
    """reused=True writes the run's own stage (cost 0 now) but leaves results[fp] alone."""
    paid = answer(cost=0.5)
    await store.save_stage("r1", 0, "s", paid, {})
    store.start_run(run_record("r2"))
    served = answer(cost=0.0)
    await store.save_stage("r2", 0, "s", served, {"cached": True}, reused=True)
    assert store.lookup(paid.fingerprint) == paid
    assert store.run_stages("r2") == {0: {"s": (served, {"cached": True})}}


# --- durability and group commit ---


async def test_a_returned_save_is_visible_to_a_new_connection_at_once(
    store: Store, db: Path
) -> None:
    await store.save_stage("r1", 2, "write", answer(output="durable"), {"k": "v"})
    with raw(db) as conn:
        assert conn.execute("SELECT output FROM results").fetchall() == [("durable",)]
        assert conn.execute("SELECT topic, stage FROM stages").fetchall() == [(2, "write")]


async def test_a_new_store_after_close_sees_everything(db: Path) -> None:
    async with Store.open(db) as s:
        s.start_run(run_record())
        await s.save_stage("r1", 0, "s", answer(), {"x": 1})
        await s.save_topic("r1", 0, "succeeded", {})
    async with Store.open(db) as s:
        assert s.run_stages("r1") == {0: {"s": (answer(), {"x": 1})}}
        assert s.run_topics("r1") == {0: ("succeeded", {})}
        assert s.get_run("r1") is not None


async def test_concurrent_saves_are_grouped_into_few_transactions(store: Store) -> None:
    before = store.commits
    await asyncio.gather(
        *(store.save_stage("r1", i, "s", answer(f"{i:064x}"), {"i": i}) for i in range(2000))
    )
    stages = store.run_stages("r1")
    assert len(stages) == 2000 and stages[1999]["s"][1] == {"i": 1999}
    assert store.commits - before < 2000 / 10


async def test_group_window_collects_writes_into_one_transaction(db: Path) -> None:
    async with Store.open(db, group_window=0.05) as s:
        s.start_run(run_record())
        before = s.commits

        async def late(i: int) -> None:
            await asyncio.sleep(0.01 * i)
            await s.save_stage("r1", i, "s", answer(f"{i:064x}"), {})

        await asyncio.gather(*(late(i) for i in range(3)))
        assert s.commits - before == 1 and len(s.run_stages("r1")) == 3


async def test_aclose_commits_every_queued_write(db: Path) -> None:
    s = Store.open(db)
    s.start_run(run_record())
    tasks = [
        asyncio.create_task(s.save_stage("r1", i, "s", answer(f"{i:064x}"), {})) for i in range(50)
    ]
    await asyncio.sleep(0)  # every task has queued its write
    await s.aclose()
    await s.aclose()  # idempotent
    s.close()
    await asyncio.gather(*tasks)
    with raw(db) as conn:
        assert conn.execute("SELECT count(*) FROM stages").fetchone() == (50,)
    with pytest.raises(StoreError, match="closed"):
        await s.save_stage("r1", 99, "s", answer(), {})
    with pytest.raises(StoreError, match="closed"):
        s.lookup("f" * 64)


async def test_a_cancelled_waiter_does_not_lose_its_write(store: Store, db: Path) -> None:
    task = asyncio.create_task(store.save_stage("r1", 7, "s", answer(), {"kept": True}))
    await asyncio.sleep(0)  # queued
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.save_topic("r1", 7, "x", {})  # queued after it, so committed after it
    assert store.run_stages("r1") == {7: {"s": (answer(), {"kept": True})}}


def test_a_save_survives_sigkill_right_after_it_returned(db: Path) -> None:
    child = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from pathlib import Path
        from orchestrator.store._records import StageResult
        from orchestrator.store._store import Store

        async def main():
            store = Store.open(Path({str(db)!r}))
            result = StageResult("e" * 64, "m", "kept", 1, 2, 0, None)
            await store.save_stage("r9", 1, "edit", result, {{}})
            print("saved", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == -9 and proc.stdout == "saved\n", proc.stderr
    s = Store.open(db)
    try:
        assert s.run_stages("r9")[1]["edit"][0].output == "kept"
    finally:
        s.close()


# --- alive / crashed ---


def test_running_with_our_pid_is_alive_and_a_dead_pid_is_crashed() -> None:
    assert run_record().alive and not run_record().crashed
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = run_record(pid=proc.pid)
    assert not dead.alive and dead.crashed
    assert run_record(host="elsewhere.invalid").crashed
    done = run_record(pid=proc.pid, status="finished")
    assert not done.alive and not done.crashed


# --- failures: each a StoreError with a hint, at open ---


def test_a_corrupted_file_fails_at_open_and_says_move_it_aside(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="move it aside") as info:
        Store.open(db)
    assert str(db) in str(info.value) and info.value.path == str(db)


def test_a_locked_file_fails_at_open_after_the_busy_timeout(db: Path) -> None:
    Store.open(db).close()
    with raw(db) as other:
        other.isolation_level = None
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked") as info:
            Store.open(db, busy_timeout=0.2)
        other.execute("ROLLBACK")
    assert "another orchestrate process" in str(info.value)


async def test_a_full_database_fails_that_save_only_and_keeps_earlier_ones(db: Path) -> None:
    async with Store.open(db, max_pages=40) as s:
        s.start_run(run_record())
        await s.save_stage("r1", 0, "s", answer("0" * 64, output="small"), {})
        big = answer("1" * 64, output="x" * 400_000)
        outcomes = await asyncio.gather(
            s.save_stage("r1", 1, "s", answer("2" * 64), {}),
            s.save_stage("r1", 2, "s", big, {}),
            s.save_stage("r1", 3, "s", answer("3" * 64), {}),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None
        error = outcomes[1]
        assert isinstance(error, StoreError) and "full" in str(error)
        assert error.hint is not None and "resume" in error.hint
        assert sorted(s.run_stages("r1")) == [0, 1, 3]
        await s.save_stage("r1", 4, "s", answer("4" * 64), {})  # still serving
    with raw(db) as conn:
        assert conn.execute("SELECT count(*) FROM stages").fetchone() == (4,)


def test_a_directory_in_the_way_fails_with_choose_a_writable_out(db: Path) -> None:
    db.mkdir(parents=True)
    with pytest.raises(StoreError, match="writable --out"):
        Store.open(db)


def test_a_file_where_the_folder_should_be_fails(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(StoreError, match="writable --out") as info:
        Store.open(tmp_path / "out" / "sub" / "state.db")
    assert f"cannot create {tmp_path / 'out'}" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_an_unwritable_folder_fails_with_choose_a_writable_out(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="writable --out"):
            Store.open(locked / "state.db")
    finally:
        locked.chmod(0o700)


def test_a_newer_schema_version_is_refused_by_name(db: Path) -> None:
    Store.open(db).close()
    with raw(db) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        conn.commit()
    with pytest.raises(StoreError, match="schema version 2"):
        Store.open(db)


def test_the_file_is_in_wal_mode_with_schema_version_1(db: Path) -> None:
    Store.open(db).close()
    with raw(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT value FROM meta").fetchall() == [("1",)]
