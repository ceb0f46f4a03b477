"""One stage's model call: wait for the rate limiters, send, retry what can be retried,
tell the limiter what the answer said, and report every attempt.

Tenacity drives the attempts with an explicit ``retry=`` predicate and ``stop=``; the SDK's
own retries are off. Only the client call decides an attempt's fate: whatever it raises
becomes a ``CallError``, while an observer's failure passes through and stops the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import structlog
from tenacity import AsyncRetrying, stop_after_attempt

from .._errors import CallError, CutOff, StageFailed
from ..config._models import RetryPolicy
from ..config._topics import Topic
from ..provider._client import ChatClient, ChatRequest, ChatResponse, Route
from ..provider._headers import rate_limit_info
from ..provider._limits import Limiters, ModelLimiter
from ..provider._tokens import estimate_message_tokens
from ._brake import Brake
from ._budget import Pricing
from ._events import CallFailed, CallFinished, CallStarted, Event, StageErrored, Waited
from ._retry import BackoffWait, RetryDecision, is_quota_error

log = structlog.get_logger()

QUOTA_MESSAGE = (
    "the provider says the account is out of quota (429 insufficient_quota): no further "
    "calls were sent; add credit or check the plan and billing, then run again"
)


class Calls:
    """Makes the calls of one engine, with its limiters, retry policy and brake."""

    def __init__(
        self,
        *,
        limiters: Limiters,
        retry: RetryPolicy,
        brake: Brake,
        emit: Callable[[Event], Awaitable[None]],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        prices: Pricing | None,
    ) -> None:
        self.limiters = limiters
        self.retry = retry
        self.brake = brake
        self.emit = emit
        self.clock = clock
        self.sleep = sleep
        self.prices = prices

    async def call(
        self,
        topic: Topic,
        stage: str,
        request: ChatRequest,
        route: Route,
        stage_started: float,
        *,
        cut_off: str = "warn",
    ) -> tuple[ChatResponse, int]:
        """One stage's model call, with rate limits and retries: returns the response and
        the attempts it took; raises StageFailed when it gives up. ``cut_off="error"``
        makes an answer cut off at max_tokens a failed (not retried) call."""
        limiter = self.limiters.for_model(route.endpoint, request.model)
        # Providers count the prompt plus max_tokens against TPM when a request arrives.
        prompt_estimate = estimate_message_tokens(request.messages)
        reserved = prompt_estimate + (request.max_tokens or 0)
        attempts = 0

        async def backoff(seconds: float) -> None:
            started = self.clock()
            await self.sleep(seconds)
            await self.emit(Waited(topic, stage, "backoff", started, self.clock()))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=BackoffWait(self.retry),
            retry=RetryDecision(),
            sleep=backoff,
            reraise=True,
        )
        try:
            if limiter.limit.tpm and reserved > limiter.limit.tpm:
                raise CallError(
                    f"the request needs about {reserved} tokens, more than the whole "
                    f"{limiter.limit.tpm} TPM limit of {request.model}: it can never be sent"
                )
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = await self._attempt(
                        topic,
                        stage,
                        request,
                        attempts,
                        route.client,
                        limiter,
                        reserved,
                        prompt_estimate,
                        cut_off,
                    )
        except CallError as exc:  # anything else (an observer failing) stops the run
            await self.stage_failed(topic, stage, exc, attempts, stage_started)
        return response, attempts

    async def _attempt(
        self,
        topic: Topic,
        stage: str,
        request: ChatRequest,
        attempt: int,
        client: ChatClient,
        limiter: ModelLimiter,
        reserved: int,
        prompt_estimate: int,
        cut_off: str = "warn",
    ) -> ChatResponse:
        """Wait for the limiter, send once, and tell the limiter what happened.

        Only the client call decides the attempt's fate: whatever it raises becomes a
        CallError, while an observer's failure passes through untouched and stops the run.
        """
        waiting = self.clock()
        # While the limits are being learned, a wait is the slow start, not a limit.
        kind = "learning" if limiter.learning else "limiter"
        await self.brake.acquire(limiter, reserved)  # halted: CallNotSent; drained: parks
        started = self.clock()
        if started - waiting > 0.001:
            await self.emit(Waited(topic, stage, kind, waiting, started))
        await self.emit(CallStarted(topic, stage, attempt, request.model, started, request))
        self.brake.call_started()
        try:
            response = await client.complete(request)
            if cut_off == "error" and response.finish_reason == "length":
                raise CutOff(
                    f"the answer was cut off at max_tokens ({request.max_tokens}) and this "
                    "agent says `cut_off: error`; raise max_tokens or ask for less",
                    code="length",
                    headers=response.headers,
                )
        except Exception as exc:
            error = exc if isinstance(exc, CallError) else CallError(f"{type(exc).__name__}: {exc}")
            info = rate_limit_info(error.headers)
            limiter.answered(info, ok=False)
            if is_quota_error(error):
                limiter.refund(reserved)
                self.brake.halt(QUOTA_MESSAGE)
            elif error.status == 429:
                limiter.refund(reserved)  # refused: the provider counted nothing
                # Everyone calling this model waits, not only this call.
                limiter.pause(self._capped(error.retry_after, default=1.0))
            try:  # in flight until the failure is recorded, so a drain waits for it
                await self.emit(CallFailed(topic, stage, attempt, error, started, self.clock()))
            finally:
                self.brake.call_done()
            if error is exc:
                raise
            raise error from exc
        limiter.answered(rate_limit_info(response.headers), ok=True)
        limiter.refund(prompt_estimate - response.prompt_tokens)
        cost = self.cost(request, response)
        await self.emit(CallFinished(topic, stage, attempt, response, started, self.clock(), cost))
        return response

    def cost(self, request: ChatRequest, response: ChatResponse) -> float | None:
        """What an answer cost in USD, None when unpriced. Priced as the model asked for:
        providers answer with dated snapshot names."""
        if self.prices is None:
            return None
        return self.prices.cost(
            request.model,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            cached_tokens=response.cached_tokens,
        )

    def _capped(self, seconds: float | None, *, default: float) -> float:
        """A provider's retry-after, capped at ``retry.backoff_max`` (some gateways ask for
        an hour; better to try again and let the retry pass take over)."""
        return min(default if seconds is None else seconds, self.retry.backoff_max)

    async def stage_failed(
        self, topic: Topic, stage: str, error: Exception, attempts: int, started: float
    ) -> NoReturn:
        await self.emit(StageErrored(topic, stage, error, attempts, started, self.clock()))
        log.info("stage.failed", topic=topic.slug, stage=stage, error=str(error))
        raise StageFailed(stage, attempts, error) from error
