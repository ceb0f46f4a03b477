"""The simulated provider: an OpenAI-compatible HTTP server on 127.0.0.1.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like OpenAI does, so a run
reaches it through the same ``AsyncOpenAI`` code path as a real provider. The text is keyed
on a hash of the request (same request, same answer), and so is its latency, drawn from the
settings' distribution: timing varies from call to call like a real service's, yet a chain
takes the same time alone as beside others, so sequential and parallel runs compare like
for like.

Each chat request then goes through, in order: body validation, the ``insufficient_quota``
mode, the model's RPM/TPM buckets (``_ratelimit``), one random fault draw (``_faults``),
and the normal answer after its latency. Every answer past validation carries OpenAI's
``x-ratelimit-*`` headers when the model has limits.
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

from ...config._sim_settings import SimSettings
from .._tokens import estimate_message_tokens, estimate_tokens
from ._faults import (
    OVERLOADED_MESSAGE,
    QUOTA_MESSAGE,
    SERVER_ERROR_MESSAGE,
    Fault,
    FaultDraw,
    SimStats,
    shared_quota_message,
)
from ._ratelimit import RateLimiter, retry_after_headers
from ._spoil import spoil
from ._text import generate

DEFAULT_MAX_TOKENS = 4096
MAX_BODY_BYTES = 64 * 1024 * 1024
ADVERTISED_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")


def request_seed(body: dict[str, Any]) -> int:
    """A stable seed from everything that shapes the answer."""
    key = {k: body.get(k) for k in ("model", "messages", "temperature", "max_tokens", "seed")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _error(
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.sleep = sleep
        self.requests_served = 0
        self.in_flight = 0
        self.stats = SimStats()
        # Faults are drawn in arrival order from a generator of their own; requests refused
        # by the limits do not consume draws.
        self._faults = FaultDraw(settings, random.Random(f"faults:{settings.seed}"))
        self._limits = RateLimiter(
            rpm=settings.rpm,
            tpm=settings.tpm,
            clock=clock,
            send_headers=settings.ratelimit_headers,
            unlimited=settings.unlimited_header,
        )
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

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
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
        model: str = body["model"]
        cost = prompt_tokens + max_tokens  # providers count max_tokens against TPM up front
        if self.settings.insufficient_quota:
            self.stats.quota += 1
            return _error(
                429,
                QUOTA_MESSAGE,
                type_="insufficient_quota",
                code="insufficient_quota",
                headers=self._limits.headers(model),  # no retry-after: waiting will not help
            )
        verdict = self._limits.admit(model, cost)
        if verdict.refused is not None:
            self.stats.rate_limited += 1
            return _error(
                429,
                verdict.message(model, cost),
                type_=verdict.refused,
                code="rate_limit_exceeded",
                headers=verdict.headers | retry_after_headers(verdict.wait),
            )
        fault = self._faults.draw()
        if fault not in (Fault.NONE, Fault.HANG, Fault.BAD):
            return self._fault_response(fault, request, model, verdict.headers)
        response = await self._answer(
            body, messages, max_tokens, prompt_tokens, verdict.headers, hang=fault is Fault.HANG
        )
        if fault is Fault.NONE:
            self.stats.ok += 1
        elif fault is Fault.BAD:  # answered, then spoilt
            self.stats.bad += 1
            return await spoil(
                response, self.settings.bad_response, request, trickle_s=self.settings.hang_seconds
            )
        return response

    def _fault_response(
        self, fault: Fault, request: web.Request, model: str, headers: dict[str, str]
    ) -> web.Response:
        if fault is Fault.ERROR_429:
            self.stats.error_429 += 1
            wait = self._faults.retry_after_ms() / 1000
            return _error(
                429,
                shared_quota_message(model, wait),
                type_="requests",
                code="rate_limit_exceeded",
                headers=headers | retry_after_headers(wait),
            )
        if fault is Fault.ERROR_500:
            self.stats.error_500 += 1
            return _error(500, SERVER_ERROR_MESSAGE, type_="server_error", headers=headers)
        if fault is Fault.ERROR_503:
            self.stats.error_503 += 1
            return _error(503, OVERLOADED_MESSAGE, type_="server_error", headers=headers)
        # Fault.DROP: close the socket with nothing sent. aiohttp then fails to write the
        # response below, takes it for a client that went away, and logs no traceback; the
        # client sees "Server disconnected without sending a response" (APIConnectionError).
        self.stats.dropped += 1
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    async def _answer(
        self,
        body: dict[str, Any],
        messages: list[dict[str, str]],
        max_tokens: int,
        prompt_tokens: int,
        headers: dict[str, str],
        *,
        hang: bool,
    ) -> web.Response:
        """The normal answer, after its simulated latency (and a hang's real wait first)."""
        seed = request_seed(body)
        # Answer length belongs to the answer, so it is keyed on the request too.
        target = max(1, round(self.settings.output_tokens * random.Random(seed).uniform(0.8, 1.2)))
        text, finish_reason = generate(
            messages, seed=seed, max_tokens=max_tokens, target_tokens=target
        )
        completion_tokens = estimate_tokens(text)
        s = self.settings
        # Latency belongs to the request, like the answer: the same chain takes the same time
        # whether it runs alone or beside others, so sequential and parallel runs compare
        # like for like. ``seed`` shifts the whole draw.
        draw = random.Random(f"latency:{s.seed}:{seed}")
        latency = max(0.0, draw.gauss(s.latency_mean, s.latency_jitter))
        latency += s.per_output_token * completion_tokens
        if hang:
            self.stats.hung += 1
        self.in_flight += 1
        try:
            if hang:  # real seconds: a hang is the client's timeout to notice, not a latency
                await self.sleep(s.hang_seconds)
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
            headers={"x-request-id": f"req_sim_{seed:016x}", **headers},
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
