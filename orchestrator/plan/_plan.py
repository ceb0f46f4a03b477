"""The plan: every config file loaded, checked and resolved into what the engine runs.

Everything a run could trip over in its configuration is found here, before the first call:
YAML syntax, types, unknown keys, missing agent files, template syntax, and templates that use
a variable no topic field or earlier stage provides.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .._errors import ConfigError
from ..config._defaults import default_chain_file
from ..config._models import AgentConfig, AgentSettings, ChainConfig, StageSpec
from ..config._sim_settings import SimSettings
from ..config._templates import (
    Template,
    TemplateSyntaxError,
    UndefinedError,
    compile_template,
    render,
)
from ..config._topics import Topic, TopicsFile, load_topics, topic_field, topic_location
from ..config._yaml import Loc, YamlDocument, format_loc, load_yaml

DEFAULT_CHAIN = Path("configs/chain.yaml")
M = TypeVar("M", bound=BaseModel)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


@dataclass(frozen=True, slots=True)
class StageEndpoint:
    """The endpoint a chain or stage names for its calls (``base_url``/``api_key_env``),
    and where it was written, for errors found when the key is looked up."""

    base_url: str | None
    api_key_env: str | None
    file: Path
    line: int | None
    field: str


@dataclass(frozen=True, slots=True)
class Stage:
    """One resolved stage: its agent's settings with the chain's overrides applied.
    ``endpoint`` is None when the stage's calls go to the run's provider."""

    name: str
    agent: str
    agent_file: Path
    model: str
    temperature: float | None
    max_tokens: int | None
    system: Template | None
    prompt: Template
    endpoint: StageEndpoint | None = None
    cut_off: str = "warn"  # or "error": see AgentSettings.cut_off

    def messages(self, context: Mapping[str, Any]) -> list[dict[str, str]]:
        """Render this stage's chat messages for one topic."""
        messages = []
        if self.system is not None:
            messages.append({"role": "system", "content": render(self.system, context)})
        messages.append({"role": "user", "content": render(self.prompt, context)})
        return messages


@dataclass(frozen=True)
class Plan:
    """What a run will do: the topics × the stages, and the settings around them."""

    topics_file: Path
    chain_file: Path
    chain: ChainConfig
    stages: tuple[Stage, ...]
    topics: tuple[Topic, ...]


def load_plan(
    topics_path: str | Path, *, chain: str | Path | None = None, limit: int | None = None
) -> Plan:
    """Load the topics file, find and load the chain and its agents, and check it all."""
    if limit is not None and limit < 1:
        raise ConfigError(f"must be at least 1, got {limit}", field="--limit")
    topics_file = load_topics(Path(topics_path), limit=limit)
    chain_path = find_chain(topics_file, chain)
    chain_doc, chain_cfg = load_chain(chain_path)
    stages = _resolve_stages(chain_doc, chain_cfg)
    _check_topic_fields(topics_file, stages)
    _check_templates(topics_file, stages, chain_doc)
    return Plan(
        topics_file=topics_file.path,
        chain_file=chain_path,
        chain=chain_cfg,
        stages=stages,
        topics=topics_file.topics,
    )


def load_chain(path: Path) -> tuple[YamlDocument, ChainConfig]:
    """Load and check a chain file (its ``simulated:`` section included)."""
    doc = load_yaml(path, what="chain file")
    config = _validate(doc, ChainConfig, doc.data)
    if config.simulated:
        _validate(doc, SimSettings, config.simulated, prefix=("simulated",))
    return doc, config


def find_chain(topics_file: TopicsFile | None, explicit: str | Path | None) -> Path:
    """``--chain`` > the topics file's ``chain:`` > ``./configs/chain.yaml`` > the default."""
    if explicit is not None:
        return Path(explicit)
    if topics_file is not None and topics_file.chain is not None:
        if not topics_file.chain.is_file():
            raise topics_file.doc.error(
                f"chain file not found: {topics_file.chain}",
                ("chain",),
                hint="the path is relative to the topics file",
            )
        return topics_file.chain
    if DEFAULT_CHAIN.is_file():
        return DEFAULT_CHAIN
    return default_chain_file()


