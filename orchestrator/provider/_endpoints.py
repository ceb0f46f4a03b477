"""Which provider a run talks to, and the client for it.

``auto`` means ``openai`` when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, otherwise the
embedded simulated provider. Both go through the same ``AsyncOpenAI`` code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from .._errors import ConfigError
from ..config._sim_settings import SimSettings
from ..plan._plan import StageEndpoint
from ._client import OpenAIChatClient
from .sim._server import SimServer

ProviderChoice = Literal["auto", "openai", "simulated"]
PROVIDER_CHOICES: tuple[ProviderChoice, ...] = ("auto", "openai", "simulated")

# A keyless local endpoint (Ollama, vLLM) still needs *some* key for the SDK to start.
PLACEHOLDER_API_KEY = "orchestrate-no-key"
SIMULATED_API_KEY = "simulated"


# The SDK's own default, passed explicitly so that `environ=` is honoured in full.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Endpoint:
    """What a run is talking to (never includes a secret: see ``redact_url``).

    ``identity`` names whoever writes the answers, for stage reuse: the base URL of a real
    endpoint, while the embedded simulator, on a new port every run, is named by the one
    setting that shapes its text. A simulated answer is never reused for a real model.
    """

    provider: str
    base_url: str
    identity: str = ""

    @property
    def key(self) -> str:
        return self.identity or self.base_url


@dataclass(frozen=True)
class OpenAISettings:
    """The key and URL an openai-provider run uses, read from the environment."""

    api_key: str
    base_url: str


def redact_url(url: str) -> str:
    """Drop user-info and query from a URL: ``http://u:pw@h/v1?key=x`` -> ``http://h/v1``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal needs its brackets back
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def choose_provider(choice: str, environ: Mapping[str, str]) -> Literal["openai", "simulated"]:
    """Resolve ``auto`` against the environment."""
    if choice == "auto":
        wants_openai = environ.get("OPENAI_API_KEY") or environ.get("OPENAI_BASE_URL")
        return "openai" if wants_openai else "simulated"
    if choice in ("openai", "simulated"):
        return choice  # type: ignore[return-value]
    raise ConfigError(
        f"unknown provider {choice!r}", field="--provider", hint="use auto, openai or simulated"
    )


def openai_settings(environ: Mapping[str, str]) -> OpenAISettings:
    """Read ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` as the SDK does, and refuse values that
    could only make every call fail."""
    base_url = environ.get("OPENAI_BASE_URL")
    api_key = environ.get("OPENAI_API_KEY")
    if base_url is not None:
        if not base_url.strip():
            raise ConfigError(
                "OPENAI_BASE_URL is set but empty",
                field="OPENAI_BASE_URL",
                hint="unset it to use OpenAI, or set it to a URL like http://localhost:11434/v1",
            )
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ConfigError(
                f"OPENAI_BASE_URL is not an http(s) URL: {redact_url(base_url)!r}",
                field="OPENAI_BASE_URL",
                hint="e.g. http://localhost:11434/v1 (Ollama) or http://localhost:8000/v1 (vLLM)",
            )
    if not api_key:
        if base_url is None:
            raise ConfigError(
                "the openai provider needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)",
                field="--provider",
                hint="export OPENAI_API_KEY=sk-..., or use --provider simulated to try it keyless",
            )
        api_key = PLACEHOLDER_API_KEY  # a keyless local endpoint (Ollama, vLLM)
    return OpenAISettings(api_key=api_key, base_url=base_url or OPENAI_DEFAULT_BASE_URL)


def stage_endpoint_settings(endpoint: StageEndpoint, environ: Mapping[str, str]) -> OpenAISettings:
    """The key and URL for a chain's or stage's own endpoint.

    Without ``base_url`` it is where the SDK would go (``OPENAI_BASE_URL``, else OpenAI).
    Without ``api_key_env`` a placeholder key is sent: OPENAI_API_KEY never goes to a
    ``base_url`` the chain names unless ``api_key_env: OPENAI_API_KEY`` says so.
    """
    base_url = endpoint.base_url or environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
    if endpoint.api_key_env is None:
        if endpoint.base_url is None:  # unreachable: an endpoint sets at least one of them
            raise ValueError("an endpoint needs base_url or api_key_env")
        return OpenAISettings(api_key=PLACEHOLDER_API_KEY, base_url=base_url)
    api_key = environ.get(endpoint.api_key_env, "").strip()
    if not api_key:
        state = "is empty" if endpoint.api_key_env in environ else "is not set"
        raise ConfigError(
            f"the environment variable {endpoint.api_key_env} {state}; it holds the key for "
            f"{redact_url(base_url)}",
            file=endpoint.file,
            line=endpoint.line,
            field=endpoint.field,
            hint=f"export {endpoint.api_key_env}=..., or use --provider simulated to try the "
            "chain keyless",
        )
    return OpenAISettings(api_key=api_key, base_url=base_url)


@asynccontextmanager
async def open_client(
    provider: Literal["openai", "simulated"],
    *,
    concurrency: int,
    request_timeout: float,
    openai: OpenAISettings | None = None,
    sim_settings: SimSettings | None = None,
) -> AsyncIterator[tuple[OpenAIChatClient, Endpoint]]:
    """Start what the provider needs (the simulated server) and yield a client for it."""
    if provider == "simulated":
        async with SimServer(sim_settings or SimSettings()) as server:
            client = OpenAIChatClient.create(
                api_key=SIMULATED_API_KEY,
                base_url=server.base_url,
                concurrency=concurrency,
                timeout=request_timeout,
            )
            try:
                identity = f"simulated:output_tokens={server.settings.output_tokens}"
                yield client, Endpoint("simulated", client.base_url, identity)
            finally:
                await client.aclose()
        return
    if openai is None:
        raise ValueError("the openai provider needs its OpenAISettings")
    client = OpenAIChatClient.create(
        api_key=openai.api_key,
        base_url=openai.base_url,
        concurrency=concurrency,
        timeout=request_timeout,
    )
    try:
        yield client, Endpoint("openai", redact_url(client.base_url))
    finally:
        await client.aclose()
