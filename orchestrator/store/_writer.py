"""The state store's one writer thread, which commits queued writes in groups.

With ``synchronous=FULL`` every SQLite commit waits for an fsync, which costs far more than the
rows it makes durable. So writes are queued and one thread commits whatever has gathered
while the previous commit was syncing, all in one transaction: *group commit*, as database
servers do it (PostgreSQL's ``commit_delay``,
https://www.postgresql.org/docs/current/wal-configuration.html). A caller is told "done"
only after the transaction holding its write has committed.

If a group fails, it is rolled back and each write is retried in a transaction of its own, so
one bad write (too big for the space left) fails alone. Every failure reaches its caller as a
:class:`StoreError`; the thread itself never dies of one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import shlex
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import StoreError

Statement = tuple[str, Sequence[Any]]
Outcomes = list[tuple["asyncio.Future[None]", StoreError | None]]

# A group stays one transaction of bounded size, so one commit never holds back its callers long.
_MAX_GROUP = 5000

# The -wal file goes too: SQLite could replay a stale one into a new state.db.
HINT_CORRUPT = (
    "move it aside (`mv {quoted} {quoted}.broken`, with its -wal and -shm files if any); "
    "run folders are untouched, only resume and reuse start over"
)
HINT_LOCKED = "another orchestrate process is using it; wait for it or use another --out"
HINT_WRITABLE = "choose a writable --out"
HINT_FULL = "free some space; finished outputs are in the run folder; then resume the run"


def store_error(path: Path, exc: BaseException) -> StoreError:
    """Translate what SQLite or the OS raised into a StoreError that says how to fix it."""
    if isinstance(exc, StoreError):
        return StoreError(exc.path, exc.reason, hint=exc.hint)  # a fresh one per caller
    reason, hint = str(exc), None
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # primary of extended code
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            hint = HINT_CORRUPT.format(quoted=shlex.quote(str(path)))
        elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            hint = HINT_LOCKED
        elif code == sqlite3.SQLITE_FULL:
            reason, hint = "the disk (or the database) is full", HINT_FULL
        elif code in (
            sqlite3.SQLITE_CANTOPEN,
            sqlite3.SQLITE_READONLY,
            sqlite3.SQLITE_PERM,
            sqlite3.SQLITE_IOERR,
        ):
            hint = HINT_WRITABLE
    elif isinstance(exc, OSError):
        reason, hint = exc.strerror or str(exc), HINT_WRITABLE
    else:
        reason = f"unexpected error in the store's writer: {exc!r}"
    return StoreError(path, reason, hint=hint)


def connect(
    path: Path,
    busy_timeout: float,
    *,
    synchronous: str | None = None,
    max_pages: int | None = None,
) -> sqlite3.Connection:
    """A connection in WAL mode that we BEGIN and COMMIT ourselves (``isolation_level=None``).

    ``check_same_thread=False``: the writer's connection is handed to its thread, and the
    reader's may be opened on a worker thread (``asyncio.to_thread``) and read on the loop's.
    ``synchronous`` and ``max_pages`` (a cap on the file's size) are for the writer's.
    """
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]  # reads: finds corruption
        if str(mode).lower() != "wal":
            raise StoreError(path, f"cannot use WAL mode (journal_mode={mode})", hint=HINT_WRITABLE)
        if synchronous is not None:
            conn.execute(f"PRAGMA synchronous={synchronous}")
        if max_pages is not None:
            conn.execute(f"PRAGMA max_page_count={int(max_pages)}")
    except BaseException:
        conn.close()
        raise
    return conn


class Item:
    """One queued write: its statements (one unit) and who waits for it.

    An asyncio caller leaves a future of its ``loop``; a sync caller a concurrent future.
    """

    __slots__ = ("statements", "future", "loop", "waiter")

    def __init__(
        self,
        statements: Sequence[Statement],
        *,
        future: asyncio.Future[None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        waiter: concurrent.futures.Future[None] | None = None,
    ) -> None:
        self.statements = statements
        self.future = future
        self.loop = loop
        self.waiter = waiter


def _resolve(outcomes: Outcomes) -> None:
    """Runs in the caller's loop: settle a group's futures (those cancelled are skipped)."""
    for future, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class Writer:
    """The thread that owns the write connection; :meth:`submit` queues, :meth:`stop` flushes."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, group_window: float) -> None:
        self._conn = conn
        self._path = path
        self._window = group_window
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.commits = 0
        self.broken: StoreError | None = None
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, name="orchestrate-store", daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> None:
        self._queue.put(item)

    def stop(self) -> None:
        """Queue the stop: everything queued before it commits, then the connection closes."""
        self._queue.put(None)

    # --- the thread ---

    def _serve(self) -> None:
        stop = False
        try:
            while not stop:
                group, stop = self._collect()
                if group:
                    try:
                        self._settle(group, self._commit(group))
                    except Exception as exc:  # a bug of ours: fail the group, keep serving
                        self._settle(group, [exc] * len(group))
        finally:
            if not stop and self.broken is None:  # died: later writes must fail, not hang
                self.broken = StoreError(self._path, "the store's writer thread stopped")
            # A write queued after the stop (a racing thread) is failed, never left hanging.
            closed = self.broken or StoreError(self._path, "the store is closed")
            while True:
                try:
                    late = self._queue.get_nowait()
                except queue.Empty:
                    break
                if late is not None:
                    self._settle([late], [closed])
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            if not self.stopped.done():
                self.stopped.set_result(None)

    def _collect(self) -> tuple[list[Item], bool]:
        """Block for one write, then take all that wait (and, with a window, that come)."""
        first = self._queue.get()
        if first is None:
            return [], True
        group = [first]
        deadline = time.monotonic() + self._window
        while len(group) < _MAX_GROUP:
            try:
                left = deadline - time.monotonic()
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
        return group, False

    def _commit(self, group: list[Item]) -> list[BaseException | None]:
        """Commit the group as one transaction; if it fails, each write alone."""
        if self.broken is not None:
            return [self.broken] * len(group)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # nothing item-specific (locked): fail all, at once
            return [exc] * len(group)
        try:
            for item in group:
                for sql, params in item.statements:
                    self._conn.execute(sql, params)
            self._conn.execute("COMMIT")
        except Exception as exc:
            self._rollback()
            if len(group) == 1 or self.broken is not None:
                return [self.broken or exc] * len(group)
            return self._one_by_one(group)
        self.commits += 1
        return [None] * len(group)

    def _one_by_one(self, group: list[Item]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for item in group:
            if self.broken is not None:
                outcomes.append(self.broken)
                continue
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                outcomes.extend([exc] * (len(group) - len(outcomes)))
                break
            try:
                for sql, params in item.statements:
                    self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except Exception as exc:
                self._rollback()
                outcomes.append(exc)
            else:
                self.commits += 1
                outcomes.append(None)
        return outcomes

    def _rollback(self) -> None:
        if not self._conn.in_transaction:  # SQLite may have rolled back already (e.g. full)
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the connection is unusable: fail every later write now
            self.broken = store_error(self._path, exc)

    def _settle(self, group: list[Item], outcomes: Sequence[BaseException | None]) -> None:
        """Tell every waiter; one ``call_soon_threadsafe`` per event loop for the group."""
        by_loop: dict[asyncio.AbstractEventLoop, Outcomes] = {}
        for item, exc in zip(group, outcomes, strict=True):
            error = None if exc is None else store_error(self._path, exc)
            if item.waiter is not None:
                if not item.waiter.done():
                    if error is None:
                        item.waiter.set_result(None)
                    else:
                        item.waiter.set_exception(error)
            elif item.loop is not None and item.future is not None:
                by_loop.setdefault(item.loop, []).append((item.future, error))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, pairs)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass
