"""``orchestrate schema``: JSON Schemas of the config files that accept what the loaders accept."""

from __future__ import annotations

import json
import keyword
import re
import string
import textwrap
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from pydantic import ValidationError

from orchestrator._errors import ConfigError
from orchestrator.cli._schema import schema_command
from orchestrator.config._models import AgentConfig, check_identifier
from orchestrator.config._schema import SCHEMA_FILES, schema_text, schemas, write_schemas
from orchestrator.config._topics import load_topics
from orchestrator.plan._plan import load_chain

from ..conftest import REPO

HEADER = "# yaml-language-server: $schema="

# Draft 2020-12 is what the files declare; draft-07 is what the YAML language server
# validates with. Every check below runs under both.
VALIDATORS = [jsonschema.Draft202012Validator, jsonschema.Draft7Validator]
Validator = type[jsonschema.Draft202012Validator] | type[jsonschema.Draft7Validator]


def schema_for(kind: str) -> dict[str, Any]:
    return schemas()[SCHEMA_FILES[kind]]


def as_json(data: Any) -> Any:
    """The JSON an editor validates: YAML keys become strings (``1:`` -> "1")."""
    return json.loads(json.dumps(data, default=str))


def schema_errors(kind: str, text: str, validator: Validator) -> list[str]:
    data = as_json(yaml.safe_load(textwrap.dedent(text)))
    return [e.message for e in validator(schema_for(kind)).iter_errors(data)]


def loads(tmp_path: Path, text: str) -> bool:
    path = tmp_path / "topics.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    try:
        load_topics(path)
    except ConfigError:
        return False
    return True


# --- topics: the schema and load_topics agree ---------------------------------------------

GOOD_TOPICS = {
    "list of strings": "- Tides\n- Volcanoes\n",
    "mappings with extra fields": """
        - topic: Tides
          audience: sailors
          depth_m: 40
          tags: [sea, moon]
          notes: {a: 1}
          nothing: null
          flag: true
        - Volcanoes
        """,
    "mapping form with chain": "chain: ../configs/chain.yaml\ntopics: [Tides]\n",
    "mapping form, chain null": "chain:\ntopics:\n  - Tides\n",
    "mapping form without chain": "topics:\n  - topic: Tides\n",
    "numbers are taken as written": "- 010\n- 1e3\n- 42\n- .inf\n- topic: 2024\n",
    "non-ASCII text": "- 東京の歴史\n- Über Brücken\n",
    "non-ASCII field names": "- topic: Tides\n  größe: 3\n  名前: x\n",
    "underscores, digits, soft keywords": "- {topic: a, _x: 1, a1: 2, match: 3, type: 4}\n",
    "padded text and duplicates": "- '  Tides  '\n- Tides\n- Tides\n",
}

BAD_TOPICS = {
    "empty file": "",
    "only a comment": "# nothing\n",
    "empty list": "[]\n",
    "text at the top": "just some text\n",
    "a number at the top": "42\n",
    "empty topics": "topics: []\n",
    "null topics": "topics:\n",
    "no topics key": "chain: chain.yaml\n",
    "unknown top-level key": "topics: [a]\nchains: chain.yaml\n",
    "misspelled topics": "topic: [a]\n",
    "topics is a mapping": "topics: {a: b}\n",
    "blank chain": "chain: '   '\ntopics: [a]\n",
    "empty chain": "chain: ''\ntopics: [a]\n",
    "chain is a number": "chain: 5\ntopics: [a]\n",
    "chain is a list": "chain: [a]\ntopics: [a]\n",
    "null entry": "- Tides\n-\n",
    "empty string": "- ''\n",
    "blank string": "- '   '\n",
    "boolean entry": "- true\n",
    "list entry": "- [a, b]\n",
    "mapping without topic": "- audience: sailors\n",
    "empty mapping": "- {}\n",
    "null topic": "- topic:\n",
    "boolean topic": "- topic: false\n",
    "list topic": "- topic: [a]\n",
    "blank topic": "- topic: ' '\n",
    "field starting with a digit": "- {topic: a, 2nd: x}\n",
    "field with a hyphen": "- {topic: a, my-field: x}\n",
    "field with a space": "- {topic: a, 'my field': x}\n",
    "field with a dot": "- {topic: a, a.b: x}\n",
    "field that is a keyword": "- {topic: a, class: x}\n",
    "field that is None": "- {topic: a, None: x}\n",
    "field that is jinja's self": "- {topic: a, self: x}\n",
    "field that is jinja's none": "- {topic: a, none: x}\n",
    "field that is a boolean": "- {topic: a, true: x}\n",
    "field that is a number": "- {topic: a, 1: x}\n",
    "mapping form with a bad entry": "topics:\n  - Tides\n  - {topic: a, b-c: 1}\n",
}


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("text", GOOD_TOPICS.values(), ids=GOOD_TOPICS.keys())
def test_topics_files_that_load_validate(tmp_path: Path, text: str, validator: Validator) -> None:
    """Each good topics file loads with load_topics and passes the schema."""
    assert loads(tmp_path, text)
    assert schema_errors("topics", text, validator) == []


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("text", BAD_TOPICS.values(), ids=BAD_TOPICS.keys())
def test_topics_files_that_fail_to_load_fail_the_schema(
    tmp_path: Path, text: str, validator: Validator
) -> None:
    """Each bad topics file is rejected by load_topics and by the schema."""
    assert not loads(tmp_path, text)
    assert schema_errors("topics", text, validator) != []


def test_the_schema_reads_names_as_check_identifier_does() -> None:
    """Every one- and two-character ASCII name, and every keyword, is judged alike."""
    identifier = schema_for("topics")["$defs"]["Identifier"]
    names = [
        *keyword.kwlist,
        *keyword.softkwlist,
        "true",
        "false",
        "none",
        "self",
        "topic",
        *string.printable,
        *(a + b for a in string.printable for b in string.printable),
    ]
    for name in names:
        try:
            accepted = check_identifier(name) == name
        except ValueError:
            accepted = False
        assert jsonschema.Draft202012Validator(identifier).is_valid(name) == accepted, name


def test_the_schema_never_rejects_a_non_ascii_identifier() -> None:
    """Python's Unicode rule has no portable regex: the schema lets non-ASCII names through."""
    identifier = schema_for("topics")["$defs"]["Identifier"]
    for name in ["größe", "名前", "ǅungla", "élan_2", "x\U0001d7d8"]:
        assert name.isidentifier()
        assert jsonschema.Draft202012Validator(identifier).is_valid(name), name


@pytest.mark.parametrize(
    ("text", "as_editor_sees_it"),
    [
        ("- yes\n", ["yes"]),
        ("- 2024-05-01\n", ["2024-05-01"]),
        ("- {topic: a, null: x}\n", [{"topic": "a", "null": "x"}]),
    ],
)
def test_known_gaps_are_yaml_1_1_readings_the_schema_cannot_see(
    tmp_path: Path, text: str, as_editor_sees_it: Any
) -> None:
    """PyYAML (YAML 1.1) reads `yes` as a boolean, a date as a date and `null:` as None, which
    load_topics rejects; an editor (YAML 1.2) sees the strings the schema must allow."""
    assert not loads(tmp_path, text)
    assert jsonschema.Draft202012Validator(schema_for("topics")).is_valid(as_editor_sees_it)


# --- chain and agent files: the schemas reject what the models reject ------------------------

GOOD_CHAINS = {
    "short form": "stages: [research, write]\n",
    "everything": """
        stages:
          - research
          - name: draft
            agent: write
            base_url: http://localhost:11434/v1
            api_key_env: LOCAL_KEY
            overrides: {model: llama3, temperature: 0.1, max_tokens: 500}
        concurrency: 8
        defaults: {model: gpt-4o-mini, system: be brief}
        agents_dir: ../agents
        timeout: 30
        limits: {gpt-4o-mini: {rpm: 500, tpm: 200000}}
        limit_window: 0.5
        retry: {attempts: 3, backoff_base: 0.1, backoff_max: 5}
        retry_passes: 0
        simulated: {latency_mean: 0.5, time_scale: 0.01, rpm: 100, error_rate_429: 0.1}
        prices: {my-model: {input: 1, output: 2.5, cached_input: 0.5}}
        budget: {max_cost: 2.5}
        """,
}

BAD_CHAINS = {
    "unknown key": "stages: [research]\nconcurency: 3\n",
    "wrong type": "stages: [research]\nconcurrency: many\n",
    "concurrency 0": "stages: [research]\nconcurrency: 0\n",
    "no stages": "concurrency: 3\n",
    "empty stages": "stages: []\n",
    "stages is text": "stages: research\n",
    "a stage that is a number": "stages: [5]\n",
    "a stage named by a keyword": "stages: [class]\n",
    "a stage name with a hyphen": "stages: [fact-check]\n",
    "a long-form name with a digit first": "stages: [{name: 1st, agent: research}]\n",
    "a long-form stage without a name": "stages: [{agent: research}]\n",
    "unknown key in a stage": "stages: [{name: a, agnt: research}]\n",
    "temperature too high": "stages: [{name: a, overrides: {temperature: 3}}]\n",
    "unknown default": "stages: [a]\ndefaults: {modle: x}\n",
    "rpm 0": "stages: [a]\nlimits: {m: {rpm: 0}}\n",
    "price without output": "stages: [a]\nprices: {m: {input: 1}}\n",
    "retry attempts 0": "stages: [a]\nretry: {attempts: 0}\n",
    "negative budget": "stages: [a]\nbudget: {max_cost: -1}\n",
    "unknown simulated setting": "stages: [a]\nsimulated: {latency: 2}\n",
    "simulated time_scale 0": "stages: [a]\nsimulated: {time_scale: 0}\n",
    "simulated error rate above 1": "stages: [a]\nsimulated: {error_rate_500: 1.5}\n",
    "simulated is a list": "stages: [a]\nsimulated: [latency_mean]\n",
}

BAD_AGENTS = {
    "unknown key": "model: gpt-4o-mini\ntemprature: 0.2\n",
    "wrong type": "temperature: hot\n",
    "max_tokens 0": "max_tokens: 0\n",
    "empty model": "model: ''\n",
    "empty prompt": "prompt: ''\n",
    "a list": "- model: gpt-4o-mini\n",
    "prompt is a mapping": "prompt: {text: hi}\n",
}


def loads_chain(tmp_path: Path, text: str) -> bool:
    path = tmp_path / "chain.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    try:
        load_chain(path)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("text", GOOD_CHAINS.values(), ids=GOOD_CHAINS.keys())
def test_chain_files_that_load_validate(tmp_path: Path, text: str, validator: Validator) -> None:
    """A chain the loader accepts (short and long stages, every section) passes the schema."""
    assert loads_chain(tmp_path, text)
    assert schema_errors("chain", text, validator) == []


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("text", BAD_CHAINS.values(), ids=BAD_CHAINS.keys())
def test_broken_chain_files_fail_the_loader_and_the_schema(
    tmp_path: Path, text: str, validator: Validator
) -> None:
    """What ChainConfig (and SimSettings for `simulated:`) rejects, the schema rejects."""
    assert not loads_chain(tmp_path, text)
    assert schema_errors("chain", text, validator) != []


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("text", BAD_AGENTS.values(), ids=BAD_AGENTS.keys())
def test_broken_agent_files_fail_the_model_and_the_schema(text: str, validator: Validator) -> None:
    """What AgentConfig rejects, the schema rejects."""
    with pytest.raises(ValidationError):
        AgentConfig.model_validate(yaml.safe_load(text))
    assert schema_errors("agent", text, validator) != []


def test_new_model_fields_appear_in_the_schemas_by_themselves() -> None:
    """The schemas are generated: every field of the models is a property."""
    from orchestrator.config._models import ChainConfig, StageSpec
    from orchestrator.config._sim_settings import SimSettings

    chain = schema_for("chain")
    assert set(chain["properties"]) == set(ChainConfig.model_fields)
    assert set(chain["$defs"]["StageSpec"]["properties"]) == set(StageSpec.model_fields)
    assert set(chain["$defs"]["SimSettings"]["properties"]) == set(SimSettings.model_fields)
    assert chain["properties"]["simulated"]["$ref"] == "#/$defs/SimSettings"
    assert set(schema_for("agent")["properties"]) == set(AgentConfig.model_fields)


# --- the repo's own files ----------------------------------------------------------------------

REPO_FILES = {
    "configs/chain.yaml": "chain",
    "configs/topics.example.yaml": "topics",
    **{f"agents/{p.name}": "agent" for p in sorted((REPO / "agents").glob("*.yaml"))},
}


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize(("name", "kind"), REPO_FILES.items(), ids=REPO_FILES.keys())
def test_the_repo_files_validate(name: str, kind: str, validator: Validator) -> None:
    """The default chain, example topics and agents pass their schemas."""
    text = (REPO / name).read_text(encoding="utf-8")
    assert schema_errors(kind, text, validator) == []


@pytest.mark.parametrize(("name", "kind"), REPO_FILES.items(), ids=REPO_FILES.keys())
def test_the_repo_files_name_their_schema_on_the_first_line(name: str, kind: str) -> None:
    """Editors find the schema from the header, a path relative to the file."""
    path = REPO / name
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"{HEADER}../schemas/{SCHEMA_FILES[kind]}"
    assert (path.parent / first.removeprefix(HEADER)).resolve().is_file()


def test_the_committed_schemas_are_up_to_date() -> None:
    """schemas/ in the repo is what the models generate now."""
    folder = REPO / "schemas"
    stale = [
        name
        for name, schema in schemas().items()
        if not (folder / name).is_file()
        or (folder / name).read_text(encoding="utf-8") != schema_text(schema)
    ]
    assert not stale, (
        f"schemas/ is out of date with the models: {', '.join(stale)}; "
        "regenerate it with `orchestrate schema` in the repo's root"
    )
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(SCHEMA_FILES.values())


# Keywords that draft-07 does not know; the YAML language server would ignore them.
_NEWER_KEYWORDS = {
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentSchemas",
    "dependentRequired",
    "minContains",
    "maxContains",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$anchor",
}


