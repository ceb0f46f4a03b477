"""The state store: one SQLite file, ``<outputs root>/state.db``, of runs, topics and stages.

Every finished stage is committed before its chain's next stage starts, so finished work is
never lost, a run can be resumed, and an identical request (same fingerprint) is answered
again from ``results`` without a call. ``stages`` keeps each run's own copy of its answers,
so a later ``--fresh`` run that replaces ``results[fingerprint]`` never changes what an
earlier run restores.

Writes go through one writer thread that commits them in groups (see ``_writer``); an
``await save_stage(...)`` returns once its transaction has committed. Reads are primary-key
lookups on the caller's thread, through a second connection: in WAL mode readers and the
writer do not block each other.

``synchronous=FULL``: a commit survives a power cut, not only a killed process. Measured by
``python benchmarks/store.py`` (2 cores, ext4 on a virtual disk, 2 KB outputs)::

    case (3000 saves)              saves/s  per txn  p50 ms  p99 ms
    baseline: sleep(0), 200 tasks  520,000       -    0.30    0.39
    FULL, 200 tasks                 18,500     200    7.5      18
    NORMAL, 200 tasks               18,600     200    6.2      21
    FULL, 2 ms group_window         14,600     200   11.8      22
    FULL, one task, sequential       2,600       1    0.36    0.55
    NORMAL, one task, sequential     5,300       1    0.13    0.56

Under load a save costs ~50 µs of CPU (30 in the writer thread, 20 on the loop) and FULL
equals NORMAL within noise: its fsync is paid once per group of ~200. Alone, FULL adds
~0.2 ms (one fsync here; more on a slow disk). So FULL. A loaded save waits for the saves
queued ahead of it (200 ÷ ~18,000/s ≈ 10 ms); the p99 is a group whose commit also ran a WAL
checkpoint (+10 ms). A group window only adds latency when saves queue anyway: default 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .._errors import StoreError
from ._records import (
    RunRecord,
    StageResult,
    now_stamp,
    run_record,
    run_status,
    stamp,
    to_json,
)
from ._writer import HINT_WRITABLE, Item, Statement, Writer, connect, store_error

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs(
    run_id TEXT PRIMARY KEY, topics_file TEXT NOT NULL, plan_hash TEXT NOT NULL,
    run_dir TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, settings TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_topics_file ON runs(topics_file, started_at);
CREATE TABLE IF NOT EXISTS results(
    fingerprint TEXT PRIMARY KEY, model TEXT NOT NULL, output TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cost REAL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages(
    run_id TEXT NOT NULL, topic INTEGER NOT NULL, stage TEXT NOT NULL,
    fingerprint TEXT NOT NULL, model TEXT NOT NULL, output TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cost REAL, record TEXT NOT NULL,
    PRIMARY KEY(run_id, topic, stage));
CREATE TABLE IF NOT EXISTS topics(
    run_id TEXT NOT NULL, topic INTEGER NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY(run_id, topic));
"""
_RESULT = "fingerprint, model, output, prompt_tokens, completion_tokens, cached_tokens, cost"
_RUN = (
    "run_id, topics_file, plan_hash, run_dir, status, started_at, updated_at, pid, host, settings"
)
_PUT_RESULT = f"INSERT OR REPLACE INTO results({_RESULT}, created_at) VALUES (?,?,?,?,?,?,?,?)"
_PUT_STAGE = (
    f"INSERT OR REPLACE INTO stages(run_id, topic, stage, {_RESULT}, record)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_PUT_TOPIC = "INSERT OR REPLACE INTO topics(run_id, topic, status, record) VALUES (?,?,?,?)"
_PUT_RUN = f"INSERT OR REPLACE INTO runs({_RUN}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_TOUCH_RUN = "UPDATE runs SET updated_at = ? WHERE run_id = ?"
_SET_STATUS = "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?"


class Store:
    """The state store of one outputs folder (``path`` is its file); see :meth:`Store.open`.

    Use it from one event loop; ``async with Store.open(path) as store:`` closes it.
    """

    def __init__(
        self, path: Path, reader: sqlite3.Connection, writer: Writer, *, busy_timeout: float
    ) -> None:
        self.path = path
        self._reader = reader
        # The reader may be used on another thread than the one that opened it (the store
        # opened in ``asyncio.to_thread`` so a locked file does not stall the loop); the lock
        # keeps two threads from sharing the connection at once. Uncontended, it costs ~0.1 µs.
        self._read_lock = threading.Lock()
        self._writer = writer
        self._busy_timeout = busy_timeout
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        busy_timeout: float = 10.0,
        group_window: float = 0.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_pages: int | None = None,
    ) -> Store:
        """Open (or create) the store at ``path``; StoreError, with a hint, if it cannot be used.

        A real read and a write happen here, so a corrupt, locked or unwritable file fails
        now, before any work. ``group_window`` > 0 makes the writer wait that many seconds
        for more writes before committing a group. ``synchronous="NORMAL"`` (survives a
        killed process, not a power cut) and ``max_pages`` (caps the file, to test a full
        disk) exist for the benchmark and the tests.
        """
        if busy_timeout < 0 or group_window < 0:
            raise ValueError("busy_timeout and group_window must be >= 0")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        path = Path(path)
        conn: sqlite3.Connection | None = None
        reader: sqlite3.Connection | None = None
        try:
            _make_folder(path)
            if path.is_dir():
                raise StoreError(path, "is a directory", hint=HINT_WRITABLE)
            conn = connect(path, busy_timeout, synchronous=synchronous, max_pages=max_pages)
            _check_schema(conn, path)
            reader = connect(path, busy_timeout)
            reader.execute("PRAGMA query_only=ON")
            reader.execute("SELECT count(*) FROM runs").fetchone()
        except BaseException as exc:
            for c in (reader, conn):
                if c is not None:
                    c.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise store_error(path, exc) from exc
            raise
        writer = Writer(conn, path, group_window=group_window)
        return cls(path, reader, writer, busy_timeout=busy_timeout)

    @property
    def commits(self) -> int:
        """Transactions committed so far (each holds one or many writes)."""
        return self._writer.commits

    # --- writes: all through the writer thread ---

    def start_run(self, record: RunRecord) -> None:
        """Insert (or replace) a run; blocks until committed. Call before the run's work."""
        r = record
        row = (
            r.run_id, r.topics_file, r.plan_hash, r.run_dir, run_status(r.status),
            stamp(r.started_at), stamp(r.updated_at), r.pid, r.host, to_json(r.settings),
        )  # fmt: skip
        self._wait(((_PUT_RUN, row),))

    def claim_run(self, seen: RunRecord, *, pid: int, host: str) -> bool:
        """Mark run ``seen.run_id`` as running in this process, if its row is still as
        ``seen`` read it: two resumes of one run at once race here, under SQLite's write
        lock, and only the first wins (False for the second). Blocks until decided."""
        conn = connect(self.path, self._busy_timeout)
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT status, updated_at FROM runs WHERE run_id = ?", (seen.run_id,)
            ).fetchone()
            won = row is not None and tuple(row) == (seen.status, stamp(seen.updated_at))
            if won:
                conn.execute(
                    "UPDATE runs SET status = 'running', pid = ?, host = ?, updated_at = ? "
                    "WHERE run_id = ?",
                    (pid, host, now_stamp(), seen.run_id),
                )
            conn.execute("COMMIT")
            return won
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        finally:
            conn.close()

    async def set_status(self, run_id: str, status: str) -> None:
        """Set a run's status (a no-op for an unknown run); returns once committed."""
        await self._queue(((_SET_STATUS, (run_status(status), now_stamp(), run_id)),))

    async def save_stage(
        self,
        run_id: str,
        topic: int,
        stage: str,
        result: StageResult,
        record: dict[str, Any],
        *,
        reused: bool = False,
    ) -> None:
        """Save a finished stage and its answer for reuse; returns once committed.

        ``reused``: the answer was served from ``results``; only the run's own stage row is
        written, so the stored answer (and its cost) stays as the call that made it saved it.
        """
        now, r = now_stamp(), result
        usage = (r.model, r.output, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cost)
        statements: tuple[Statement, ...] = (
            (_PUT_STAGE, (run_id, topic, stage, r.fingerprint, *usage, to_json(record))),
            (_TOUCH_RUN, (now, run_id)),
        )
        if not reused:
            statements = ((_PUT_RESULT, (r.fingerprint, *usage, now)), *statements)
        await self._queue(statements)

    async def save_topic(
        self, run_id: str, topic: int, status: str, record: dict[str, Any]
    ) -> None:
        """Save a topic's status and record; returns once committed."""
        await self._queue(
            (
                (_PUT_TOPIC, (run_id, topic, status, to_json(record))),
                (_TOUCH_RUN, (now_stamp(), run_id)),
            )
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(self.path, "the store is closed")
        if self._writer.broken is not None:
            raise store_error(self.path, self._writer.broken)

    def _queue(self, statements: tuple[Statement, ...]) -> asyncio.Future[None]:
        # Cancelling the awaiting task cancels this future only: the write, already queued,
        # still commits; its outcome is dropped.
        self._check_open()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._writer.submit(Item(statements, future=future, loop=loop))
        return future

    def _wait(self, statements: tuple[Statement, ...]) -> None:
        self._check_open()
        waiter: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer.submit(Item(statements, waiter=waiter))
        timeout = self._busy_timeout + 5.0
        try:
            waiter.result(timeout=timeout)
        except TimeoutError:
            raise StoreError(
                self.path, f"no commit within {timeout:g} s", hint=HINT_WRITABLE
            ) from None

    # --- reads: on the caller's thread ---

    def lookup(self, fingerprint: str) -> StageResult | None:
        """The latest answer saved for this request fingerprint, if any."""
        rows = self._read(f"SELECT {_RESULT} FROM results WHERE fingerprint = ?", (fingerprint,))
        return StageResult(*rows[0]) if rows else None

    def run_stages(self, run_id: str) -> dict[int, dict[str, tuple[StageResult, dict[str, Any]]]]:
        """topic index -> stage name -> (the answer this run saved, its record)."""
        rows = self._read(
            f"SELECT topic, stage, {_RESULT}, record FROM stages WHERE run_id = ?", (run_id,)
        )
        stages: dict[int, dict[str, tuple[StageResult, dict[str, Any]]]] = {}
        for topic, stage, *result, record in rows:
            stages.setdefault(topic, {})[stage] = (StageResult(*result), json.loads(record))
        return stages

    def run_topics(self, run_id: str) -> dict[int, tuple[str, dict[str, Any]]]:
        """topic index -> (status, record)."""
        rows = self._read("SELECT topic, status, record FROM topics WHERE run_id = ?", (run_id,))
        return {topic: (status, json.loads(record)) for topic, status, record in rows}

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run's row, if there is one."""
        rows = self._read(f"SELECT {_RUN} FROM runs WHERE run_id = ?", (run_id,))
        return run_record(rows[0]) if rows else None

    def runs(self, *, topics_file: str | None = None) -> list[RunRecord]:
        """Runs, newest first; only those of ``topics_file`` when given."""
        where, params = ("WHERE topics_file = ?", (topics_file,)) if topics_file else ("", ())
        order = "ORDER BY started_at DESC, run_id DESC"
        return [
            run_record(r) for r in self._read(f"SELECT {_RUN} FROM runs {where} {order}", params)
        ]

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._closed:
            raise StoreError(self.path, "the store is closed")
        try:
            with self._read_lock:
                return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc

    # --- lifecycle ---

    async def aclose(self) -> None:
        """Commit everything queued, stop the writer, close both connections. Idempotent."""
        self._stop()
        # shield: a cancelled aclose must not cancel the shared "stopped" future.
        await asyncio.shield(asyncio.wrap_future(self._writer.stopped))
        self._close_reader()

    def close(self) -> None:
        """:meth:`aclose` for callers without an event loop (and tests). Idempotent."""
        self._stop()
        self._writer.stopped.result()
        self._close_reader()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.stop()

    def _close_reader(self) -> None:
        with self._read_lock:
            self._reader.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # say which folder: the OS's "File exists" alone does not
        where = exc.filename or path.parent
        raise StoreError(
            path, f"cannot create {where}: {exc.strerror}", hint=HINT_WRITABLE
        ) from exc


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema, or refuse a newer one, inside a write transaction (finds locks)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise StoreError(
                path,
                f"schema version {version} is newer than this orchestrate knows ({SCHEMA_VERSION})",
                hint="upgrade orchestrate, or use another --out",
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
