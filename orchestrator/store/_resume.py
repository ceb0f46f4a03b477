"""Picking up a run where it stopped: which run, whether it still matches, what it finished.

A run can be resumed when it did not finish (interrupted, stopped, failed to save, or
crashed: ``running`` in the store while its process is gone) and its plan — the topics and
the chain with its agents — is byte for byte the one it started with. It keeps its id and
folder; topics it finished are restored as they were, stages it finished are not called again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..plan._plan import Plan
from ._records import RunRecord, StageResult
from ._store import Store

RESUMABLE = ("running", "interrupted", "stopped", "failed")


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def topics_hash(plan: Plan) -> str:
    """The topics as they will run (``--limit`` applied), with their extra fields."""
    return _digest([[t.index, t.text, dict(t.vars)] for t in plan.topics])


def chain_hash(plan: Plan) -> str:
    """The chain file and every agent file it uses, as they are on disk."""
    files = [plan.chain_file, *sorted({stage.agent_file for stage in plan.stages})]
    return _digest({str(f.name): f.read_text(encoding="utf-8") for f in files})


def plan_hash(plan: Plan) -> str:
    return f"{topics_hash(plan)}:{chain_hash(plan)}"


@dataclass
class ResumeState:
    """What a resumed run starts from."""

    run: RunRecord
    topics: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    stages: dict[int, dict[str, tuple[StageResult, dict[str, Any]]]] = field(default_factory=dict)

    @property
    def finished(self) -> dict[int, dict[str, Any]]:
        """Topics that succeeded in an earlier session: their manifest records."""
        return {i: record for i, (status, record) in self.topics.items() if status == "succeeded"}

    def outputs(self, topic: int) -> dict[str, str]:
        """What topic ``topic``'s finished stages answered, by stage name."""
        return {name: result.output for name, (result, _) in self.stages.get(topic, {}).items()}

    @property
    def session(self) -> int:
        return int(self.run.settings.get("session", 1)) + 1

    @property
    def earlier_wall_s(self) -> float:
        """The earlier sessions' running time: each session started at ``session_started``
        and its last commit (a finished stage, or the run's end) bumped ``updated_at``."""
        settings = self.run.settings
        started = datetime.fromisoformat(settings.get("session_started", _iso(self.run.started_at)))
        last = max(0.0, (self.run.updated_at - started).total_seconds())
        return float(settings.get("earlier_wall_s", 0.0)) + last

    @property
    def spent(self) -> float:
        """USD the earlier sessions spent (for the budget)."""
        costs = (
            record.get("cost")
            for by_stage in self.stages.values()
            for _, record in by_stage.values()
        )
        return sum(c for c in costs if isinstance(c, int | float))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def find_resumable(store: Store, topics_file: Path) -> RunRecord | None:
    """The newest run of ``topics_file`` that did not finish, if any."""
    for record in store.runs(topics_file=str(topics_file.resolve())):
        if record.status in RESUMABLE:
            return record
    return None


def process_token(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), to tell a live run
    from a new process that got its pid (a restarted container is pid 1 again); None where
    there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; counted after the ")" that ends the command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def still_running(record: RunRecord) -> bool:
    if not record.alive:
        return False
    saved, now = record.settings.get("process"), process_token(record.pid)
    return saved is None or now is None or saved == now


def load_state(
    store: Store, record: RunRecord, plan: Plan, settings: Mapping[str, Any]
) -> ResumeState:
    """Check that ``record`` can be resumed with ``plan`` and the session's ``settings``
    (same provider and endpoint), and load what it finished."""
    what = f"run {record.run_id}"
    if still_running(record):
        raise ConfigError(
            f"{what} is still running (process {record.pid})",
            hint="wait for it to finish, or stop it with Ctrl-C first",
        )
    if record.status not in RESUMABLE:
        failed = Path(record.run_dir) / "failed.yaml"
        raise ConfigError(
            f"{what} already finished; there is nothing to resume",
            hint=f"run its unfinished topics with: orchestrate run {failed}",
        )
    if not Path(record.run_dir).is_dir():
        raise ConfigError(
            f"{what}'s folder {record.run_dir} is gone",
            hint="start a new run; finished stages are still reused from the store",
        )
    old_topics, _, old_chain = record.plan_hash.partition(":")
    changed = [
        label
        for label, old, new in (
            (f"the topics ({record.topics_file})", old_topics, topics_hash(plan)),
            ("the chain or its agent files", old_chain, chain_hash(plan)),
        )
        if old != new
    ]
    for key in ("provider", "endpoint"):
        then, now = record.settings.get(key), settings.get(key)
        if then is not None and then != now:
            raise ConfigError(
                f"{what} ran with {key} {then!r}; this session would use {now!r}",
                field=f"--{key}" if key == "provider" else "OPENAI_BASE_URL",
                hint="resume it with the provider it started with, so that one run's answers "
                "all come from one place; or start a new run",
            )
    if changed:
        raise ConfigError(
            f"{what} cannot be resumed: {' and '.join(changed)} changed since it started",
            file=record.topics_file,
            hint="start a new run instead (without --resume): stages whose requests did not "
            "change are reused from the store, so only the changes are paid for",
        )
    return ResumeState(
        run=record, topics=store.run_topics(record.run_id), stages=store.run_stages(record.run_id)
    )


def session_settings(
    settings: Mapping[str, Any], state: ResumeState | None, now: datetime
) -> dict[str, Any]:
    """The settings a session records: the run's flags plus where this session starts."""
    return {
        **settings,
        "process": process_token(os.getpid()),
        "session": state.session if state else 1,
        "session_started": _iso(now),
        "earlier_wall_s": state.earlier_wall_s if state else 0.0,
    }
