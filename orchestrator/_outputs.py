"""The article files of a run, written as each stage and topic finishes.

``stages/<slug>/<stage>.md`` as soon as a stage finishes (finished work is never lost),
``<slug>.md`` — the final stage's text with a small front-matter header — when the chain
succeeds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ._events import ChainFinished, Event, RunStarted, StageFinished
from ._files import atomic_write_text


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
            i = event.topic.index
            self._tokens[i] = self._tokens.get(i, 0) + event.prompt_tokens + event.completion_tokens
            self._models.setdefault(i, {})[event.stage] = event.model
            path = self.run_dir / "stages" / event.topic.slug / f"{event.stage}.md"
            atomic_write_text(path, event.output.rstrip() + "\n")
        elif isinstance(event, ChainFinished):
            i = event.topic.index
            if event.status == "succeeded":
                final = event.outputs[self._stages[-1]]
                header = {
                    "topic": event.topic.text,
                    "run_id": self._run_id,
                    "stages": self._stages,
                    "models": self._models.get(i, {}),
                    "tokens": self._tokens.get(i, 0),
                }
                front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
                text = f"---\n{front}---\n\n{final.strip()}\n"
                atomic_write_text(self.run_dir / f"{event.topic.slug}.md", text)
            self._tokens.pop(i, None)
            self._models.pop(i, None)
