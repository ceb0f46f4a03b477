"""Every exception orchestrate raises, in one place.

Mistakes of the user are kept apart from failures of a run (as pydantic-ai separates
``UserError`` from ``AgentRunError``)::

    OrchestrateError
    ├── ConfigError          a config, topics or agent file is wrong; exit code 2
    └── RunError             something failed while running
        ├── CallError        one model call failed (status code, retryable or not)
        │   ├── CallNotSent  a call not sent because the run was halted (out of quota)
        │   └── BadResponse  the endpoint answered, but not with a usable completion
        │       ├── NotJSONResponse   a body that is not JSON (or is empty)
        │       ├── TruncatedResponse a body cut off before its end
        │       ├── ErrorPage         an HTML (or other non-JSON) error page: a proxy's
        │       ├── EmptyResponse     no choices, or a message without text
        │       ├── ContentFiltered   the provider's content filter stopped the answer
        │       └── CutOff            finish_reason "length", with ``cut_off: error``
        ├── StageFailed      a stage of one topic's chain gave up
        ├── OutputError      a result could not be saved (disk full, no permission)
        └── StoreError       the state store (state.db) cannot be opened or written

Exceptions carry attributes, not just strings, so callers can act on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class OrchestrateError(Exception):
    """Base class of every error raised by orchestrate."""


class ConfigError(OrchestrateError):
    """A configuration problem the user must fix: names the file, line and field, and how."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """Format as ``file:line: field: message`` plus a hint line."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        text = f"{where}{field}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class RunError(OrchestrateError):
    """Something failed while a run was in progress."""


class CallError(RunError):
    """One model call failed.

    ``status`` is the HTTP status (``None`` for timeouts and dropped connections), ``code``
    the provider's error code when it sent one (e.g. ``context_length_exceeded``),
    ``retry_after`` the seconds the provider asked us to wait, and ``headers`` the
    response's headers (rate-limit headers come with errors too).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = headers or {}
        super().__init__(message)


class CallNotSent(CallError):
    """A call that was never sent because the run was halted; its topic is skipped."""


class BadResponse(CallError):
    """The endpoint answered, but not with a usable chat completion. ``retry_cap`` is the
    most attempts another try is worth (None: the retry policy's own)."""

    retry_cap: int | None = None


class NotJSONResponse(BadResponse):
    """A body that is not JSON, or an empty one: a gateway or a server having a bad moment."""


class TruncatedResponse(BadResponse):
    """A body that ended before its declared length: the connection broke mid-answer."""


class ErrorPage(BadResponse):
    """An error status with an HTML (or other non-JSON) body: a proxy's or gateway's page,
    not the provider's own error."""


class EmptyResponse(BadResponse):
    """A completion without choices, or whose message has no text. One more try may help
    (an overloaded gateway); more seldom do."""

    retry_cap = 2


class ContentFiltered(BadResponse):
    """The provider's content filter stopped the answer (``finish_reason: content_filter``);
    the same request would be stopped again."""


class CutOff(BadResponse):
    """The answer was cut off at ``max_tokens`` (``finish_reason: length``) and the agent
    says ``cut_off: error``: raise ``max_tokens``, or ask for a shorter answer."""


class StageFailed(RunError):
    """A stage of one topic's chain failed after ``attempts`` attempts."""

    def __init__(self, stage: str, attempts: int, last_error: BaseException) -> None:
        self.stage = stage
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(f"stage {stage!r} failed after {attempts} attempt(s): {last_error}")


class OutputError(RunError):
    """A file of the run could not be written; ``path`` says which."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason}")


class StoreError(RunError):
    """The state store cannot be used: corrupted, locked by another process, full, or not
    writable. ``path`` names the file, ``reason`` what SQLite said, ``hint`` how to fix it."""

    def __init__(self, path: str | Path, reason: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        text = f"state store {self.path}: {reason}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)
