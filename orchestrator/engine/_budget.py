"""``--max-cost``: start a chain only if what is spent, plus what chains in flight may still
spend, plus the most this chain could cost, stays within the budget.

A chain's most is priced per stage from an upper bound of its tokens, whatever the
tokenizer: the prompt's own text counts one token per UTF-8 byte (a byte-level BPE token is
at least one byte), every place an earlier stage's output appears counts that stage's
``max_tokens``, and the stage's own ``max_tokens`` go out. A template that uses an earlier
output other than as its text (``| int``, ``| tojson``, a slice) gets a generous fixed bound
instead. Deliberately pessimistic — a budget is a promise. Not covered: a filter that makes
an output longer than itself (``indent``, ``replace`` with a longer string).

As a stage finishes, its reservation gives way to what it really cost; a chain that ends
early frees the rest.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from .._errors import ConfigError
from ..config._topics import Topic
from ..plan._plan import Stage
from ..provider._tokens import MESSAGE_OVERHEAD, REPLY_PRIMING

FALLBACK_PROMPT_TOKENS = 4000


class Pricing(Protocol):
    def cost(
        self, model: str, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> float | None: ...

    def unknown(self, models: Iterable[str]) -> list[str]: ...


def check_budget(
    max_cost: float | None, stages: Sequence[Stage], prices: Pricing, *, source: str
) -> None:
    """A budget needs a price for every model and a ``max_tokens`` on every stage: without
    them no chain's cost has an upper bound. ConfigError (exit 2) otherwise."""
    if max_cost is None:
        return
    if max_cost <= 0:
        raise ConfigError(f"must be more than 0, got {max_cost}", field=source)
    unknown = prices.unknown(stage.model for stage in stages)
    if unknown:
        raise ConfigError(
            f"no price is known for {', '.join(map(repr, unknown))}, so spending cannot be "
            "kept under a budget",
            field=source,
            hint="add them to the chain file, e.g. prices: {MODEL: {input: 0.15, output: 0.60}} "
            "(USD per 1M tokens)",
        )
    for stage in stages:
        if stage.max_tokens is None:
            raise ConfigError(
                f"stage {stage.name!r} has no max_tokens, so its cost has no upper bound",
                field=source,
                hint=f"set max_tokens in {stage.agent_file} or in the chain's defaults",
            )


def prompt_bound(stage: Stage, context: Mapping[str, Any], earlier: Mapping[str, int]) -> int:
    """The most tokens ``stage``'s prompt can have: ``context`` holds the earlier outputs as
    markers (see ``reservations``), ``earlier`` their ``max_tokens``."""
    messages = stage.messages(context)
    text = "".join(m["content"] for m in messages)
    tokens = MESSAGE_OVERHEAD * len(messages) + REPLY_PRIMING
    for name, limit in earlier.items():
        marker = _marker(name)
        found = text.count(marker)
        if not found and _uses(stage, context, name):
            # e.g. ``| int``, ``| tojson``, a slice: the output is used, not as its text
            raise ValueError(f"the prompt uses {name!r}, but not as its text")
        tokens += found * limit
        text = text.replace(marker, "")
    if "\x00" in text or "\x01" in text:  # what is left of a marker cut short
        raise ValueError("the prompt uses part of an earlier output")
    return tokens + len(text.encode("utf-8"))


def _uses(stage: Stage, context: Mapping[str, Any], name: str) -> bool:
    """Whether ``stage``'s templates use ``name``: they fail to render without it."""
    try:
        stage.messages({k: v for k, v in context.items() if k != name})
    except Exception:
        return True
    return False


def reservations(stages: Sequence[Stage], topic: Topic, prices: Pricing) -> dict[str, float]:
    """The most each stage of ``topic``'s chain could cost, in USD."""
    context: dict[str, Any] = {**topic.vars, "topic": topic.text}
    earlier: dict[str, int] = {}
    held: dict[str, float] = {}
    for stage in stages:
        try:
            prompt = prompt_bound(stage, context, earlier)
        except Exception:
            # A template that needs the real text (e.g. parses it as JSON): no rendering
            # bounds it, so take a generous bound — each earlier output three times over.
            prompt = 3 * sum(earlier.values()) + FALLBACK_PROMPT_TOKENS
        out = stage.max_tokens or 0
        cost = prices.cost(stage.model, prompt_tokens=prompt, completion_tokens=out)
        held[stage.name] = cost or 0.0
        context[stage.name] = _marker(stage.name)
        earlier[stage.name] = out
    return held


def _marker(stage: str) -> str:
    """Stands in for an earlier output while bounding a prompt; digits and control
    characters, so filters like ``upper`` leave it findable."""
    return f"\x00\x01{zlib.crc32(stage.encode())}\x01\x00"


class Budget:
    """The spend of one run against ``max_cost``: admits chains, books what they cost."""

    def __init__(
        self,
        max_cost: float,
        stages: Sequence[Stage],
        prices: Pricing,
        *,
        spent: float = 0.0,
        source: str = "--max-cost",
    ) -> None:
        self.max_cost = max_cost
        self.source = source  # where the budget was set, for the refusal
        self.spent = spent  # a resumed run starts with what its earlier sessions spent
        self._stages = tuple(stages)
        self._prices = prices
        self._held: dict[int, dict[str, float]] = {}

    @property
    def reserved(self) -> float:
        return sum(sum(held.values()) for held in self._held.values())

    def admit(self, topic: Topic) -> bool:
        """Reserve ``topic``'s chain if it fits; False (nothing reserved) if it would not."""
        held = reservations(self._stages, topic, self._prices)
        if self.spent + self.reserved + sum(held.values()) > self.max_cost:
            return False
        self._held[topic.index] = held
        return True

    def book(self, topic: Topic, stage: str, cost: float | None) -> None:
        """``stage`` finished and cost ``cost`` now (0 when served from the store)."""
        held = self._held.get(topic.index, {})
        reserved = held.pop(stage, 0.0)
        self.spent += reserved if cost is None else cost

    def release(self, topic: Topic) -> None:
        """The chain ended: whatever it did not use is free again."""
        self._held.pop(topic.index, None)

    def refusal(self, topic: Topic) -> str:
        """Why ``topic`` was not started, in a sentence with the numbers."""
        need = sum(reservations(self._stages, topic, self._prices).values())
        return (
            f"budget: {self.source} ${self.max_cost:.4g} would be passed (spent ${self.spent:.4g}, "
            f"${self.reserved:.4g} reserved for chains in flight, the next chain may cost up "
            f"to ${need:.4g}); no further chains were started"
        )

    def snapshot(self) -> Mapping[str, float]:
        return {"max_cost": self.max_cost, "spent": round(self.spent, 9)}
