"""Which runs can be resumed: a live run is refused, a dead one (or a pid reused by a new
process, as in a restarted container) is a crash that can be resumed."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from orchestrator.store._records import RunRecord
from orchestrator.store._resume import process_token, still_running


def record(**settings: object) -> RunRecord:
    now = datetime.now(UTC)
    return RunRecord(
        run_id="r",
        topics_file="/t.yaml",
        plan_hash="a:b",
        run_dir="/out/r",
        status="running",
        started_at=now,
        updated_at=now,
        pid=os.getpid(),
        host=socket.gethostname(),
        settings=dict(settings),
    )


def test_a_running_run_of_this_very_process_isstill_running() -> None:
    token = process_token(os.getpid())
    assert token is not None, "Linux has /proc"
    assert still_running(record(process=token))


def test_a_pid_now_held_by_another_process_is_a_crash_not_a_live_run() -> None:
    """The pid is alive, but the process that holds it started at another time."""
    assert not still_running(record(process="12345"))


def test_without_a_saved_token_the_pid_alone_decides() -> None:
    assert still_running(record())
