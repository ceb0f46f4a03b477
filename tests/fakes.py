"""Fakes for unit tests: a scripted chat client and an event recorder (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from orchestrator import CallError, ChatRequest, ChatResponse, Event

Handler = Callable[[ChatRequest], Awaitable[str] | str]


class FakeClient:
    """A ChatClient whose answers come from ``handler(request)``; it records every request
    and the most calls it ever had in flight at once (aiometer's ``Spy`` idea)."""

    def __init__(self, handler: Handler | None = None, *, delay: float = 0.0) -> None:
        self.handler = handler or (lambda req: f"answer to {req.messages[-1]['content'][:40]}")
        self.delay = delay
        self.requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            text = self.handler(request)
            if not isinstance(text, str):
                text = await text
        finally:
            self.in_flight -= 1
        return ChatResponse(
            text=text,
            finish_reason="stop",
            prompt_tokens=10,
            completion_tokens=len(text.split()),
            model=request.model,
        )


def fail_when(needle: str, *, status: int = 400) -> Handler:
    """A handler that answers normally, but fails any request whose prompt contains needle."""

    def handler(request: ChatRequest) -> str:
        prompt = request.messages[-1]["content"]
        if needle in prompt:
            raise CallError(f"HTTP {status}: scripted failure", status=status)
        return f"output for: {prompt.splitlines()[0]}"

    return handler


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def on_event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def completion_json(model: str, content: str | None, *, n: int = 1) -> dict[str, object]:
    """The JSON body of one OpenAI chat completion, for the tests' own HTTP servers."""
    return {
        "id": f"c{n}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
