"""What a model call costs: prices per model, from the chain file or from genai-prices.

Prices are data, not code. The chain file's ``prices:`` section (USD per 1M tokens, as
providers publish them) wins; any model not listed there is looked up in `genai-prices
<https://github.com/pydantic/genai-prices>`_, pydantic's maintained price table. A model
found in neither has no price, and its cost is ``None``, never 0: a cost of 0 would read as
"free" and let ``--max-cost`` spend without limit.

Why genai-prices rather than a table of our own (checked against 0.2.3):

- It works offline by default. Its data ships inside the wheel (``genai_prices/data.py``);
  nothing reads the network at import or when pricing. The only network code is
  ``UpdatePrices``, a background fetch from GitHub that runs only when someone starts it
  explicitly; we never do.
- It adds nothing else to install: its dependencies, pydantic and httpx2, are already ours.
  The wheel is 173 KB (3 MB installed, mostly the data).
- It is kept up to date by people who watch price pages, with dated snapshots
  (``gpt-4o-2024-05-13`` has its own price; ``gpt-4o-mini-2024-07-18`` is gpt-4o-mini),
  price changes over time, and the cached-input discount of every model.
- It is fast enough: importing it and loading its data takes about 0.15 s, once, and only
  when a price is first needed; a lookup takes well under a millisecond and is cached.

How its data maps onto ours:

- A model is looked up as an OpenAI model first (this tool speaks the OpenAI API), then by
  name alone, which lets genai-prices guess the provider from the name (``claude-…``,
  ``gemini-…``). For a model served by someone else (Groq, Together, …) that guess can be
  wrong: list the model under ``prices:``. Its matching ignores case.
- When it does not know a dated snapshot (``-YYYY-MM-DD``), the undated name is tried.
- A price that changes on a date is taken as it is today. Service tiers (flex, priority,
  batch) and non-token fees (web searches) are not counted: we price standard calls.
- Cache writes are not counted: OpenAI does not charge them, and OpenAI-style usage does
  not report them.
- Tiered prices (e.g. gpt-5.4: every token costs more once the prompt passes 272k tokens)
  give :meth:`Prices.price` the base tier; :meth:`Prices.cost` switches tier by the prompt's
  size, as the provider bills.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice as _GenaiPrice

_PER_MILLION = 1_000_000
# A dated snapshot, as OpenAI names them: gpt-4o-mini-2024-07-18.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in USD per token."""

    input: float
    """USD per prompt token not served from the provider's cache."""
    cached_input: float
    """USD per prompt token served from the provider's cache (= ``input`` without a discount)."""
    output: float
    """USD per completion token (reasoning tokens included)."""
    source: str
    """Where the price came from: ``chain file`` or ``genai-prices <version>``."""


class ModelPrice(BaseModel):
    """One model's price in the chain file's ``prices:`` section, in USD per 1M tokens."""

    model_config = ConfigDict(extra="forbid")

    input: NonNegativeFloat = Field(
        allow_inf_nan=False, description="USD per 1M input (prompt) tokens"
    )
    output: NonNegativeFloat = Field(
        allow_inf_nan=False, description="USD per 1M output (completion) tokens"
    )
    cached_input: NonNegativeFloat | None = Field(
        None,
        allow_inf_nan=False,
        description="USD per 1M input tokens served from the provider's prompt cache "
        "(default: the same as input)",
    )

    def per_token(self, source: str = "chain file") -> Price:
        """This price per token."""
        cached = self.input if self.cached_input is None else self.cached_input
        return Price(
            input=self.input / _PER_MILLION,
            cached_input=cached / _PER_MILLION,
            output=self.output / _PER_MILLION,
            source=source,
        )


