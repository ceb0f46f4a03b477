"""Prices per model: chain-file overrides, genai-prices' bundled data, and the cost of a call.

genai-prices' numbers change between its releases, so tests compare with what its data says
rather than with numbers typed in here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice as GenaiPrice
from genai_prices.types import Tier, TieredPrices
from pydantic import ValidationError

from orchestrator.config._prices import ModelPrice, Price, Prices, _to_entry

MINI = ModelPrice(input=0.15, output=0.60, cached_input=0.075)


def listed(model: str, key: str) -> float:
    """genai-prices' own per-token price of ``model`` (``input``, ``cache_read``, ``output``)."""
    data = calc_price(Usage(input_tokens=0), model, provider_id="openai").model_price
    value = getattr(data, f"{key}_mtok")
    assert isinstance(value, Decimal), value
    return float(value) / 1e6


def genai_total(model: str, *, prompt: int, completion: int, cached: int = 0) -> float:
    usage = Usage(input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion)
    return float(calc_price(usage, model, provider_id="openai").total_price)


def test_per_million_prices_become_per_token() -> None:
    assert MINI.per_token() == Price(
        input=0.15 / 1e6, cached_input=0.075 / 1e6, output=0.60 / 1e6, source="chain file"
    )


def test_cached_input_defaults_to_input() -> None:
    price = ModelPrice(input=2.0, output=8.0).per_token()
    assert price.cached_input == price.input


def test_an_override_wins_over_genai_prices() -> None:
    prices = Prices({"gpt-4o-mini": ModelPrice(input=1.0, output=2.0)})
    assert prices.price("gpt-4o-mini") == Price(1e-6, 1e-6, 2e-6, "chain file")
    assert prices.cost("gpt-4o-mini", prompt_tokens=1000, completion_tokens=1000) == 0.003


def test_cached_tokens_are_billed_at_the_cached_price() -> None:
    """600 uncached at 0.15, 400 cached at 0.075, 200 out at 0.60 (USD per 1M)."""
    prices = Prices({"m": MINI}, fallback=False)
    cost = prices.cost("m", prompt_tokens=1000, cached_tokens=400, completion_tokens=200)
    uncached = prices.cost("m", prompt_tokens=1000, completion_tokens=200)
    assert cost == 0.00024
    assert uncached is not None and cost < uncached


def test_more_cached_than_prompt_tokens_never_makes_a_negative_part() -> None:
    prices = Prices({"m": MINI}, fallback=False)
    assert prices.cost("m", prompt_tokens=100, cached_tokens=500, completion_tokens=0) == 7.5e-6


