"""The theory behind a parallel speedup: what a run on N slots could take at best.

``compare`` and ``bench`` put these next to what they measured, so the gap between the two
is visible and has a name: the spread of chain latencies (theory) or overhead (practice).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence


def list_schedule(durations: Sequence[float], slots: int) -> float:
    """The makespan of a greedy list schedule: in order, each job goes to the slot that
    frees first. It is exactly what the engine's workers do with a shared topic queue."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    free = [0.0] * min(slots, len(durations))
    for duration in durations:
        heapq.heapreplace(free, free[0] + duration)
    return max(free, default=0.0)


def rounds(pieces: int, slots: int) -> int:
    """How many times the slots fill up: ``ceil(pieces / slots)``."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    return math.ceil(pieces / slots)


def best_speedup(pieces: int, slots: int) -> float:
    """The best speedup of equal chains on ``slots`` slots: ``pieces / ceil(pieces / slots)``.

    Ten topics on five slots: 5×; on four slots the third round runs two chains alone, so
    ten take three chain times and the best is 3.33×, not 4×.
    """
    return pieces / rounds(pieces, slots) if pieces else 1.0


def uniform_time(pieces: int, slots: int, chain_time: float) -> float:
    """The run time of ``pieces`` equal chains on ``slots`` slots."""
    return rounds(pieces, slots) * chain_time