# A tiered price: above ``start`` prompt tokens, every token of the call costs ``price``.
_Tiers = tuple[tuple[int, Price], ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    price: Price
    tiers: _Tiers = ()

    def for_prompt(self, prompt_tokens: int) -> Price:
        for start, price in reversed(self.tiers):
            if prompt_tokens > start:
                return price
        return self.price


class Prices:
    """Prices per model: the chain file's ``overrides`` first, then genai-prices.

    ``fallback=False`` uses only the overrides (for tests, or to price nothing by guess).
    Lookups are cached per model name, for the life of this object.
    """

    def __init__(
        self, overrides: Mapping[str, ModelPrice] | None = None, *, fallback: bool = True
    ) -> None:
        self._overrides = dict(overrides or {})
        self._fallback = fallback
        self._cache: dict[str, _Entry | None] = {}

    def price(self, model: str) -> Price | None:
        """``model``'s price per token (its base tier, if tiered); None when unknown."""
        entry = self._entry(model)
        return entry.price if entry else None

    def cost(
        self, model: str, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        """USD for one call; None when ``model``'s price is unknown.

        ``prompt_tokens`` includes the ``cached_tokens`` (as OpenAI's usage reports them).
        Rounded to 1e-9 USD so sums print as 0.3, not 0.30000000000000004.
        """
        entry = self._entry(model)
        if entry is None:
            return None
        price = entry.for_prompt(prompt_tokens)
        # A provider reporting more cached tokens than prompt tokens is wrong; don't let it
        # turn the uncached part negative.
        cached = max(0, min(cached_tokens, prompt_tokens))
        usd = (
            (prompt_tokens - cached) * price.input
            + cached * price.cached_input
            + completion_tokens * price.output
        )
        return round(usd, 9)

    def unknown(self, models: Iterable[str]) -> list[str]:
        """The models among ``models`` with no price, sorted and without repeats."""
        return sorted({model for model in models if self._entry(model) is None})

    def _entry(self, model: str) -> _Entry | None:
        if model not in self._cache:
            self._cache[model] = self._find(model)
        return self._cache[model]

    def _find(self, model: str) -> _Entry | None:
        if model in self._overrides:
            return _Entry(self._overrides[model].per_token())
        if not self._fallback:
            return None
        entry = _from_genai_prices(model)
        if entry is None and _SNAPSHOT.search(model):
            entry = _from_genai_prices(_SNAPSHOT.sub("", model))
        return entry


def _from_genai_prices(model: str) -> _Entry | None:
    """``model``'s price from genai-prices' bundled data, or None if it has none."""
    # Imported here: it takes ~0.15 s, which runs that never price a model should not pay.
    import genai_prices
    from genai_prices import Usage, calc_price

    empty = Usage(input_tokens=0, output_tokens=0)
    for provider in ("openai", None):
        try:
            found = calc_price(empty, model, provider_id=provider)
        except LookupError:
            continue
        source = f"genai-prices {genai_prices.__version__}"
        if found.auto_update_timestamp is not None:
            # Someone else in this process started genai-prices' UpdatePrices.
            source += f" (updated {found.auto_update_timestamp:%Y-%m-%d %H:%M})"
        return _to_entry(found.model_price, source)
    return None


def _to_entry(model_price: _GenaiPrice, source: str) -> _Entry | None:
    """Convert genai-prices' per-1M prices, tiered or not, to ours; None without a token price."""
    from genai_prices.types import TieredPrices

    fields = (model_price.input_mtok, model_price.cache_read_mtok, model_price.output_mtok)
    starts = sorted({t.start for f in fields if isinstance(f, TieredPrices) for t in f.tiers})

    def at(value: Decimal | TieredPrices | None, start: int | None) -> Decimal | None:
        """The price of ``value`` once the prompt passes ``start`` (None: the base tier)."""
        if not isinstance(value, TieredPrices):
            return value
        price = value.base
        for tier in value.tiers:  # sorted by start
            if start is not None and tier.start <= start:
                price = tier.price
        return price

    def tier(start: int | None) -> Price | None:
        input_, cached, output = (at(f, start) for f in fields)
        if input_ is None or output is None:
            return None  # audio, embeddings, per-request models: not priced per token here
        return ModelPrice(
            input=float(input_),
            output=float(output),
            cached_input=None if cached is None else float(cached),
        ).per_token(source)

    base = tier(None)
    if base is None:
        return None
    tiers = tuple((start, price) for start in starts if (price := tier(start)) is not None)
    return _Entry(base, tiers)
