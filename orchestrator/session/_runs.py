"""The runs of one outputs root, newest first: what ``orchestrate runs`` lists.

The store's ``runs`` rows say which runs there are and how each ended; like ``resume``, the
listing trusts the store, not ``run.json``, for that. Each run's ``run.json`` adds its
totals. A run killed before it wrote one, or a damaged one, costs only its numbers: they are
counted from the store's topic rows where that is cheap, and are unknown (``None``) otherwise.

Reading is cheap by design: one query for the rows, then only the listed runs' files, and
the store's topic rows only for runs whose ``run.json`` cannot be trusted to be current.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .._errors import ConfigError
from ..report._run_json import Totals
from ..report._summary import resume_command_in
from ..store._records import RunRecord
from ..store._resume import RESUMABLE, ResumeState, still_running
from ..store._store import Store
from ._run import STORE_FILE

RUN_FILE = "run.json"
DEFAULT_OUT = Path("outputs")


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run as the listing shows it; ``None`` means unknown."""

    run_id: str
    status: str  # finished | stopped | interrupted | failed | running | crashed
    started_at: datetime  # aware, UTC
    topics: int | None  # topics in the run
    succeeded: int | None
    failed: int | None
    wall_time_s: float | None  # seconds of running, summed over its sessions
    cost: float | None  # USD
    resumable: bool
    resume_command: str | None  # the command that continues it, when the CLI can
    run_dir: str
    topics_file: str
    notes: tuple[str, ...] = ()  # why a number is unknown, or why resume is not as usual

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (``started_at`` in ISO 8601, UTC)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at.astimezone(UTC).isoformat(),
            "topics": self.topics,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "wall_time_s": self.wall_time_s,
            "cost": self.cost,
            "resumable": self.resumable,
            "resume_command": self.resume_command,
            "run_dir": self.run_dir,
            "topics_file": self.topics_file,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class RunListing:
    """The runs listed (newest first) and how many the store holds in all."""

    runs: tuple[RunSummary, ...]
    total: int


class _Manifest(BaseModel):
    """The parts of run.json the listing shows. The rest (per-topic records, the bulk of a
    big run's file) is left unvalidated, which keeps hundreds of runs quick to list."""

    run_id: str
    wall_time_s: float | None = None
    totals: Totals


def list_runs(
    out: str | Path = DEFAULT_OUT, *, limit: int | None = None, now: datetime | None = None
) -> RunListing:
    """The runs in the outputs root ``out``, newest first; the ``limit`` newest if given.

    Raises ConfigError when ``out`` holds no store (and creates none: a mistyped ``--out``
    must not leave a new empty store behind), StoreError when the store cannot be read.
    ``now`` (aware) is when a run still going is measured to.
    """
    out = Path(out)
    path = out / STORE_FILE
    if not path.is_file():
        raise ConfigError(
            f"no runs in {out} (no {STORE_FILE})",
            field="--out",
            hint="pass the --out the runs were made with, e.g. orchestrate runs --out results",
        )
    now = now or datetime.now(UTC)
    # Store.open checks the file with a real read and write, so a corrupt or newer store
    # is a StoreError here, with its hint, before anything is listed.
    store = Store.open(path)
    try:
        records = store.runs()
        shown = records if limit is None else records[:limit]
        runs = tuple(_summary(store, record, out, now) for record in shown)
    finally:
        store.close()
    return RunListing(runs=runs, total=len(records))


def _summary(store: Store, record: RunRecord, out: Path, now: datetime) -> RunSummary:
    status = record.status
    if status == "running":
        status = "running" if still_running(record) else "crashed"
    notes: list[str] = []
    run_dir = Path(record.run_dir)
    folder = run_dir if run_dir.is_dir() else out / record.run_id  # the root may have moved
    manifest, problem = _read_manifest(folder / RUN_FILE, record.run_id)
    if problem:
        notes.append(problem)

    topics = succeeded = failed = None
    cost = wall = None
    if manifest is not None:
        t = manifest.totals
        topics, succeeded, failed, cost = t.topics, t.succeeded, t.failed, t.cost
        wall = manifest.wall_time_s
    if manifest is None or status in ("running", "crashed"):
        # A run that has not ended rewrites run.json only every few seconds, and a run
        # that died may not have written one; the store has every topic that ended.
        ended = [s for s, _ in store.run_topics(record.run_id).values()]
        succeeded, failed = ended.count("succeeded"), ended.count("failed")
    if wall is None or status in ("running", "crashed"):
        # The sum resume makes of the sessions so far: each ran from its start to its last
        # commit; a run still going, to now.
        until = now if status == "running" else record.updated_at
        wall = ResumeState(run=replace(record, updated_at=until)).earlier_wall_s

    # As resume decides (load_state), short of re-reading the topics and chain files.
    resumable = record.status in RESUMABLE and status != "running"
    command = None
    if resumable and not run_dir.is_dir():
        resumable = False  # resume continues a run in its own folder
        notes.append(f"its folder {record.run_dir} is gone")
    elif resumable and record.settings.get("provider") == "custom":
        # `orchestrate resume` refuses these: only the program that ran it has the client.
        notes.append(f"made with a client passed in: resume({record.run_id!r}, client=...)")
    elif resumable:
        command = resume_command_in(record.run_id, out)
    return RunSummary(
        run_id=record.run_id,
        status=status,
        started_at=record.started_at,
        topics=topics,
        succeeded=succeeded,
        failed=failed,
        wall_time_s=round(wall, 6),
        cost=cost,
        resumable=resumable,
        resume_command=command,
        run_dir=record.run_dir,
        topics_file=record.topics_file,
        notes=tuple(notes),
    )


def _read_manifest(path: Path, run_id: str) -> tuple[_Manifest | None, str | None]:
    """The run's manifest, or None and what is wrong with the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"no {RUN_FILE}"
    except OSError as exc:
        return None, f"{RUN_FILE} unreadable: {exc.strerror or exc}"
    try:
        manifest = _Manifest.model_validate_json(data)
    except ValidationError:  # not JSON, or not a manifest
        return None, f"{RUN_FILE} is damaged"
    if manifest.run_id != run_id:
        return None, f"{RUN_FILE} is another run's ({manifest.run_id})"
    return manifest, None
