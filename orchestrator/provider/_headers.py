"""Reading a provider's rate-limit headers.

OpenAI (and most compatible gateways) send, on every response::

    x-ratelimit-limit-requests: 1200        x-ratelimit-limit-tokens: 200000
    x-ratelimit-remaining-requests: 1199    x-ratelimit-remaining-tokens: 198500
    x-ratelimit-reset-requests: 50ms        x-ratelimit-reset-tokens: 6m0s

and on a 429 ``retry-after-ms`` and/or ``retry-after`` (seconds, or an HTTP date).
See https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers.

Servers that are not OpenAI spell these in every way: a dimension they do not limit as
``-1``, ``0``, ``inf`` or ``unlimited``; ``remaining`` without ``limit``; values duplicated
into ``"1200, 1200"``; ``2147483647`` for "no limit". Nothing here raises on any of it: a value
that does not state a usable limit is read as "no limit stated" (None), and each odd header is
logged once at debug level.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import structlog

log = structlog.get_logger()

# A per-minute limit above this is no limit at all (gateways send INT32_MAX or INT64_MAX for
# "unlimited"); pacing to it would only cost time.
ABSURD_LIMIT = 10**9
# A reset or retry wait longer than a day is no wait anyone means.
ABSURD_SECONDS = 86_400.0
_logged: set[str] = set()  # header names whose odd values were logged already (once each)

# "6m0s", "1.5s", "120ms", "1h2m3.5s", "20ms", "0s" — units in descending order.
_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
    r"(?:(\d+(?:\.\d+)?)ms)?$"
)


def _odd(name: str, value: object) -> None:
    """Note once per header name that its value was ignored."""
    if name not in _logged and len(_logged) < 64:
        _logged.add(name)
        log.debug("ratelimit.header_ignored", header=name, value=str(value)[:80])


def _number(text: str) -> float | None:
    """A finite float from a header value (the first of a comma-joined repeat), or None."""
    try:
        value = float(text.split(",", 1)[0].strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_duration(text: str | None) -> float | None:
    """``"6m0s"`` -> 360.0, ``"1.5s"`` -> 1.5, ``"120ms"`` -> 0.12; None if unreadable,
    negative, not finite or longer than a day."""
    if not text or not isinstance(text, str):
        return None
    text = text.split(",", 1)[0].strip()
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        value = _number(text)  # some gateways send plain seconds
    else:
        hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
        value = hours * 3600 + minutes * 60 + seconds + millis / 1000
    if value is None or not 0 <= value <= ABSURD_SECONDS:
        return None
    return value


def _count(headers: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    """A whole count from ``minimum`` up to below ABSURD_LIMIT, else None. For a limit the
    minimum is 1 (``-1``, ``0``, ``inf``, ``unlimited``: no limit stated); what remains of
    one may be 0."""
    text = headers.get(name)
    if text is None:
        return None
    value = _number(text)
    if value is None or not minimum <= value < ABSURD_LIMIT:
        _odd(name, text)
        return None
    return int(value)


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the provider says about its limits for this model (any field may be missing).

    Every field is either None or well formed: limits are whole numbers from 1 up, remaining
    counts 0 or more and only beside their limit, resets seconds from 0 to a day."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @property
    def has_limits(self) -> bool:
        return self.limit_requests is not None or self.limit_tokens is not None


def rate_limit_info(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Parse the ``x-ratelimit-*`` headers; None when there are none."""
    h = {
        str(k).lower(): v
        for k, v in headers.items()
        if isinstance(v, str) and str(k).lower().startswith("x-ratelimit-")
    }
    if not h:
        return None
    limit_requests = _count(h, "x-ratelimit-limit-requests", minimum=1)
    limit_tokens = _count(h, "x-ratelimit-limit-tokens", minimum=1)
    # A remaining count without its limit states no limit: "remaining 0" of nothing known
    # must not pause a model that nothing limits.
    return RateLimitInfo(
        limit_requests=limit_requests,
        limit_tokens=limit_tokens,
        remaining_requests=_count(h, "x-ratelimit-remaining-requests", minimum=0)
        if limit_requests
        else None,
        remaining_tokens=_count(h, "x-ratelimit-remaining-tokens", minimum=0)
        if limit_tokens
        else None,
        reset_requests=parse_duration(h.get("x-ratelimit-reset-requests")),
        reset_tokens=parse_duration(h.get("x-ratelimit-reset-tokens")),
    )


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the provider asks us to wait: ``retry-after-ms`` first, then ``retry-after``
    (seconds or an HTTP date); None when it says nothing usable."""
    lower = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
    millis = lower.get("retry-after-ms")
    if millis is not None:
        value = _number(millis)
        if value is not None and 0 <= value <= ABSURD_SECONDS * 1000:
            return value / 1000
        _odd("retry-after-ms", millis)
    text = lower.get("retry-after")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is None:
        try:
            when = parsedate_to_datetime(text.strip()).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            _odd("retry-after", text)
            return None
        seconds = max(0.0, when - (time.time() if now is None else now))
    if not 0 <= seconds <= ABSURD_SECONDS:
        _odd("retry-after", text)
        return None
    return seconds