def _validate(doc: YamlDocument, model: type[M], data: Any, prefix: Loc = ()) -> M:
    """Validate ``data`` against ``model``; the first problem becomes a ConfigError."""
    if data is None and not prefix:
        raise doc.error("the file is empty", hint=f"known fields: {', '.join(model.model_fields)}")
    if not isinstance(data, dict):
        raise doc.error(
            f"expected a mapping of settings, got {type(data).__name__}",
            prefix,
            hint=f"known fields: {', '.join(model.model_fields)}",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = (*prefix, *(p for p in err["loc"] if isinstance(p, int | str)))
        if err["type"] == "extra_forbidden":
            name = str(loc[-1])
            known = _fields_at(model, err["loc"][:-1])
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
            raise doc.error(f"unknown field {name!r}", loc, hint=hint) from None
        if err["type"] == "missing":
            raise doc.error("required field is missing", loc) from None
        msg = err["msg"].removeprefix("Value error, ")
        raise doc.error(f"{msg} (got {err.get('input')!r})", loc) from None


def _fields_at(model: type[BaseModel], loc: Iterable[Any]) -> list[str]:
    """The field names known at a nested location of ``model`` (best effort, for hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            break
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args, *(a for x in args for a in getattr(x, "__args__", ()))]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            break
        current = nested[0]
    return list(getattr(current, "model_fields", {}))


def _resolve_stages(chain_doc: YamlDocument, chain: ChainConfig) -> tuple[Stage, ...]:
    agents_dir = (chain_doc.path.parent / chain.agents_dir).resolve()
    if not agents_dir.is_dir():
        raise chain_doc.error(
            f"agents folder not found: {agents_dir}",
            ("agents_dir",) if "agents_dir" in chain_doc.data else ("stages",),
            field="agents_dir",
            hint="agents_dir is relative to the chain file (default: ../agents)",
        )
    stages: list[Stage] = []
    seen: set[str] = set()
    for i, spec in enumerate(chain.stages):
        loc: Loc = ("stages", i)
        if spec.name in seen:
            raise chain_doc.error(
                f"stage {spec.name!r} appears twice", loc, hint="give each stage its own `name:`"
            )
        if spec.name == "topic":
            raise chain_doc.error("a stage cannot be called 'topic'", loc, hint="rename it")
        seen.add(spec.name)
        agent_name = spec.agent or spec.name
        agent_path = agents_dir / f"{agent_name}.yaml"
        if not agent_path.is_file():
            available = sorted(p.stem for p in agents_dir.glob("*.yaml"))
            raise chain_doc.error(
                f"agent file not found: {agent_path}",
                loc,
                hint=(
                    f"agents in {agents_dir}: {', '.join(available)}"
                    if available
                    else f"no agent files in {agents_dir}; set `agents_dir:` in the chain file"
                ),
            )
        agent_doc = load_yaml(agent_path, what="agent file")
        agent = _validate(agent_doc, AgentConfig, agent_doc.data)
        stage = _resolve_stage(
            spec.name,
            agent_name,
            agent_doc,
            agent,
            spec.overrides,
            chain.defaults,
            chain_doc,
            loc,
        )
        stages.append(replace(stage, endpoint=_endpoint(spec, chain, chain_doc, loc)))
    return tuple(stages)


def _endpoint(
    spec: StageSpec, chain: ChainConfig, chain_doc: YamlDocument, stage_loc: Loc
) -> StageEndpoint | None:
    """The stage's own ``base_url``/``api_key_env``, else the chain's, else None."""
    for settings, loc in ((spec, stage_loc), (chain, ())):
        if settings.base_url is not None or settings.api_key_env is not None:
            name = "api_key_env" if settings.api_key_env is not None else "base_url"
            where = (*loc, name)
            return StageEndpoint(
                base_url=settings.base_url,
                api_key_env=settings.api_key_env,
                file=chain_doc.path,
                line=chain_doc.line_of(where),
                field=format_loc(where) or name,
            )
    return None


def _resolve_stage(
    name: str,
    agent_name: str,
    agent_doc: YamlDocument,
    agent: AgentConfig,
    overrides: AgentSettings,
    defaults: AgentSettings,
    chain_doc: YamlDocument,
    stage_loc: Loc,
) -> Stage:
    def pick(field: str) -> tuple[Any, YamlDocument, Loc]:
        """The first of override > agent file > chain defaults that sets ``field``."""
        if getattr(overrides, field) is not None:
            return getattr(overrides, field), chain_doc, (*stage_loc, "overrides", field)
        if getattr(agent, field) is not None:
            return getattr(agent, field), agent_doc, (field,)
        return getattr(defaults, field), chain_doc, ("defaults", field)

    model, _, _ = pick("model")
    if model is None:
        raise agent_doc.error(
            "no model is set for this agent",
            hint="set `model:` in the agent file, or `defaults: {model: ...}` in the chain file",
            field="model",
        )
    prompt, prompt_doc, prompt_loc = pick("prompt")
    if prompt is None:
        raise agent_doc.error("no prompt: an agent needs a `prompt:` template", field="prompt")
    system, system_doc, system_loc = pick("system")
    return Stage(
        name=name,
        agent=agent_name,
        agent_file=agent_doc.path,
        model=model,
        temperature=pick("temperature")[0],
        max_tokens=pick("max_tokens")[0],
        system=_compile(system, system_doc, system_loc) if system else None,
        prompt=_compile(prompt, prompt_doc, prompt_loc),
        cut_off=pick("cut_off")[0] or "warn",
    )


def _compile(source: str, doc: YamlDocument, loc: Loc) -> Template:
    try:
        template = compile_template(source)
    except TemplateSyntaxError as exc:
        raise ConfigError(
            f"template syntax error: {exc.message}",
            file=doc.path,
            line=doc.line_within(loc, exc.lineno),
            field=format_loc(loc),
            hint="Jinja2 syntax: {{ variable }}, {% if ... %}...{% endif %}",
        ) from None
    # Remember where the template came from, for errors found when it is rendered.
    template.orchestrate_source = (doc, loc)  # type: ignore[attr-defined]
    return template


def _check_topic_fields(topics_file: TopicsFile, stages: tuple[Stage, ...]) -> None:
    """A topic field named like a stage would be silently replaced by that stage's output."""
    names = {s.name for s in stages}
    for topic in topics_file.topics:
        clash = names.intersection(topic.vars)
        if clash:
            field = sorted(clash)[0]
            where = (*topic_location(topics_file, topic.index), field)
            raise topics_file.doc.error(
                f"topic field {field!r} has the name of a stage",
                where,
                field=topic_field(where),
                hint=f"rename the field: {{{{ {field} }}}} is the output of stage {field!r}",
            )


def _check_templates(
    topics_file: TopicsFile, stages: tuple[Stage, ...], chain_doc: YamlDocument
) -> None:
    """Render every template once per distinct set of topic fields, with placeholder stage
    outputs, so an undefined variable is found now and not after an hour of calls.

    Rendering (rather than only listing names with jinja2.meta) accepts variables guarded by
    ``| default(...)`` or ``is defined``, and finds the exact topic that lacks a field.
    """
    probed: set[frozenset[str]] = set()
    fields_in_any_topic = {k for t in topics_file.topics for k in t.vars}
    later = {s.name: i for i, s in enumerate(stages)}
    for topic in topics_file.topics:
        keys = frozenset(topic.vars)
        if keys in probed:
            continue
        probed.add(keys)
        context: dict[str, Any] = {**topic.vars, "topic": topic.text}
        for i, stage in enumerate(stages):
            for template in (stage.system, stage.prompt):
                if template is None:
                    continue
                try:
                    render(template, context)
                except UndefinedError as exc:
                    doc, loc = template.orchestrate_source  # type: ignore[attr-defined]
                    match = _UNDEFINED_NAME.search(exc.message or "")
                    if match is None:  # e.g. "'str object' has no attribute 'subject'"
                        raise doc.error(
                            f"template fails: {exc.message}",
                            loc,
                            hint="topic fields and stage outputs are plain text or values; "
                            "check the attribute or filter used on them",
                        ) from None
                    name = match.group(1)
                    if name in fields_in_any_topic:
                        where = topic_location(topics_file, topic.index)
                        raise topics_file.doc.error(
                            f"this topic has no field {name!r}, which stage {stage.name!r} uses",
                            where,
                            field=topic_field(where),
                            hint=f"add `{name}:` to this topic, or write "
                            f"{{{{ {name} | default('...') }}}} in {doc.path.name}",
                        ) from None
                    if name == stage.name:
                        hint = f"stage {name!r} cannot use its own output"
                    elif name in later and later[name] > i:
                        hint = (
                            f"stage {name!r} runs after {stage.name!r}; a prompt sees only "
                            "the outputs of earlier stages"
                        )
                    else:
                        available = ["topic", *sorted(keys), *(s.name for s in stages[:i])]
                        hint = "variables available here: " + ", ".join(available)
                    raise doc.error(
                        f"uses {{{{ {name} }}}}, which no topic field or earlier stage provides",
                        loc,
                        hint=hint,
                    ) from None
                except Exception as exc:  # a filter or test failing on real data
                    doc, loc = template.orchestrate_source  # type: ignore[attr-defined]
                    raise doc.error(f"template fails to render: {exc}", loc) from None
            context[stage.name] = f"(output of the {stage.name} stage)"
