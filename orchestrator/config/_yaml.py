"""YAML loading that can say which line a value came from.

Loading is done by PyYAML's C loader when available (a topics file may hold 100k topics);
line numbers are only needed when something is wrong, so the document is composed into
nodes lazily, the first time an error asks where a field lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._errors import ConfigError

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Loc = Sequence[str | int]


@dataclass
class YamlDocument:
    """A parsed YAML file: its data, and a way to find the line of any field in it."""

    path: Path
    text: str
    data: Any
    _root: yaml.Node | None = field(default=None, repr=False)

    def _walk(self, loc: Loc) -> tuple[int | None, yaml.Node | None]:
        """Follow ``loc`` down the node tree: (line of the deepest key or item reached, the
        node at ``loc`` or None when the path stops early)."""
        if self._root is None:
            try:
                self._root = yaml.compose(self.text, Loader=_Loader)
            except yaml.YAMLError:
                return None, None
        node = self._root
        if node is None:
            return None, None
        line = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                        line, node = key_node.start_mark.line + 1, value_node
                        break
                else:
                    return line, None
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return line, None
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line, None
        return line, node

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the value at ``loc`` (keys and list indexes), or of its nearest
        parent that exists."""
        return self._walk(loc)[0]

    def line_within(self, loc: Loc, inner_line: int) -> int | None:
        """The file line of line ``inner_line`` (1-based) of the string value at ``loc``,
        e.g. of a template error inside a ``prompt: |`` block."""
        line, node = self._walk(loc)
        if not isinstance(node, yaml.ScalarNode):
            return line
        # A block scalar's text starts on the line after its `|` or `>` indicator.
        first = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
        return first + inner_line - 1

    def source_text(self, loc: Loc) -> str | None:
        """The scalar at ``loc`` exactly as written in the file (``010``, not 8)."""
        node = self._walk(loc)[1]
        return node.value if isinstance(node, yaml.ScalarNode) else None

    def error(
        self, message: str, loc: Loc = (), *, hint: str | None = None, field: str | None = None
    ) -> ConfigError:
        """A ConfigError pointing at ``loc`` in this file."""
        return ConfigError(
            message,
            file=self.path,
            line=self.line_of(loc) if loc else None,
            field=field if field is not None else format_loc(loc),
            hint=hint,
        )


def format_loc(loc: Loc) -> str | None:
    """``("stages", 1, "agent")`` -> ``"stages[1].agent"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def load_yaml(path: Path, *, what: str) -> YamlDocument:
    """Read and parse ``path``; a missing file or a syntax error is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", file=path, hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what}: {exc}", file=path) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and mark is not None:
            if context_mark.line != mark.line:  # e.g. an unclosed bracket noticed at the end
                problem += f" ({context} started on line {context_mark.line + 1})"
        raise ConfigError(
            f"YAML syntax error: {problem}",
            file=path,
            line=mark.line + 1 if mark is not None else None,
            hint="check indentation, colons and quoting around this line",
        ) from None
    return YamlDocument(path=path, text=text, data=data)
