"""Which stages need no call: finished earlier in this very run, or asked before verbatim.

A stage's request is keyed by a fingerprint: a hash of who answers it (the endpoint's
identity, see ``Endpoint``), the model, the messages and every sampling parameter. Two
sources can spare a call:

- **resumed**: the run being resumed finished this stage before it stopped. It is restored
  exactly as that run got it — it *is* this run's result — and ``--fresh`` does not touch it.
- **reused**: any run in the store got an answer to the identical request. Served from the
  store instead of the provider (``--fresh`` turns this off), so editing one prompt re-runs
  only the stages whose requests changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..provider._client import ChatRequest
from ._records import StageResult


def fingerprint(endpoint: str, request: ChatRequest) -> str:
    """The hex SHA-256 of everything that shapes the answer, as canonical JSON: every field
    of the request, so a sampling parameter added to ``ChatRequest`` joins the key by itself."""
    key = {"endpoint": endpoint, **dataclasses.asdict(request)}
    text = json.dumps(key, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Recalled:
    """A stage answered without a call: the answer, where it came from, and (resumed) the
    stage's record as the earlier session wrote it."""

    result: StageResult
    source: Literal["resumed", "reused"]
    record: Mapping[str, Any] | None = None


class Recall(Protocol):
    """What the engine asks before calling: is this stage's answer already known?"""

    def recall(self, topic: int, stage: str, fingerprint: str) -> Recalled | None: ...


class Lookup(Protocol):
    def lookup(self, fingerprint: str) -> StageResult | None: ...


class StoreRecall:
    """Resumed stages first (matched on the fingerprint too, so a stage whose request would
    now differ is called again), then — unless ``fresh`` — any stored identical request."""

    def __init__(
        self,
        store: Lookup,
        *,
        resumed: Mapping[int, Mapping[str, tuple[StageResult, Mapping[str, Any]]]] | None = None,
        fresh: bool = False,
    ) -> None:
        self.store = store
        self.resumed = resumed or {}
        self.fresh = fresh

    def recall(self, topic: int, stage: str, fingerprint: str) -> Recalled | None:
        earlier = self.resumed.get(topic, {}).get(stage)
        if earlier is not None and earlier[0].fingerprint == fingerprint:
            return Recalled(earlier[0], "resumed", earlier[1])
        if self.fresh:
            return None
        found = self.store.lookup(fingerprint)
        return Recalled(found, "reused") if found is not None else None
