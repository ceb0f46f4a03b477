"""The ``progress=`` switch of ``run()``, ``resume()`` and ``compare()``."""

from __future__ import annotations

from collections.abc import Sequence

from ..engine._events import Observer
from ..report._live import progress_observer


def with_progress(observers: Sequence[Observer], progress: Observer | bool) -> list[Observer]:
    """``observers`` plus the progress display: ``True`` the default one (live bars on a
    terminal; plain lines at a modest rate elsewhere, a notebook included), ``False`` none,
    or an observer of your own."""
    if progress is True:
        return [*observers, progress_observer()]
    if progress is False:
        return list(observers)
    return [*observers, progress]
