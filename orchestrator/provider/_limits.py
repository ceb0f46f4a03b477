"""Client-side rate limits, per (endpoint, model), quantised to short windows.

Providers state limits per minute but enforce them over short windows: "1,200 RPM" behaves
like 20 requests per second, not 1,200 at once. So a limit is spread over ``window`` seconds
(1 s by default): ``AsyncLimiter(rpm / 60 * window, window)`` for requests, and a token
bucket of ``tpm / 60 * window`` for tokens. Starting with a whole minute's budget (as the
openai-cookbook script does) bursts straight into 429s.

Everything reads time from the running loop (``loop.time()``/``asyncio.sleep``), as
aiolimiter does, so tests drive it with a virtual-time loop instead of real sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from aiolimiter import AsyncLimiter

from ._headers import RateLimitInfo

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Limit:
    """A per-minute limit pair; None means not limited (or not known yet)."""

    rpm: int | None = None
    tpm: int | None = None


# Pace at 97% of the stated limit. Client and server buckets tick at the same rate, so a few
# milliseconds of jitter between sending and arriving would otherwise land some requests a
# hair early at the provider, as 429s (measured: 1.3% of calls at 100%; see
# benchmarks/rate_limits.py). 3% of throughput is the cheaper price.
HEADROOM = 0.97


# Learning's slow start (see ModelLimiter): measured in benchmarks/rate_limits.py and
# benchmarks/learning.py. The first LEARN_BURST calls go at once — the usual -c fits, so an
# unlimited server costs nothing; then LEARN_RATE per second (1,200 RPM, which a 429-free
# start against a 1,200 RPM server needs), doubling every LEARN_DOUBLING seconds so that a
# slow first answer from a server without limits does not hold a wide first wave back.
LEARN_BURST = 10
LEARN_RATE = 20.0
LEARN_DOUBLING = 0.5


def learning_offset(n: int) -> float:
    """Seconds after the first call that call ``n`` (from 0) of the slow start may go:
    the inverse of ``LEARN_BURST + LEARN_RATE * D / ln 2 * (2 ** (t / D) - 1)`` calls sent
    by time ``t``."""
    if n < LEARN_BURST:
        return 0.0
    grown = (n + 1 - LEARN_BURST) * math.log(2) / (LEARN_RATE * LEARN_DOUBLING)
    return LEARN_DOUBLING * math.log2(1 + grown)


def _now() -> float:
    return asyncio.get_running_loop().time()


class TokenBucket:
    """A token bucket whose reservations can be corrected afterwards.

    Written here rather than built on aiolimiter, which has no refund (a call reserves its
    prompt estimate + max_tokens, then the real usage gives most of it back) and whose
    ``acquire(n)`` raises when n exceeds one window's capacity — routine here: a 2,000-token
    request against 90k TPM, whose one-second share is 1,500. Such a request waits until the
    bucket is full and leaves it in debt, so big requests are slow, never impossible.
    """

    def __init__(self, per_minute: float, *, window: float, start: float = 1.0) -> None:
        self.set_limit(per_minute, window=window)
        self._level = self.capacity * start  # ``start``: the fraction full at first
        self._checked: float | None = None
        self._lock = asyncio.Lock()  # waiters are served first come, first served

    def set_limit(self, per_minute: float, *, window: float) -> None:
        """Change the rate (a limit learned from headers); the level is kept."""
        self.per_minute = per_minute
        self.rate = per_minute * HEADROOM / 60.0
        self.capacity = self.rate * window
        if hasattr(self, "_level"):
            self._level = min(self._level, self.capacity)

    def _refill(self) -> None:
        now = _now()
        if self._checked is not None:
            self._level = min(self.capacity, self._level + (now - self._checked) * self.rate)
        self._checked = now

    @property
    def busy(self) -> bool:
        """True while a caller waits for tokens (others queue behind it)."""
        return self._lock.locked()

    @property
    def level(self) -> float:
        """Tokens available now (negative while in debt)."""
        self._refill()
        return self._level

    async def acquire(self, amount: float) -> None:
        """Take ``amount`` tokens, waiting until the bucket holds min(amount, capacity)."""
        async with self._lock:
            while True:
                self._refill()
                needed = min(amount, self.capacity)
                if self._level >= needed:
                    self._level -= amount
                    return
                await asyncio.sleep((needed - self._level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Give back (positive) or charge (negative) tokens after the fact."""
        self._refill()
        self._level = min(self.capacity, self._level + delta)


