"""The simulated provider: an OpenAI-compatible HTTP server on 127.0.0.1.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like OpenAI does, so a run
reaches it through the same ``AsyncOpenAI`` code path as a real provider. The text is keyed
on a hash of the request (same request, same answer); latency is drawn from the settings'
distribution by a seeded generator, apart from the request, so timing varies like a real
service while answers stay reproducible.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .._tokens import estimate_message_tokens, estimate_tokens
from ._settings import SimSettings
from ._text import generate

DEFAULT_MAX_TOKENS = 4096
MAX_BODY_BYTES = 64 * 1024 * 1024
ADVERTISED_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")


def request_seed(body: dict[str, Any]) -> int:
    """A stable seed from everything that shapes the answer."""
    key = {k: body.get(k) for k in ("model", "messages", "temperature", "max_tokens", "seed")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _error(status: int, message: str, *, type_: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status)


class SimServer:
    """Start with ``async with SimServer(settings) as server:``; ``server.base_url`` is the
    ``/v1`` URL to give the client. ``port=0`` picks a free port."""

    def __init__(
        self,
        settings: SimSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.sleep = sleep
        self.requests_served = 0
        self.in_flight = 0
        self._latency_rng = random.Random(settings.seed)
        self._runner: web.AppRunner | None = None
        self._models: set[str] = set(ADVERTISED_MODELS)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:54321/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        """The aiohttp application (also usable with aiohttp's test client)."""
        # Prompts can be long; OpenAI accepts large bodies, aiohttp's default is 1 MiB.
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        return app

    async def start(self) -> None:
        """Bind and start serving in the running event loop."""
        # handler_cancellation: a client that gives up (timeout, Ctrl-C) cancels its simulated
        # wait, and a short shutdown_timeout stops the server without waiting out long calls.
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.1,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving and free the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "orchestrate-simulated"}
            for m in sorted(self._models)
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ConnectionResetError:
            # The client went away mid-request (an interrupted run): normal for a server, so
            # no traceback. 499 is nginx's "client closed request"; nobody will read it.
            return web.Response(status=499)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "The request body is not valid JSON.", type_="invalid_request_error")
        problem = _check_body(body)
        if problem:
            return _error(400, problem, type_="invalid_request_error")
        messages: list[dict[str, str]] = body["messages"]
        max_tokens = int(
            body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
        )
        prompt_tokens = estimate_message_tokens(messages)
        if prompt_tokens + max_tokens > self.settings.context_window:
            return _error(
                400,
                f"This model's maximum context length is {self.settings.context_window} tokens. "
                f"However, you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in "
                f"the messages, {max_tokens} in the completion). Please reduce the length of "
                "the messages or completion.",
                type_="invalid_request_error",
                code="context_length_exceeded",
            )
        seed = request_seed(body)
        # Answer length belongs to the answer, so it is keyed on the request too.
        target = max(1, round(self.settings.output_tokens * random.Random(seed).uniform(0.8, 1.2)))
        text, finish_reason = generate(
            messages, seed=seed, max_tokens=max_tokens, target_tokens=target
        )
        completion_tokens = estimate_tokens(text)
        s = self.settings
        latency = max(0.0, self._latency_rng.gauss(s.latency_mean, s.latency_jitter))
        latency += s.per_output_token * completion_tokens
        self.in_flight += 1
        try:
            await self.sleep(s.real_seconds(latency))
        finally:
            self.in_flight -= 1
        self._models.add(body["model"])
        self.requests_served += 1
        return web.json_response(
            {
                "id": f"chatcmpl-sim-{seed:016x}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "orchestrate-simulated",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            headers={"x-request-id": f"req_sim_{seed:016x}"},
        )


def _check_body(body: Any) -> str | None:
    """What is wrong with a chat request body, in OpenAI's words, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return f"Invalid 'messages[{i}]': expected an object with string 'content'."
        if m.get("role") not in ("system", "developer", "user", "assistant"):
            return f"Invalid 'messages[{i}].role': {m.get('role')!r}."
    if body.get("stream"):
        return "The simulated provider does not stream; send 'stream': false."
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return f"Invalid '{name}': must be a positive integer."
    return None
