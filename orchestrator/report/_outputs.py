"""The article files of a run, written as each stage and topic finishes.

``stages/<slug>/<stage>.md`` as soon as a stage finishes (finished work is never lost),
``<slug>.md`` — the final stage's text with a small front-matter header — when the chain
succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from .._files import atomic_write_text
from ..config._topics import Topic
from ..engine._events import ChainFinished, Event, RunStarted, StageFinished, TopicRestored


class OutputWriter:
    """An observer that writes a run's Markdown files into ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._run_id = ""
        self._stages: list[str] = []
        self._tokens: dict[int, int] = {}
        self._models: dict[int, dict[str, str]] = {}

    async def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run_id, self._stages = event.run_id, list(event.stages)
        elif isinstance(event, StageFinished):
            tokens = event.prompt_tokens + event.completion_tokens
            self._stage(event.topic, event.stage, event.model, event.output, tokens)
        elif isinstance(event, TopicRestored):
            # Finished in an earlier session: written again, in case that session was
            # killed between committing the topic and writing its files.
            for record in event.record.get("stages", []):
                name = record.get("name")
                if record.get("status") == "succeeded" and name in event.outputs:
                    tokens = (record.get("prompt_tokens") or 0) + (
                        record.get("completion_tokens") or 0
                    )
                    self._stage(event.topic, name, record.get("model"), event.outputs[name], tokens)
            self._finish(event.topic, event.outputs)
        elif isinstance(event, ChainFinished):
            if event.status == "succeeded":
                self._finish(event.topic, event.outputs)
            self._tokens.pop(event.topic.index, None)
            self._models.pop(event.topic.index, None)

    def _stage(self, topic: Topic, stage: str, model: str | None, output: str, tokens: int) -> None:
        i = topic.index
        self._tokens[i] = self._tokens.get(i, 0) + tokens
        self._models.setdefault(i, {})[stage] = model or ""
        path = self.run_dir / "stages" / topic.slug / f"{stage}.md"
        atomic_write_text(path, output.rstrip() + "\n")

    def _finish(self, topic: Topic, outputs: Mapping[str, str]) -> None:
        """Write the article: the last stage's output under a front-matter header."""
        i = topic.index
        final = outputs.get(self._stages[-1])
        if final is not None:
            header = {
                "topic": topic.text,
                "run_id": self._run_id,
                "stages": self._stages,
                "models": self._models.get(i, {}),
                "tokens": self._tokens.get(i, 0),
            }
            front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
            text = f"---\n{front}---\n\n{final.strip()}\n"
            atomic_write_text(self.run_dir / f"{topic.slug}.md", text)
        self._tokens.pop(i, None)
        self._models.pop(i, None)
