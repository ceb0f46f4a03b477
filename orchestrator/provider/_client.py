"""The model client: one chat call in, one answer (or a CallError) out.

The engine depends only on the small ``ChatClient`` protocol, so unit tests pass a scripted
fake, while real runs use ``OpenAIChatClient`` — the official SDK over HTTP, for OpenAI, any
OpenAI-compatible endpoint, and the simulated provider alike.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx2
import openai
from openai.types.chat import ChatCompletion

from .._errors import (
    CallError,
    ContentFiltered,
    EmptyResponse,
    ErrorPage,
    NotJSONResponse,
    TruncatedResponse,
)
from ._headers import retry_after
from ._tokens import estimate_message_tokens, estimate_tokens

# Statuses worth another attempt; the limits issue's retry policy reads `retryable`.
_RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One Chat Completions request."""

    model: str
    messages: list[dict[str, str]]
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """The parts of an answer the rest of orchestrate uses."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str
    headers: Mapping[str, str] = field(default_factory=dict)
    usage_estimated: bool = False  # the provider sent no `usage`; counts are estimates
    cached_tokens: int = 0  # prompt tokens the provider served from its prompt cache


class ChatClient(Protocol):
    """Anything that can answer a ChatRequest."""

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


@dataclass(frozen=True, slots=True)
class Route:
    """Where a stage's calls go: the client, the endpoint URL its rate limiters are kept
    under, and the identity stored answers are keyed by (see ``Endpoint``)."""

    client: ChatClient
    endpoint: str
    identity: str


class OpenAIChatClient:
    """A ChatClient over ``openai.AsyncOpenAI``.

    Build it inside the running event loop, one per run and endpoint, and ``aclose()`` it at
    the end. The SDK's own retries are off (``max_retries=0``): retrying is orchestrate's
    job, and two layers of retries would multiply.
    """

    def __init__(self, client: openai.AsyncOpenAI, *, timeout: float | None = None) -> None:
        self._client = client
        # A total deadline per call: httpx's timeout is per read, so a body that trickles
        # in a byte at a time would never time out.
        self.timeout = timeout

    @classmethod
    def create(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        concurrency: int,
        timeout: float,
    ) -> OpenAIChatClient:
        """A client with keep-alive and a connection pool sized to ``concurrency``.

        ``api_key``/``base_url`` left as None are read by the SDK from ``OPENAI_API_KEY`` and
        ``OPENAI_BASE_URL``, exactly as it always does.
        """
        http_client = openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency
            ),
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
        )
        kwargs: dict[str, Any] = {"max_retries": 0, "http_client": http_client}
        if api_key is not None:
            kwargs["api_key"] = api_key
        if base_url is not None:
            kwargs["base_url"] = base_url
        return cls(openai.AsyncOpenAI(**kwargs), timeout=timeout)

    @property
    def base_url(self) -> str:
        """The endpoint this client talks to."""
        return str(self._client.base_url).rstrip("/")

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request; every failure becomes a CallError with status and code."""
        kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
                await raw.http_response.aread()  # the whole body, within the deadline
        except TimeoutError as exc:
            raise CallError(
                f"no complete answer within the {self.timeout:g}s timeout: the server took the "
                "call but answered too slowly (or never)",
                code="timeout",
                retryable=True,
            ) from exc
        except openai.APIStatusError as exc:
            raise _status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise CallError(
                "the request timed out waiting for the server", code="timeout", retryable=True
            ) from exc
        except openai.APIConnectionError as exc:
            raise _connection_error(exc, self.base_url) from exc
        except openai.APIError as exc:  # e.g. a response body that is not a completion
            raise CallError(f"invalid response: {exc}", retryable=True) from exc
        headers = _plain_headers(raw.headers)
        try:
            completion = raw.parse()
        except (ValueError, openai.APIError) as exc:  # json.JSONDecodeError is a ValueError
            raise NotJSONResponse(
                f"HTTP {raw.status_code} with a body that is not JSON "
                f"({_preview(raw.http_response.content)}): the server or a gateway in "
                "front of it had a bad moment",
                status=raw.status_code,
                retryable=True,
                headers=headers,
            ) from exc
        if not isinstance(completion, ChatCompletion):
            content_type = raw.headers.get("content-type", "unknown content type")
            raise ErrorPage(
                f"the endpoint did not answer with a chat completion ({content_type}"
                f"{_title(raw.http_response.text)}); is the base URL right (it usually ends "
                "in /v1)?",
                status=raw.status_code,
                headers=headers,
            )
        if not completion.choices or completion.choices[0].message is None:
            raise EmptyResponse(
                "the completion has no choices: nothing was answered",
                status=raw.status_code,
                retryable=True,
                headers=headers,
            )
        choice = completion.choices[0]
        if choice.finish_reason == "content_filter":
            raise ContentFiltered(
                "the provider's content filter stopped the answer (finish_reason "
                "content_filter); reword the prompt or the topic",
                status=raw.status_code,
                code="content_filter",
                headers=headers,
            )
        text = choice.message.content
        if text is None:
            refusal = getattr(choice.message, "refusal", None)
            if refusal:
                raise CallError(f"the model refused: {_clean(refusal)}", status=raw.status_code)
            raise EmptyResponse(
                "the completion's message has no text",
                status=raw.status_code,
                retryable=True,
                headers=headers,
            )
        usage = completion.usage
        cached_tokens = 0
        if usage is None:  # some compatible servers omit it; estimate rather than report 0
            prompt_tokens = estimate_message_tokens(request.messages)
            completion_tokens = estimate_tokens(text)
        else:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
            details = usage.prompt_tokens_details
            cached_tokens = (details.cached_tokens or 0) if details is not None else 0
        return ChatResponse(
            text=text,
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=completion.model or request.model,
            headers=headers,
            usage_estimated=usage is None,
            cached_tokens=cached_tokens,
        )