def keywords(node: Any) -> set[str]:
    """The keywords used anywhere in a schema (not the names of properties or $defs)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs") and isinstance(value, dict):
                for sub in value.values():
                    found |= keywords(sub)
            elif key not in ("enum", "const", "default", "examples"):
                found |= keywords(value)
    elif isinstance(node, list):
        for item in node:
            found |= keywords(item)
    return found


@pytest.mark.parametrize("name", SCHEMA_FILES.values())
def test_the_schemas_are_valid_and_use_only_what_draft_07_knows(name: str) -> None:
    """Draft 2020-12 declared, no $id, and nothing the language server's draft-07 ignores."""
    schema = schemas()[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    assert "$id" not in schema
    assert not keywords(schema) & _NEWER_KEYWORDS
    assert "``" not in json.dumps(schema)


# --- writing the files -------------------------------------------------------------------------


def test_write_schemas_creates_the_folder_and_writes_sorted_json(tmp_path: Path) -> None:
    """Three files, pretty JSON with sorted keys and a final newline; nothing else left."""
    folder = tmp_path / "a" / "b"
    written = write_schemas(folder)
    assert written == [folder / name for name in SCHEMA_FILES.values()]
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        data = json.loads(text)
        assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert sorted(p.name for p in folder.iterdir()) == sorted(SCHEMA_FILES.values())


def test_write_schemas_replaces_old_files(tmp_path: Path) -> None:
    """Running it again overwrites stale schemas in place."""
    (tmp_path / "chain.schema.json").write_text("{}", encoding="utf-8")
    write_schemas(tmp_path)
    assert json.loads((tmp_path / "chain.schema.json").read_text())["title"]


def test_a_failed_write_leaves_no_temporary_and_keeps_the_rest_whole(tmp_path: Path) -> None:
    """A file that cannot be replaced is a ConfigError; no half-written or temp file stays."""
    (tmp_path / "chain.schema.json").mkdir()
    with pytest.raises(ConfigError, match="chain.schema.json"):
        write_schemas(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.schema.json", "chain.schema.json"]
    json.loads((tmp_path / "agent.schema.json").read_text())


# --- the command -------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(schema_command, list(args))


def test_schema_writes_the_files_and_says_how_to_use_them(tmp_path: Path) -> None:
    """Each path written on its own line, then the header line to put in a YAML file."""
    folder = tmp_path / "out"
    result = invoke(str(folder))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [str(folder / name) for name in SCHEMA_FILES.values()]
    assert len(lines) == 4 and HEADER in lines[3]
    for name, schema in schemas().items():
        assert (folder / name).read_text(encoding="utf-8") == schema_text(schema)


def test_schema_writes_into_schemas_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DIR defaults to ./schemas; the hint is the header configs/chain.yaml would carry."""
    monkeypatch.chdir(tmp_path)
    result = invoke()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "schemas" / "topics.schema.json").is_file()
    assert f"{HEADER}../schemas/chain.schema.json" in result.stdout


@pytest.mark.parametrize("kind", SCHEMA_FILES)
def test_schema_print_writes_one_schema_to_stdout_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """--print KIND: that schema's JSON, exactly as the file would hold it."""
    monkeypatch.chdir(tmp_path)
    result = invoke("--print", kind)
    assert result.exit_code == 0, result.output
    assert result.stdout == schema_text(schema_for(kind))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["file"], "a file is in the way"),
        (["file/sub"], "cannot create the folder"),
        (["out", "--print", "chain"], "not both"),
    ],
    ids=["DIR is a file", "DIR is inside a file", "DIR and --print"],
)
def test_schema_errors_exit_2_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """Usage errors print `error: ...` on stderr, write nothing and exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_schema_rejects_an_unknown_kind() -> None:
    """--print takes agent, chain or topics (click's own usage error, exit 2)."""
    result = invoke("--print", "chains")
    assert result.exit_code == 2
    assert "agent" in result.stderr and "topics" in result.stderr


def test_schema_help_has_examples_and_the_header() -> None:
    """--help shows the header line and an Examples block, unwrapped."""
    result = invoke("--help")
    assert result.exit_code == 0
    assert "\n  Examples:\n    orchestrate schema\n" in result.stdout
    assert re.search(r"^ +# yaml-language-server: \$schema=\S+$", result.stdout, re.M)


def test_schema_works_as_a_subcommand_of_a_group() -> None:
    """Registered with `main.add_command(schema_command)`, it is `orchestrate schema`."""

    @click.group()
    def main() -> None:
        pass

    main.add_command(schema_command)
    result = CliRunner().invoke(main, ["schema", "--print", "topics"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "orchestrate topics file"
