"""``failed.yaml``: the topics a run did not finish, as a topics file you can run again.

Written when the run ends, only if something is left: topics that still failed after the
retry passes, and topics that never ran (a stopped or interrupted run). A resumed run that
leaves nothing removes the one its earlier session wrote. It names the chain
the run used, so ``orchestrate run <run>/failed.yaml`` retries with the same setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .._errors import OutputError
from .._files import atomic_write_text
from ..config._topics import Topic
from ..engine._events import ChainFinished, Event, RunFinished, TopicRestored


class FailedTopicsWriter:
    """An observer that writes ``path`` at the end of the run, if any topic is unfinished."""

    def __init__(self, path: Path, topics: tuple[Topic, ...], *, chain_file: Path) -> None:
        self.path = path
        self._topics = topics
        self._chain = chain_file.resolve()
        self._succeeded: set[int] = set()

    async def on_event(self, event: Event) -> None:
        if isinstance(event, TopicRestored):
            self._succeeded.add(event.topic.index)
        elif isinstance(event, ChainFinished):
            if event.status == "succeeded":
                self._succeeded.add(event.topic.index)
            else:
                self._succeeded.discard(event.topic.index)
        elif isinstance(event, RunFinished):
            left = [t for t in self._topics if t.index not in self._succeeded]
            if left:
                entries = [_entry(t) for t in left]
                document = {"chain": str(self._chain), "topics": entries}
                header = (
                    f"# {len(left)} topic(s) this run did not finish. Run them again with:\n"
                    f"#   orchestrate run {self.path}\n"
                )
                text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
                atomic_write_text(self.path, header + text)
            else:
                try:
                    self.path.unlink(missing_ok=True)
                except OSError as exc:
                    raise OutputError(self.path, exc.strerror or str(exc)) from exc


def _entry(topic: Topic) -> str | dict[str, Any]:
    """The topic as the user wrote it: a string, or a mapping with its extra fields."""
    if not topic.vars:
        return topic.text
    return {"topic": topic.text, **topic.vars}
