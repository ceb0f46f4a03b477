"""The store's rows as Python values: a finished stage's answer, a run's record, and the
timestamps and JSON they are stored as."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

RUN_STATUSES = ("running", "finished", "stopped", "interrupted", "failed")


@dataclass(frozen=True, slots=True)
class StageResult:
    """The answer a finished stage got: what reuse serves again."""

    fingerprint: str  # hex sha256 of the request (computed by the caller)
    model: str  # the model that answered
    output: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens the provider served from its prompt cache
    cost: float | None  # USD; None when the model's price is unknown


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of ``runs``. ``updated_at`` is bumped by every commit touching the run."""

    run_id: str
    topics_file: str  # absolute path
    plan_hash: str  # caller's hash of topics + chain; resume refuses a mismatch
    run_dir: str
    status: str  # running | finished | stopped | interrupted | failed
    started_at: datetime  # aware, UTC
    updated_at: datetime  # last commit touching this run (heartbeat); crash detection
    pid: int
    host: str
    settings: dict[str, Any]  # the run's flags (concurrency, provider, ...)

    @property
    def alive(self) -> bool:
        """Running, and its process still exists on this host."""
        return self.status == "running" and self.host == socket.gethostname() and _alive(self.pid)

    @property
    def crashed(self) -> bool:
        """Marked running, but its process is gone (killed, power cut, another host's)."""
        return self.status == "running" and not self.alive


def _alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0, ...) would signal our own process group
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def stamp(moment: datetime) -> str:
    """ISO 8601 UTC with fixed microseconds, so the strings sort as the times do."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware (UTC) datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def run_status(status: str) -> str:
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    return status


def to_json(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, topics_file, plan_hash, run_dir, status, started, updated, pid, host, settings = row
    return RunRecord(
        run_id, topics_file, plan_hash, run_dir, status,
        datetime.fromisoformat(started), datetime.fromisoformat(updated), pid, host,
        json.loads(settings),
    )  # fmt: skip
