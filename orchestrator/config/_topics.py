"""The topics file: a list of topics, or ``{chain: PATH, topics: [...]}``.

A topic is a string, or a mapping with ``topic:`` plus extra template variables. Topics are
checked by hand rather than by pydantic: a file may hold 100k of them, and each error should
name the exact entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._models import check_identifier
from ._slug import unique_slugs
from ._yaml import YamlDocument, format_loc, load_yaml

_FILE_KEYS = ("chain", "topics")


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic to run the chain on."""

    index: int
    text: str
    slug: str
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicsFile:
    """A loaded topics file."""

    path: Path
    doc: YamlDocument
    topics: tuple[Topic, ...]
    chain: Path | None  # the `chain:` it names, resolved against the file's folder


def load_topics(path: Path, *, limit: int | None = None) -> TopicsFile:
    """Load and check a topics file; errors are ConfigErrors naming the entry and line."""
    doc = load_yaml(path, what="topics file")
    data: Any = doc.data
    chain: Path | None = None
    prefix: tuple[str | int, ...] = ()
    hint = "a topics file is a list of topics, or a mapping with `topics:` (and optional `chain:`)"
    if isinstance(data, dict):
        for key in data:
            if key not in _FILE_KEYS:
                close = difflib.get_close_matches(str(key), _FILE_KEYS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "allowed keys: chain, topics"
                raise doc.error(f"unknown field {key!r}", (key,), hint=hint)
        if "topics" not in data:
            raise doc.error("no `topics:` list", hint=hint)
        if data.get("chain") is not None:
            if not isinstance(data["chain"], str) or not data["chain"].strip():
                raise doc.error("must be a path to a chain file", ("chain",))
            chain = (path.parent / data["chain"]).resolve()
        data, prefix = data["topics"], ("topics",)
    if data is None or data == []:
        raise doc.error("there are no topics", prefix, hint="add at least one topic")
    if not isinstance(data, list):
        raise doc.error(f"expected a list of topics, got {type(data).__name__}", prefix, hint=hint)
    if limit is not None:
        data = data[:limit]

    texts: list[str] = []
    extras: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        loc: tuple[str | int, ...] = (*prefix, i)
        if isinstance(item, dict):
            if "topic" not in item:
                raise doc.error(
                    "a topic mapping needs a `topic:` key",
                    loc,
                    hint="e.g. `- topic: Tides`",
                    field=topic_field(loc),
                )
            text = _topic_text(doc, item["topic"], (*loc, "topic"))
            for key in item:
                if key == "topic":
                    continue
                try:
                    check_identifier(str(key))
                except ValueError as exc:
                    raise doc.error(
                        str(exc), (*loc, str(key)), field=topic_field((*loc, key))
                    ) from None
            extras.append({str(k): v for k, v in item.items() if k != "topic"})
        else:
            text = _topic_text(doc, item, loc)
            extras.append({})
        texts.append(text)

    slugs = unique_slugs(texts)
    topics = tuple(
        Topic(index=i, text=texts[i], slug=slugs[i], vars=extras[i]) for i in range(len(texts))
    )
    return TopicsFile(path=path, doc=doc, topics=topics, chain=chain)


def _topic_text(doc: YamlDocument, value: Any, loc: tuple[str | int, ...]) -> str:
    if value is None:
        raise doc.error("this entry is empty", loc, field=topic_field(loc), hint="write a topic")
    if isinstance(value, bool):
        raise doc.error(
            f"YAML reads this topic as the boolean {value}",
            loc,
            field=topic_field(loc),
            hint='quote it, e.g. - "yes"',
        )
    if isinstance(value, int | float):
        # YAML turns `- 010` into 8 and `- 1e3` into 1000.0: take the text as written.
        return doc.source_text(loc) or str(value)
    if not isinstance(value, str):
        raise doc.error(
            f"a topic must be text, got {type(value).__name__}",
            loc,
            hint="write the topic as a string, or as a mapping with `topic:` plus extra fields",
            field=topic_field(loc),
        )
    text = str(value).strip()
    if not text:
        raise doc.error("a topic is empty", loc, field=topic_field(loc))
    return text


def topic_field(loc: tuple[str | int, ...]) -> str:
    """``(3,)`` or ``("topics", 3)`` -> ``"topics[3]"``: the same name for both file forms."""
    parts = loc[1:] if loc and loc[0] == "topics" else loc
    return format_loc(("topics", *parts)) or "topics"


def topic_location(topics_file: TopicsFile, index: int) -> tuple[str | int, ...]:
    """The YAML location of topic ``index``, for error messages."""
    prefix: tuple[str | int, ...] = ("topics",) if isinstance(topics_file.doc.data, dict) else ()
    return (*prefix, index)
