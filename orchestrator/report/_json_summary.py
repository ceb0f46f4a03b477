"""The one JSON object ``--json`` prints on stdout when a run ends: what a script needs to
act on the run, small at any size (per-topic detail stays in ``run.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..store._resume import RESUMABLE
from ._run_json import RunManifest
from ._summary import resume_command

MAX_FAILURES = 50  # listed in the summary; run.json and failed.yaml hold them all


def run_summary(manifest: RunManifest, exit_code: int) -> dict[str, Any]:
    """The run's status, totals, verdict and failures, and where to find the rest."""
    failures = [
        {"topic": r.topic, "status": r.status, "stage": r.failed_stage, "error": r.error}
        for r in manifest.topics
        if r.status in ("failed", "skipped")
    ]
    resumable = manifest.status in RESUMABLE
    return {
        "schema_version": manifest.schema_version,
        "run_id": manifest.run_id,
        "status": manifest.status,
        "exit_code": exit_code,
        "stop_reason": manifest.stop_reason,
        "output_dir": manifest.output_dir,
        "manifest": str(Path(manifest.output_dir) / "run.json"),
        "mode": manifest.mode,
        "concurrency": manifest.concurrency,
        "provider": manifest.provider,
        "endpoint": manifest.endpoint,
        "wall_time_s": manifest.wall_time_s,
        "totals": manifest.totals.model_dump(mode="json"),
        "parallelism": (
            manifest.parallelism.model_dump(mode="json") if manifest.parallelism else None
        ),
        "failures": failures[:MAX_FAILURES],
        "failures_not_listed": max(0, len(failures) - MAX_FAILURES),
        "resume_command": resume_command(manifest) if resumable else None,
    }


def error_summary(
    exit_code: int, status: str, message: str, saved: str, error: ConfigError | None = None
) -> dict[str, Any]:
    """What a run that could not start (or ended without a manifest) says in JSON."""
    detail: dict[str, Any] = {"message": message}
    if error is not None:
        detail.update(file=error.file, line=error.line, field=error.field, hint=error.hint)
    return {"status": status, "exit_code": exit_code, "error": detail, "saved": saved}
