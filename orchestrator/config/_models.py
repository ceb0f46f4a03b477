"""The shapes of the configuration files, as pydantic models.

Loading them from disk with file and line in every error (``_yaml``, ``_topics``) and
turning them into a runnable plan (``plan._plan``) happen elsewhere.
"""

from __future__ import annotations

import keyword
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from ._prices import ModelPrice


class RetryPolicy(BaseModel):
    """``retry:`` in the chain file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(6, ge=1, description="tries per call, the first included")
    backoff_base: float = Field(0.5, gt=0, description="first backoff ceiling, seconds")
    backoff_max: float = Field(30.0, gt=0, description="longest backoff, seconds")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSettings(_Strict):
    """The fields an agent file, a stage's ``overrides`` and the chain's ``defaults`` share."""

    model: str | None = Field(None, min_length=1, description="model name sent to the provider")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    max_tokens: PositiveInt | None = Field(None, description="cap on the answer's tokens")
    system: str | None = Field(None, description="system prompt (a Jinja2 template)")
    prompt: str | None = Field(None, description="user prompt (a Jinja2 template)")
    cut_off: Literal["warn", "error"] | None = Field(
        None,
        description="an answer cut off at max_tokens (finish_reason length): a warning on "
        "the stage (warn, the default), or a failed call (error)",
    )


class AgentConfig(AgentSettings):
    """``agents/<name>.yaml``: one agent's role, model and prompts."""

    role: str | None = Field(None, description="one line saying what this agent does")
    prompt: str | None = Field(
        None,
        min_length=1,
        description="user prompt: a Jinja2 template that sees {{ topic }}, the topic's extra "
        "fields and every earlier stage's output by stage name",
    )


# Names Jinja2 reads as literals or specials whatever the context holds: a stage or field
# called `none` would render as "None" in every later prompt, silently.
_JINJA_RESERVED = frozenset({"true", "false", "none", "True", "False", "None", "self"})


def check_identifier(value: str) -> str:
    """Stage names and topic fields become template variables, so they must be identifiers."""
    if not value.isidentifier() or keyword.iskeyword(value):
        raise ValueError(
            f"{value!r} is not a valid name: use letters, digits and underscores, "
            "not starting with a digit (it becomes a template variable)"
        )
    if value in _JINJA_RESERVED:
        raise ValueError(
            f"{value!r} is reserved in templates ({{{{ {value} }}}} never reaches your value); "
            "choose another name"
        )
    return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_base_url(value: str | None) -> str | None:
    """An endpoint's URL must be http(s) with a host, or every call would fail."""
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "base_url must be an http(s) URL, e.g. http://localhost:11434/v1 (Ollama) or "
            "https://api.openai.com/v1"
        )
    return value


def check_env_name(value: str | None) -> str | None:
    """``api_key_env`` names a variable; the key itself never belongs in a file."""
    if value is None:
        return value
    if value.startswith(("sk-", "sk_")) or not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "api_key_env is the NAME of an environment variable holding the key (e.g. "
            "OPENROUTER_API_KEY), never the key itself"
        )
    return value


class EndpointSettings(_Strict):
    """Where a stage's calls go: the fields a chain and each of its stages may set."""

    base_url: str | None = Field(
        None,
        description="an OpenAI-compatible endpoint for these calls, e.g. "
        "http://localhost:11434/v1 (default: the run's provider)",
        json_schema_extra={"pattern": "^https?://[^/?#]+"},  # check_base_url, for editors
    )
    api_key_env: str | None = Field(
        None,
        description="the environment variable holding this endpoint's API key (default: "
        "none is sent to a base_url; OPENAI_API_KEY without one)",
        json_schema_extra={"pattern": "^(?!sk[-_])[A-Za-z_][A-Za-z0-9_]*$"},  # check_env_name
    )

    _check_url = field_validator("base_url")(check_base_url)
    _check_env = field_validator("api_key_env")(check_env_name)


class StageSpec(EndpointSettings):
    """One stage of the chain in its long form."""

    name: str = Field(description="stage name; later prompts see its output as {{ name }}")
    agent: str | None = Field(None, description="agent file name (default: the stage name)")
    overrides: AgentSettings = Field(default_factory=AgentSettings)

    _check_name = field_validator("name")(check_identifier)


class ModelLimits(_Strict):
    """``limits: {MODEL: {rpm, tpm}}``: what the provider allows for one model."""

    rpm: PositiveInt | None = Field(None, description="requests per minute")
    tpm: PositiveInt | None = Field(None, description="tokens per minute")


class BudgetConfig(_Strict):
    """``budget:``: a spending cap for every run of this chain (``--max-cost`` overrides)."""

    max_cost: PositiveFloat | None = Field(
        None,
        description="USD; no chain starts that could take the run's spend past it (every "
        "model needs a price, every stage a max_tokens)",
    )


class ChainConfig(EndpointSettings):
    """``configs/chain.yaml``: which agents run, in which order, and how."""

    stages: list[StageSpec] = Field(
        min_length=1, description="stages in order: agent names, or {name, agent, overrides}"
    )
    concurrency: PositiveInt = Field(4, description="chains in flight at once")
    defaults: AgentSettings = Field(
        default_factory=AgentSettings, description="fallbacks for every agent"
    )
    agents_dir: str = Field("../agents", description="agent files, relative to this file")
    timeout: PositiveFloat = Field(
        120.0, description="seconds one call may take in all (a total deadline, not per read)"
    )
    limits: dict[str, ModelLimits] = Field(
        default_factory=dict,
        description="per-model rate limits; models not listed learn theirs from the "
        "provider's x-ratelimit headers",
    )
    limit_window: PositiveFloat = Field(
        1.0, description="seconds over which a per-minute limit is spread (1 s: 1,200 RPM = 20/s)"
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    retry_passes: NonNegativeInt = Field(
        1, description="passes over chains that still failed, after all others finished"
    )
    simulated: dict[str, Any] = Field(
        default_factory=dict, description="settings of the simulated provider"
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="USD per 1M tokens per model, over the built-in price list: "
        "{MODEL: {input, output, cached_input}}",
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    @field_validator("stages", mode="before")
    @classmethod
    def _short_form(cls, stages: Any) -> Any:
        """``- research`` is short for ``- {name: research}``."""
        if isinstance(stages, list):
            return [{"name": s} if isinstance(s, str) else s for s in stages]
        return stages
