"""JSON Schemas of the agent, chain and topics files, for editors (the YAML language server).

The agent and chain schemas are generated from the pydantic models in ``_models``, so a new
field appears in them by itself; three things pydantic cannot see are added afterwards: the
chain's ``simulated:`` section is a ``SimSettings`` (the model keeps it a plain dict and checks
it later), a stage may be written as just its name (a ``mode="before"`` validator), and stage
names must be identifiers (a field validator).

The topics file has no pydantic model: ``_topics`` checks it by hand, for speed and for
errors naming the exact entry. Its schema is written out here rather than through a model made
only to be turned into a schema: what matters (a list or a mapping at the top, a topic that
is text or a number, extra field names that are identifiers) is plain JSON Schema but would be
``json_schema_extra`` patches on a model, and such a model would be a second validator nobody
runs. ``tests/test_schema.py`` checks that the schema and ``load_topics`` agree.

The schemas declare draft 2020-12 (what pydantic emits) but use only keywords draft-07 knows
too, since that is the draft the YAML language server validates with. What a schema cannot
say, and the loaders still check: the sum of the simulated fault rates, stage names used
twice or called ``topic``, and values YAML 1.1 reads differently from YAML 1.2 (PyYAML takes
``- yes`` for a boolean and ``- 2024-05-01`` for a date, which ``load_topics`` rejects; an
editor sees strings). Numbers written as quoted strings pass pydantic's lax mode but not the
schemas.
"""

from __future__ import annotations

import json
import keyword
from pathlib import Path, PurePosixPath
from typing import Any

from .._errors import ConfigError, OutputError
from .._files import atomic_write_text
from ._models import _JINJA_RESERVED, AgentConfig, ChainConfig
from ._sim_settings import SimSettings

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# The kinds of file, in the order they are written and listed: kind -> file name.
SCHEMA_FILES = {
    "agent": "agent.schema.json",
    "chain": "chain.schema.json",
    "topics": "topics.schema.json",
}

# What `check_identifier` accepts. ASCII is matched exactly: a letter or underscore, then
# letters, digits and underscores. Any other character is let through, because Python's
# rule for non-ASCII letters (Unicode XID) has no portable regex: Python's `re` lacks \p{...}
# and JavaScript's \w is ASCII-only. So the classes below exclude the ASCII characters that
# are not allowed rather than list the ones that are. The end is `(?![\s\S])`, not `$`:
# Python's `$` also matches before a final newline.
_IDENTIFIER_PATTERN = (
    r"^[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f][^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*(?![\s\S])"
)
_NOT_NAMES = sorted({*keyword.kwlist, *_JINJA_RESERVED})


def _identifier(description: str) -> dict[str, Any]:
    """A string schema for a name that becomes a template variable."""
    return {
        "type": "string",
        "pattern": _IDENTIFIER_PATTERN,
        "not": {"enum": list(_NOT_NAMES)},
        "description": description,
    }


def schemas() -> dict[str, dict[str, Any]]:
    """The three schemas, by file name (``agent.schema.json``, ...), freshly generated."""
    built = {"agent": _agent_schema(), "chain": _chain_schema(), "topics": _topics_schema()}
    return {SCHEMA_FILES[kind]: schema for kind, schema in built.items()}


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as written to disk: indented JSON with sorted keys and a final newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_files() -> list[tuple[PurePosixPath, bytes]]:
    """The schemas as ``init`` writes them into a project: ``schemas/<name>``, so that the
    default files' ``$schema=../schemas/...`` headers find them."""
    return [
        (PurePosixPath("schemas", name), schema_text(schema).encode("utf-8"))
        for name, schema in schemas().items()
    ]


