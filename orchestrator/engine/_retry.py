"""Which failed calls are retried, and how long to wait before the next attempt.

Retried: 429 ``rate_limit_exceeded``, 408, 409, 5xx, timeouts and dropped connections.
Never retried: 400, 401, 403, 404, 422 — and a 429 ``insufficient_quota``, which stops the
whole run (retrying an empty account only burns time). The provider's ``retry-after-ms`` /
``retry-after`` is honoured; otherwise exponential backoff with full jitter, so failed calls
do not come back in lockstep ("Exponential Backoff And Jitter", AWS Architecture Blog:
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_random_exponential

from .._errors import CallError
from ..config._models import RetryPolicy

QUOTA_CODE = "insufficient_quota"


def is_quota_error(error: BaseException) -> bool:
    """A 429 that means the account is out of credit, not that we went too fast."""
    return isinstance(error, CallError) and error.status == 429 and error.code == QUOTA_CODE


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt can succeed."""
    return isinstance(error, CallError) and error.retryable and not is_quota_error(error)


class RetryDecision:
    """tenacity ``retry=``: retry what ``is_retryable`` allows, and a ``BadResponse`` only
    up to its own ``retry_cap`` (an empty completion is worth one more try, not six)."""

    def __call__(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if error is None or not is_retryable(error):
            return False
        cap = getattr(error, "retry_cap", None)
        return cap is None or state.attempt_number < cap


class BackoffWait:
    """tenacity ``wait=``: the provider's retry-after when it gave one, else full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._max = policy.backoff_max
        self._jitter = wait_random_exponential(
            multiplier=policy.backoff_base, max=policy.backoff_max
        )

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, CallError) and error.retry_after is not None:
            # Capped: some gateways ask for an hour; the retry pass can take over instead.
            return min(error.retry_after, self._max)
        return float(self._jitter(state))