def test_cost_is_rounded_to_a_nanodollar() -> None:
    """0.1 + 0.2 USD reads 0.3 in JSON, not 0.30000000000000004."""
    prices = Prices({"m": ModelPrice(input=0.1, output=0.2)}, fallback=False)
    cost = prices.cost("m", prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert repr(cost) == "0.3"


def test_tiny_costs_survive_rounding() -> None:
    prices = Prices({"m": ModelPrice(input=0.1, output=0.2)}, fallback=False)
    assert prices.cost("m", prompt_tokens=1, completion_tokens=1) == 3e-7


def test_unknown_model_costs_none_not_zero_and_is_listed() -> None:
    prices = Prices({"sim-small": MINI})
    assert prices.price("no-such-model") is None
    assert prices.cost("no-such-model", prompt_tokens=0, completion_tokens=0) is None
    models = ["zz-unknown", "gpt-4o-mini", "sim-small", "no-such-model", "zz-unknown"]
    assert prices.unknown(models) == ["no-such-model", "zz-unknown"]


def test_fallback_false_uses_only_the_overrides() -> None:
    prices = Prices({"sim-small": MINI}, fallback=False)
    assert prices.price("gpt-4o") is None
    assert prices.unknown(["gpt-4o", "sim-small"]) == ["gpt-4o"]


def test_a_dated_snapshot_finds_its_base_price() -> None:
    """Snapshots genai-prices lists, and ones it does not know yet, price as the base model."""
    prices = Prices()
    base = prices.price("gpt-4o-mini")
    assert base is not None
    assert prices.price("gpt-4o-mini-2024-07-18") == base
    assert prices.price("gpt-4o-mini-2099-01-01") == base  # a date no data can know


def test_a_snapshot_with_its_own_price_keeps_it() -> None:
    """The name as given is tried before the date is dropped: gpt-4o-2024-05-13 cost more."""
    prices = Prices()
    snapshot, base = prices.price("gpt-4o-2024-05-13"), prices.price("gpt-4o")
    assert snapshot is not None and base is not None
    assert snapshot.input == listed("gpt-4o-2024-05-13", "input")
    assert snapshot != base


def test_overrides_match_exactly() -> None:
    """No snapshot or case folding for the chain file's names: what you list is what prices."""
    prices = Prices({"my-model": MINI}, fallback=False)
    assert prices.price("my-model-2024-01-01") is None
    assert prices.price("My-Model") is None


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4o"])
def test_genai_prices_knows_gpt_4o_and_mini(model: str) -> None:
    price = Prices().price(model)
    assert price is not None
    assert price.source.startswith("genai-prices ")
    assert 0 < price.cached_input <= price.input < price.output
    assert price.input == listed(model, "input")
    assert price.output == listed(model, "output")
    assert price.cached_input == listed(model, "cache_read")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini", "gpt-5-mini"])
def test_cost_agrees_with_genai_prices_own_calculator(model: str) -> None:
    cost = Prices().cost(model, prompt_tokens=12_345, cached_tokens=2_048, completion_tokens=987)
    assert cost == pytest.approx(genai_total(model, prompt=12_345, cached=2_048, completion=987))


def test_lookups_are_cached_per_model() -> None:
    prices = Prices()
    assert prices.price("gpt-4o") is prices.price("gpt-4o")


def test_a_tiered_price_switches_tier_by_prompt_size() -> None:
    """Past the threshold every token costs the tier's price (the provider's cliff)."""
    tiered = GenaiPrice(
        input_mtok=TieredPrices(base=Decimal(2), tiers=[Tier(start=272_000, price=Decimal(4))]),
        cache_read_mtok=Decimal("0.5"),
        output_mtok=TieredPrices(base=Decimal(10), tiers=[Tier(start=272_000, price=Decimal(15))]),
    )
    entry = _to_entry(tiered, "test")
    assert entry is not None
    assert entry.price == Price(2e-6, 0.5e-6, 10e-6, "test")
    assert entry.for_prompt(272_000) == entry.price
    assert entry.for_prompt(272_001) == Price(4e-6, 0.5e-6, 15e-6, "test")


def test_tiered_models_in_the_data_cost_what_genai_prices_says() -> None:
    model = "gpt-5.4"
    try:
        data = calc_price(Usage(input_tokens=0), model, provider_id="openai").model_price
    except LookupError:
        pytest.skip(f"genai-prices no longer lists {model}")
    if not isinstance(data.input_mtok, TieredPrices):
        pytest.skip(f"{model} is no longer tiered in genai-prices")
    prices = Prices()
    for prompt in (1_000, 300_000):
        cost = prices.cost(model, prompt_tokens=prompt, cached_tokens=500, completion_tokens=2_000)
        expected = genai_total(model, prompt=prompt, cached=500, completion=2_000)
        assert cost == pytest.approx(expected)


def test_a_model_without_token_prices_is_unknown() -> None:
    """Audio or per-request models have no per-token price; a guess of 0 would read as free."""
    assert _to_entry(GenaiPrice(input_mtok=Decimal(1)), "test") is None
    assert _to_entry(GenaiPrice(requests_kcount=Decimal(1)), "test") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"input": 1, "output": 2, "cache": 0.5},
        {"input": -1, "output": 2},
        {"input": float("inf"), "output": 2},
        {"input": 1},
    ],
)
def test_chain_file_prices_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ModelPrice.model_validate(bad)


def test_importing_and_pricing_never_touches_the_network() -> None:
    """In a fresh interpreter, with every way to open a connection refused and proxies
    pointing nowhere, genai-prices still prices models and starts no updater thread."""
    script = textwrap.dedent(
        """
        import socket, threading

        def refuse(*args, **kwargs):
            raise RuntimeError("network used")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from orchestrator.config._prices import Prices

        prices = Prices()
        for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "o3-mini"):
            assert prices.price(model) is not None, model
        assert prices.price("no-such-model") is None
        threads = [t.name for t in threading.enumerate()]
        assert not any(name.startswith("genai_prices") for name in threads), threads
        print("ok")
        """
    )
    unroutable = "http://127.0.0.1:9"
    env = {"HTTP_PROXY": unroutable, "HTTPS_PROXY": unroutable, "ALL_PROXY": unroutable}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},  # clean_environ already removed provider credentials
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