def write_schemas(folder: Path) -> list[Path]:
    """Write the three schemas into ``folder`` (created if missing), each atomically.

    A folder that cannot be created or written is the user's to fix: a ConfigError.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(
            f"cannot create the folder {folder}: a file is in the way",
            field="DIR",
            hint="choose another folder",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder {folder}: {exc.strerror or exc}",
            field="DIR",
            hint="choose a writable folder",
        ) from None
    written: list[Path] = []
    for name, schema in schemas().items():
        path = folder / name
        try:
            atomic_write_text(path, schema_text(schema))
        except OutputError as exc:
            raise ConfigError(str(exc), field="DIR", hint="choose a writable folder") from None
        written.append(path)
    return written


def _agent_schema() -> dict[str, Any]:
    schema = AgentConfig.model_json_schema(mode="validation")
    return _finish(schema, title="orchestrate agent file")


def _chain_schema() -> dict[str, Any]:
    schema = ChainConfig.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    props = schema["properties"]

    # `simulated:` is a dict to ChainConfig, checked against SimSettings when the plan loads.
    sim = SimSettings.model_json_schema(mode="validation")
    defs.update(sim.pop("$defs", {}))
    defs["SimSettings"] = sim
    props["simulated"] = {
        "$ref": "#/$defs/SimSettings",
        "description": props["simulated"].get("description", "settings of the simulated provider"),
    }

    # `- research` is short for `- {name: research}` (ChainConfig._short_form).
    stages = props["stages"]
    stages["items"] = {
        "anyOf": [
            _identifier("an agent name, short for {name: NAME}"),
            stages["items"],
        ]
    }
    # Inlined rather than a $ref: draft-07 readers ignore a $ref's sibling description.
    name = defs["StageSpec"]["properties"]["name"]
    name.update(_identifier(name.get("description", "the stage's name")))
    return _finish(schema, title="orchestrate chain file")


def _topics_schema() -> dict[str, Any]:
    """What ``_topics.load_topics`` accepts, written out (see the module's docstring)."""
    schema: dict[str, Any] = {
        "description": "A topics file: a list of topics, or a mapping with `topics:` and an "
        "optional `chain:`. A topic is text, or a mapping with `topic:` plus extra fields "
        "that the prompts see as template variables.",
        "anyOf": [
            {"$ref": "#/$defs/TopicList"},
            {
                "type": "object",
                "properties": {
                    "chain": {
                        "anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "null"}],
                        "description": "the chain file for these topics, relative to this "
                        "file (--chain overrides it)",
                    },
                    "topics": {"$ref": "#/$defs/TopicList"},
                },
                "required": ["topics"],
                "additionalProperties": False,
            },
        ],
        "$defs": {
            "TopicList": {
                "type": "array",
                "minItems": 1,
                "items": {"anyOf": [{"$ref": "#/$defs/TopicText"}, {"$ref": "#/$defs/Topic"}]},
                "description": "the topics, one chain each",
            },
            "TopicText": {
                "anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "number"}],
                "description": "a topic: any non-blank text (a number is taken as written)",
            },
            "Topic": {
                "type": "object",
                "properties": {"topic": {"$ref": "#/$defs/TopicText"}},
                "required": ["topic"],
                "propertyNames": {"$ref": "#/$defs/Identifier"},
                "additionalProperties": {
                    "description": "an extra template variable, e.g. {{ audience }}"
                },
                "description": "a topic with extra fields for the prompts, e.g. "
                "{topic: Tides, audience: sailors}",
            },
            "Identifier": _identifier(
                "an extra field's name: letters, digits and underscores, not starting with a "
                "digit, not a Python keyword nor true, false, none or self"
            ),
        },
    }
    return _finish(schema, title="orchestrate topics file")


def _finish(schema: dict[str, Any], *, title: str) -> dict[str, Any]:
    """Declare the draft and title, and turn the docstrings' ``code`` into Markdown's."""
    schema["$schema"] = DRAFT
    schema["title"] = title
    _markdown_quotes(schema)
    return schema


def _markdown_quotes(node: Any) -> None:
    """Descriptions come from docstrings; editors show them, so ``x`` reads better as `x`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = value.replace("``", "`")
            else:
                _markdown_quotes(value)
    elif isinstance(node, list):
        for item in node:
            _markdown_quotes(item)