def _status_error(exc: openai.APIStatusError) -> CallError:
    """Turn an HTTP error into a CallError with the provider's own message; an error page
    that is not the provider's JSON (a proxy's HTML) into an ErrorPage that says so."""
    body = exc.body
    message = exc.message
    headers = _plain_headers(exc.response.headers)
    kind: type[CallError] = CallError
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message = _clean(err["message"])
    else:
        kind = ErrorPage
        content_type = headers.get("content-type", "no content type").split(";")[0]
        server = headers.get("server")
        by = f" from {_clean(server)[:40]}" if server else ""
        message = (
            f"an error page{by} ({content_type}{_title(exc.response.text)}), not the "
            "provider's own answer: a proxy or gateway in front of it failed"
        )
    code = exc.code if isinstance(exc.code, str) else None
    label = f"HTTP {exc.status_code}" + (f" {code}" if code else "")
    return kind(
        f"{label}: {message}",
        status=exc.status_code,
        code=code,
        retryable=exc.status_code in _RETRYABLE_STATUSES or exc.status_code >= 500,
        retry_after=retry_after(headers),
        headers=headers,
    )


def _connection_error(exc: openai.APIConnectionError, url: str) -> CallError:
    """A failure to connect or to read, said in the words of what went wrong."""
    cause = exc.__cause__ or exc
    if isinstance(cause, httpx2.RemoteProtocolError) and "message body" in str(cause):
        return TruncatedResponse(
            f"the answer was cut off mid-body ({cause}): the connection broke",
            retryable=True,
        )
    chain: list[BaseException] = []
    link: BaseException | None = cause
    while link is not None and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or link.__context__
    host = urlsplit(url).netloc or url
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return CallError(
                f"nothing is listening at {url} (connection refused): is the server running, "
                "and is the port right?",
                code="connection_refused",
                retryable=True,
            )
        if isinstance(link, socket.gaierror):
            return CallError(
                f"cannot find the host {host!r} ({link.strerror}): check the base URL, or the "
                "network's DNS",
                code="dns",
                retryable=True,
            )
        if isinstance(link, ssl.SSLError):
            return CallError(
                f"the TLS handshake with {host} failed ({link.reason or link}): does the URL's "
                "scheme match the server (https to a plain-http server fails so)?",
                code="tls",
            )
    return CallError(f"connection failed: {cause}", code="connection", retryable=True)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _title(text: str) -> str:
    """``: '502 Bad Gateway'`` from an HTML page's title, or nothing."""
    match = _TITLE.search(text[:4096])
    return f": {_clean(match.group(1))[:80]!r}" if match else ""


def _preview(content: bytes) -> str:
    if not content.strip():
        return "an empty body"
    text = content[:60].decode("utf-8", "replace")
    return f"it starts {_clean(text)!r}"


def _clean(text: str) -> str:
    """One line with no control characters: what a server sent is shown, never obeyed."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _plain_headers(headers: httpx2.Headers) -> dict[str, str]:
    """The same dict as ``dict(headers)``, in one pass: ``dict()`` looks every key up again,
    and each lookup decodes and scans the whole header list."""
    return dict(headers.items())
