"""Which provider a run talks to, and the client for it.

``auto`` means ``openai`` when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, otherwise the
embedded simulated provider. Both go through the same ``AsyncOpenAI`` code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from ._client import OpenAIChatClient
from ._errors import ConfigError
from ._sim._server import SimServer
from ._sim._settings import SimSettings

ProviderChoice = Literal["auto", "openai", "simulated"]
PROVIDER_CHOICES: tuple[ProviderChoice, ...] = ("auto", "openai", "simulated")

# A keyless local endpoint (Ollama, vLLM) still needs *some* key for the SDK to start.
PLACEHOLDER_API_KEY = "orchestrate-no-key"
SIMULATED_API_KEY = "simulated"


@dataclass(frozen=True)
class Endpoint:
    """What a run is talking to (never includes a secret)."""

    provider: str
    base_url: str


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


@asynccontextmanager
async def open_client(
    provider: Literal["openai", "simulated"],
    *,
    concurrency: int,
    request_timeout: float,
    environ: Mapping[str, str],
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
                yield client, Endpoint("simulated", client.base_url)
            finally:
                await client.aclose()
        return
    api_key = None  # the SDK reads OPENAI_API_KEY itself
    if not environ.get("OPENAI_API_KEY"):
        if not environ.get("OPENAI_BASE_URL"):
            raise ConfigError(
                "the openai provider needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)",
                field="--provider",
                hint="export OPENAI_API_KEY=sk-..., or use --provider simulated to try it keyless",
            )
        api_key = PLACEHOLDER_API_KEY
    client = OpenAIChatClient.create(
        api_key=api_key, concurrency=concurrency, timeout=request_timeout
    )
    try:
        yield client, Endpoint("openai", client.base_url)
    finally:
        await client.aclose()
