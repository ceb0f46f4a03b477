"""Random faults of the simulated provider: 429s, 500s, 503s, dropped connections, hangs.

One draw per request, in arrival order, from a generator of its own. Never from the request
hash: then every retry of a failed request would fail the same way, and no retry policy
could be tested.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from ...config._sim_settings import SimSettings
from ._ratelimit import ORGANIZATION, format_duration

# OpenAI's own words for each failure.
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
OVERLOADED_MESSAGE = "The engine is currently overloaded, please try again later."

# A random 429 stands for another client sharing the quota: the wait it asks for is short.
RANDOM_RETRY_MS = (50, 500)


def shared_quota_message(model: str, wait: float) -> str:
    """The message of a random 429, shaped like a real rate-limit one."""
    return (
        f"Rate limit reached for {model} in organization {ORGANIZATION} on requests per min "
        f"(RPM): the quota is shared with other clients. Please try again in "
        f"{format_duration(wait)}."
    )


class Fault(enum.Enum):
    """What happens to one admitted request."""

    NONE = "none"
    ERROR_429 = "error_429"
    ERROR_500 = "error_500"
    ERROR_503 = "error_503"
    DROP = "drop"
    HANG = "hang"
    BAD = "bad"  # an answer that is not what it claims (SimSettings.bad_response)


@dataclass(slots=True)
class SimStats:
    """How the simulated server answered chat requests, one count per request."""

    ok: int = 0  # answered normally
    rate_limited: int = 0  # 429: the model's RPM/TPM bucket refused it
    error_429: int = 0  # 429: a random rate-limit error
    error_500: int = 0
    error_503: int = 0
    dropped: int = 0  # connection closed without a response
    hung: int = 0  # held for hang_seconds before answering (if the client still waits)
    quota: int = 0  # 429 insufficient_quota
    bad: int = 0  # answered with a bad response (not JSON, truncated, ...)

    @property
    def total(self) -> int:
        """Every counted request."""
        return (
            self.ok
            + self.rate_limited
            + self.error_429
            + self.error_500
            + self.error_503
            + self.dropped
            + self.hung
            + self.quota
            + self.bad
        )


class FaultDraw:
    """Decides each request's fault with one uniform draw against the cumulative rates."""

    def __init__(self, settings: SimSettings, rng: random.Random) -> None:
        self._rng = rng
        self._bands = (
            (Fault.ERROR_429, settings.error_rate_429),
            (Fault.ERROR_500, settings.error_rate_500),
            (Fault.ERROR_503, settings.error_rate_503),
            (Fault.DROP, settings.drop_rate),
            (Fault.HANG, settings.hang_rate),
            (Fault.BAD, settings.bad_response_rate),
        )

    def draw(self) -> Fault:
        """The next request's fault (``Fault.NONE`` for a normal answer)."""
        u = self._rng.random()  # in [0, 1): a rate of 1.0 always hits, 0 never does
        edge = 0.0
        for fault, rate in self._bands:
            edge += rate
            if u < edge:
                return fault
        return Fault.NONE

    def retry_after_ms(self) -> int:
        """The wait a random 429 asks for."""
        return self._rng.randint(*RANDOM_RETRY_MS)
