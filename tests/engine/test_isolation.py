"""A reporting observer that fails is switched off with one warning and counted in run.json;
the run goes on. Only saving finished work (the store, the article files) may stop a run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import orchestrator
from orchestrator import Event, RunManifest, StageFinished
from orchestrator.engine._isolate import Faults, Isolated
from orchestrator.report._summary import print_summary
from orchestrator.session._setup import prepare
from orchestrator.store._store import Store

TOPICS = "configs/topics.example.yaml"
FAST = {"time_scale": 0.01}


class BreaksAfter:
    """A reporting observer with a bug: raises on its ``n``-th StageFinished."""

    def __init__(self, n: int, error: Exception) -> None:
        self.n, self.error, self.seen, self.after = n, error, 0, 0

    async def on_event(self, event: Event) -> None:
        if self.seen >= self.n:
            self.after += 1  # must never happen: it was switched off
        if isinstance(event, StageFinished):
            self.seen += 1
            if self.seen == self.n:
                raise self.error


async def test_a_failing_observer_is_switched_off_and_the_run_finishes(project: Path) -> None:
    broken = BreaksAfter(3, ValueError("Amount must be a number"))
    manifest = await orchestrator.run(TOPICS, sim=FAST, observers=[broken], progress=False)
    assert (manifest.status, manifest.totals.succeeded) == ("finished", 10)
    assert broken.after == 0, "switched off after its first failure"
    assert manifest.disabled_observers is not None
    [fault] = manifest.disabled_observers
    assert (fault.observer, fault.event) == ("BreaksAfter", "StageFinished")
    assert "Amount must be a number" in fault.error
    on_disk = RunManifest.model_validate_json(Path(manifest.output_dir, "run.json").read_text())
    assert on_disk.disabled_observers == manifest.disabled_observers

    console = Console(file=io.StringIO(), width=120)
    print_summary(manifest, console=console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "switched off" in text and "BreaksAfter" in text


async def test_a_run_without_faults_says_null(project: Path) -> None:
    manifest = await orchestrator.run(TOPICS, sim=FAST, progress=False, limit=2)
    assert manifest.disabled_observers is None


@pytest.mark.parametrize("blocked", ["events.jsonl", "trace.json", "report.html", "run.json"])
async def test_a_report_file_that_cannot_be_written_costs_no_topic(
    project: Path, blocked: str
) -> None:
    """A directory where the file should go: a real write failure on a real disk."""
    setup = prepare(TOPICS, sim=FAST)
    out = project / "outputs"
    run_dir = out / "r1"
    (run_dir / blocked).mkdir(parents=True)
    async with Store.open(out / "state.db") as store:
        manifest = await setup.execute("r1", run_dir, store=store)
    assert (manifest.status, manifest.totals.succeeded) == ("finished", 10)
    assert len(list(run_dir.glob("*.md"))) == 10, "every article is on disk"
    assert manifest.disabled_observers, manifest
    assert any(blocked in f.error for f in manifest.disabled_observers)
    if blocked != "run.json":
        on_disk = RunManifest.model_validate_json((run_dir / "run.json").read_text())
        assert on_disk.disabled_observers == manifest.disabled_observers


async def test_failed_yaml_that_cannot_be_written_is_reported_not_raised(project: Path) -> None:
    setup = prepare(TOPICS, sim={**FAST, "error_rate_500": 1.0}, retry_passes=0)
    out = project / "outputs"
    run_dir = out / "r1"
    (run_dir / "failed.yaml").mkdir(parents=True)
    async with Store.open(out / "state.db") as store:
        manifest = await setup.execute("r1", run_dir, store=store)
    assert manifest.status == "finished" and manifest.totals.failed == 10
    assert manifest.disabled_observers is not None
    assert [f.observer for f in manifest.disabled_observers] == ["failed.yaml"]


async def test_an_observer_that_cannot_save_still_stops_the_run(project: Path) -> None:
    """OutputError and StoreError are how a saving observer says it cannot go on."""
    from orchestrator import OutputError

    broken = BreaksAfter(2, OutputError("elsewhere/x.md", "No space left on device"))
    with pytest.raises(OutputError):
        await orchestrator.run(TOPICS, sim=FAST, observers=[broken], progress=False)


async def test_isolated_passes_events_through_until_it_fails() -> None:
    seen: list[str] = []

    class Picky:
        async def on_event(self, event: Event) -> None:
            seen.append(type(event).__name__)
            if len(seen) == 2:
                raise OSError(28, "No space left on device")

    faults = Faults()
    guard = Isolated(Picky(), "picky", faults)
    finished = orchestrator.RunFinished(0.0, "finished")
    for _ in range(4):
        await guard.on_event(finished)
    assert seen == ["RunFinished", "RunFinished"]
    assert guard.disabled
    assert [f.observer for f in faults.items] == ["picky"]
    assert "No space left" in faults.items[0].error
