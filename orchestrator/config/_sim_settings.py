"""The simulated provider's settings: one model, three sources.

Precedence is flag > environment (``ORCHESTRATE_SIM_<FIELD>``) > the chain file's
``simulated:`` section > the defaults below.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._errors import ConfigError

ENV_PREFIX = "ORCHESTRATE_SIM_"


class SimSettings(BaseModel):
    """How the simulated OpenAI-compatible server behaves. Times are in simulated seconds;
    ``time_scale`` converts them to real ones (0.01 makes a "10 s" call take 0.1 s).

    Rate limits and hangs are in real seconds: clients pace themselves by the wall clock.
    The fault rates are probabilities per admitted request, drawn in arrival order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_mean: float = Field(1.0, ge=0, description="mean seconds per call before output")
    latency_jitter: float = Field(
        0.2, ge=0, description="standard deviation of that latency (normal, clipped at 0)"
    )
    per_output_token: float = Field(
        0.0, ge=0, description="extra seconds per generated token (streaming speed)"
    )
    time_scale: float = Field(1.0, gt=0, description="real seconds per simulated second")
    output_tokens: int = Field(
        400, gt=0, description="typical answer length in tokens, capped by max_tokens"
    )
    context_window: int = Field(
        128_000, gt=0, description="prompt + max_tokens above this get a 400 error"
    )
    seed: int = Field(
        0, description="shifts the per-request latency draws and seeds the fault generator"
    )
    rpm: int | None = Field(
        None,
        gt=0,
        description="requests per minute per model, enforced over one-second windows; "
        "unset: no limit",
    )
    tpm: int | None = Field(
        None,
        gt=0,
        description="tokens (prompt + max_tokens) per minute per model, enforced over "
        "one-second windows; unset: no limit",
    )
    error_rate_429: float = Field(
        0, ge=0, le=1, description="probability of a random 429 rate_limit_exceeded"
    )
    error_rate_500: float = Field(0, ge=0, le=1, description="probability of a 500 server error")
    error_rate_503: float = Field(0, ge=0, le=1, description="probability of a 503 overloaded")
    drop_rate: float = Field(
        0, ge=0, le=1, description="probability of closing the connection without an answer"
    )
    hang_rate: float = Field(
        0, ge=0, le=1, description="probability of waiting hang_seconds before answering"
    )
    hang_seconds: float = Field(600, ge=0, description="real seconds a hanging call waits")
    bad_response_rate: float = Field(
        0,
        ge=0,
        le=1,
        description="probability of an answer that is not what it claims (see bad_response)",
    )
    bad_response: Literal[
        "not_json",
        "truncated",
        "trickle",
        "html_error",
        "empty_choices",
        "null_content",
        "content_filter",
    ] = Field(
        "not_json",
        description="what a bad answer is: a 200 whose body is not JSON, a body cut off "
        "mid-way, a body that trickles in over hang_seconds, a 502 HTML page from a proxy, "
        "no choices, a null message, or finish_reason content_filter",
    )
    insufficient_quota: bool = Field(
        False, description="answer every chat request with 429 insufficient_quota"
    )
    ratelimit_headers: bool = Field(
        True,
        description="send x-ratelimit-* headers (false: none at all, limited or not, as many "
        "gateways and self-hosted servers do)",
    )
    unlimited_header: str | None = Field(
        None,
        description="the value x-ratelimit-limit/remaining state for a dimension without a "
        "limit, as some servers do ('-1', '0', 'inf'); unset: no such header, as OpenAI",
    )

    @model_validator(mode="after")
    def _rates_fit_in_one_draw(self) -> SimSettings:
        total = (
            self.error_rate_429
            + self.error_rate_500
            + self.error_rate_503
            + self.drop_rate
            + self.hang_rate
            + self.bad_response_rate
        )
        if total > 1 + 1e-9:
            raise ValueError(
                f"error_rate_429 + error_rate_500 + error_rate_503 + drop_rate + hang_rate + "
                f"bad_response_rate is "
                f"{total:g}, above 1; they are shares of one draw per request, so lower some"
            )
        return self

    def real_seconds(self, simulated: float) -> float:
        """Convert simulated seconds to the real seconds the server sleeps."""
        return simulated * self.time_scale


def resolve_sim_settings(
    file_values: Mapping[str, Any] | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    source: str = "simulated settings",
) -> SimSettings:
    """Merge the three sources (flag > env > file) into one validated SimSettings."""
    environ = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in SimSettings.model_fields}
    for env_name in environ:
        if env_name.startswith(ENV_PREFIX) and env_name not in known:
            close = difflib.get_close_matches(env_name, sorted(known), n=1)
            raise ConfigError(
                "unknown simulated-provider setting",
                field=env_name,
                hint=f"did you mean {close[0]}?" if close else "known: " + ", ".join(sorted(known)),
            )
    merged: dict[str, Any] = dict(file_values or {})
    origin = {name: source for name in merged}
    for name in SimSettings.model_fields:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            merged[name] = environ[env_name]
            origin[name] = f"environment variable {env_name}"
    for name, value in (flags or {}).items():
        if value is not None:
            merged[name] = value
            origin[name] = f"--{name.replace('_', '-')}"
    try:
        return SimSettings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        raise ConfigError(
            f"{err['msg']} (from {origin.get(name, source)})",
            field=f"simulated.{name}" if name else "simulated",
            hint="known settings: " + ", ".join(SimSettings.model_fields),
        ) from None