def _request_limiter(rpm: int, window: float) -> AsyncLimiter:
    # aiolimiter cannot acquire 1 from a capacity below 1 (e.g. 30 RPM over 1 s): widen the
    # window just enough to hold one request.
    # (Capacity first, then the window from it: 1 / per_second * per_second can come out a
    # hair below 1, and aiolimiter then refuses every acquire — seen at 3 RPM.)
    per_second = rpm * HEADROOM / 60.0
    capacity = max(1.0, per_second * window)
    return AsyncLimiter(capacity, capacity / per_second)


class ModelLimiter:
    """Requests and tokens for one (endpoint, model), shared by every call to it.

    ``limit`` is what the user configured. With none configured (and ``learn`` — False when
    the limits are known to be none), the limiter *learns*: until the first answer, calls go
    out on a slow start (``LEARN_BURST`` at once, then ``LEARN_RATE`` per second, doubling
    every ``LEARN_DOUBLING`` seconds), then at the limits the answer's headers state, or
    unpaced if it states none. A fast answer ends the ramp before it paces anything; a slow
    one lets it open up; a 429 states the limits at once (and pauses the model). With
    limits configured, it follows the provider's own when they are lower, and a 429 pauses
    every call to this model, not only the one that got it.
    """

    def __init__(self, limit: Limit, *, window: float = 1.0, learn: bool = True) -> None:
        self.window = window
        self.configured = limit  # what the user set: a ceiling no learned limit exceeds
        self.limit = limit  # what paces the calls now: the lower of configured and learned
        self._learned = Limit()  # what the provider stated last
        self._requests = _request_limiter(limit.rpm, window) if limit.rpm else None
        # Tokens start half full, like requests (see acquire): a full first burst over fresh
        # connections drew 2.6% 429s under a TPM limit.
        self._tokens = TokenBucket(limit.tpm, window=window, start=0.5) if limit.tpm else None
        self._paused_until = 0.0
        self._started = False
        self._drained = False  # the limits were stated by a refusal: start from empty
        # Learning: until the first answer, the slow start of ``_learning_slot``.
        learning = learn and limit.rpm is None and limit.tpm is None
        self._first_answer: asyncio.Event | None = asyncio.Event() if learning else None
        self._learn_started: float | None = None
        self._learn_sent = 0

    @property
    def learning(self) -> bool:
        """True while waiting for the first answer of an unconfigured model."""
        return self._first_answer is not None and not self._first_answer.is_set()

    def ready(self, tokens: int) -> bool:
        """Whether ``acquire(tokens)`` would go through now, without waiting (when unsure,
        False: the caller then waits the slow way)."""
        if self.learning or self._paused_until > _now():
            return False
        if self._requests is not None and (not self._started or not self._requests.has_capacity()):
            return False  # (the first acquire also takes the half-burst start)
        if self._tokens is None:
            return True
        return not self._tokens.busy and self._tokens.level >= min(tokens, self._tokens.capacity)

    async def acquire(self, tokens: int) -> None:
        """Wait for room for one request of ``tokens`` (estimated prompt + max_tokens)."""
        if self.learning:
            await self._learning_slot()
        await self._wait_out_pause()
        while self._requests is not None:
            requests = self._requests
            if not self._started:
                # Start with half a burst: the provider's bucket may not be full (another
                # client shares it), and a first burst over fresh connections reaches it
                # bunched up (measured: every remaining 429 of a configured run came there).
                self._started = True
                # After a refusal the provider's bucket is empty: start from empty too.
                await requests.acquire(
                    requests.max_rate if self._drained else requests.max_rate / 2
                )
            await requests.acquire()
            if requests is self._requests:
                break
            # A lower limit was adopted while we waited: queue again at the new pace.
        if self._tokens is not None:
            await self._tokens.acquire(tokens)
        # A 429 may have paused the model while we were queued inside a limiter.
        await self._wait_out_pause()

    async def _learning_slot(self) -> None:
        """Wait for this call's turn on the slow start, or for the first answer."""
        assert self._first_answer is not None
        now = _now()
        if self._learn_started is None:
            self._learn_started = now
        due = self._learn_started + learning_offset(self._learn_sent)
        self._learn_sent += 1
        if due > now:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due - now):
                    await self._first_answer.wait()

    async def _wait_out_pause(self) -> None:
        # A loop, not an Event: another 429 may push the pause further while we sleep.
        while (delay := self._paused_until - _now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def refund(self, tokens: int) -> None:
        """Give tokens back (a call the provider refused), or charge more if negative.

        A call that went through stays charged for its ``max_tokens``: providers count
        prompt + max_tokens when a request arrives and give nothing back for an answer that
        came out shorter (measured: refunding it paced twice too fast under a TPM limit,
        84% of calls drew 429s). Only the prompt estimate is corrected by the real usage.
        """
        if self._tokens is not None:
            self._tokens.adjust(tokens)

    def pause(self, seconds: float) -> None:
        """Hold back every call to this model for ``seconds`` (after a 429)."""
        self._paused_until = max(self._paused_until, _now() + seconds)

    def answered(self, info: RateLimitInfo | None, *, ok: bool) -> None:
        """Take in what a response (``ok``) or an error said about the limits.

        While learning, the first answer with rate-limit headers sets the limits; a
        successful answer without any means there are none. A failure without headers (a
        dropped connection, a bare 500) says nothing: the slow start goes on.

        This is on the call path, so it never raises: whatever a server sends, the call's
        own outcome stands and the run goes on (a fault here is logged, and the limits
        stay as they were).
        """
        try:
            if info is not None and info.has_limits:
                self._adopt(info, refused=not ok)
                if info.limit_requests and info.remaining_requests == 0 and info.reset_requests:
                    # Time until one more request, at the rate the provider replenishes them.
                    spent = max(1, info.limit_requests - info.remaining_requests)
                    self.pause(min(info.reset_requests / spent, 60.0))
        except Exception as exc:  # a bug must not cost the call its answer
            log.warning("limits.learning_failed", error=repr(exc))
        if self._first_answer is None or self._first_answer.is_set():
            return
        if ok or (info is not None and info.has_limits):
            self._first_answer.set()

    def _adopt(self, info: RateLimitInfo, *, refused: bool = False) -> None:
        """Follow the provider's stated limits, up and down (a tier upgrade, a key shared
        with another client), never above what the user configured. Only positive, finite
        limits get here (``rate_limit_info`` drops the rest)."""
        learned = Limit(
            info.limit_requests or self._learned.rpm, info.limit_tokens or self._learned.tpm
        )
        if learned == self._learned:
            return  # the usual case: every response restates the same limits
        self._learned = learned
        rpm = _lower(self.configured.rpm, learned.rpm)
        tpm = _lower(self.configured.tpm, learned.tpm)
        if rpm is not None and rpm != self.limit.rpm:
            self._requests = _request_limiter(rpm, self.window)
            self._started = False  # the new pace starts with half a burst, not a full one
            self._drained = refused
        if tpm is not None and tpm != self.limit.tpm:
            if self._tokens is None:
                self._tokens = TokenBucket(tpm, window=self.window, start=0.0 if refused else 0.5)
            else:
                self._tokens.set_limit(tpm, window=self.window)
        self.limit = Limit(rpm, tpm)


def _lower(configured: int | None, learned: int | None) -> int | None:
    if configured is None:
        return learned
    if learned is None:
        return configured
    return min(configured, learned)


class Limiters:
    """The ModelLimiters of a run, created on first use, one per (endpoint, model)."""

    def __init__(
        self,
        configured: Mapping[str, Limit] | None = None,
        *,
        default: Limit | None = None,
        window: float = 1.0,
        learn: bool = True,
    ) -> None:
        self._configured = dict(configured or {})
        self._default = default or Limit()
        self.window = window
        self.learn = learn
        self._by_key: dict[tuple[str, str], ModelLimiter] = {}

    def limit_for(self, model: str) -> Limit:
        """What ``model`` is configured to be paced by (before anything is learned)."""
        return self._configured.get(model, self._default)

    def for_model(self, endpoint: str, model: str) -> ModelLimiter:
        key = (endpoint, model)
        limiter = self._by_key.get(key)
        if limiter is None:
            limit = self._configured.get(model, self._default)
            limiter = self._by_key[key] = ModelLimiter(limit, window=self.window, learn=self.learn)
        return limiter
