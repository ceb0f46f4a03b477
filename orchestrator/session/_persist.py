"""The observer that commits a run to the state store as it goes.

A finished stage is committed before the engine goes on to the chain's next stage (the
engine awaits every observer), a finished chain's record when the chain ends, the run's
status when it ends. It reads the records from the manifest observer, which sees each event
first, so the store holds exactly what ``run.json`` says.
"""

from __future__ import annotations

from ..engine._events import ChainFinished, Event, RunFinished, StageFinished
from ..report._manifest import ManifestObserver
from ..store._records import StageResult
from ..store._store import Store


class StoreObserver:
    """Writes one run's progress into ``store``."""

    def __init__(self, store: Store, run_id: str, manifest: ManifestObserver) -> None:
        self.store = store
        self.run_id = run_id
        self.manifest = manifest

    async def on_event(self, event: Event) -> None:
        if isinstance(event, StageFinished):
            if event.source == "resumed":
                return  # already in the store, as this run's own
            i = event.topic.index
            result = StageResult(
                fingerprint=event.fingerprint,
                model=event.model,
                output=event.output,
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                cached_tokens=event.cached_tokens,
                cost=event.cost,
            )
            await self.store.save_stage(
                self.run_id,
                i,
                event.stage,
                result,
                self.manifest.stage_record(i, event.stage),
                reused=event.source == "reused",
            )
        elif isinstance(event, ChainFinished):
            i = event.topic.index
            await self.store.save_topic(self.run_id, i, event.status, self.manifest.topic_record(i))
        elif isinstance(event, RunFinished):
            await self.store.set_status(self.run_id, event.status)
