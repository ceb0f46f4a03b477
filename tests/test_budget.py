"""``--max-cost``: the checks a budget needs, each chain's reservation, and the engine
starting chains only while what is spent plus what is reserved stays within the budget."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator import (
    CallError,
    ChainFinished,
    ChainStarted,
    ChatRequest,
    ChatResponse,
    ConfigError,
    Engine,
    ModelPrice,
    Stage,
    StageFinished,
    Topic,
    load_plan,
)
from orchestrator._budget import Budget, check_budget, reservations
from orchestrator._prices import Prices
from orchestrator._templates import compile_template
from orchestrator._tokens import CHARS_PER_TOKEN, estimate_message_tokens, estimate_tokens

from .conftest import write
from .fakes import FakeClient, Recorder


def stage(
    name: str,
    prompt: str,
    *,
    model: str = "m",
    max_tokens: int | None = 10,
    system: str | None = None,
) -> Stage:
    """A stage built by hand, as load_plan would resolve it."""
    return Stage(
        name=name,
        agent=name,
        agent_file=Path(f"agents/{name}.yaml"),
        model=model,
        temperature=None,
        max_tokens=max_tokens,
        system=compile_template(system) if system is not None else None,
        prompt=compile_template(prompt),
    )


def topic(index: int, text: str, **fields: str) -> Topic:
    return Topic(index, text, text.lower().replace(" ", "-"), fields)


def dollar_a_token(*models: str) -> Prices:
    """One USD per token in and out, so costs read as token counts."""
    return Prices(
        {m: ModelPrice(input=1_000_000, output=1_000_000) for m in models or ("m",)},
        fallback=False,
    )


# Two stages of max_tokens 10. For a topic of two characters ("t0"): research's prompt
# "R t0" is 1 token + 4 per message + 3 = 8, plus 10 out = 18; write's prompt "W" (research
# empty) is 8, plus research's 10 it may see, plus 10 out = 28. 46 in all.
TWO_STAGES = (stage("research", "R {{ topic }}"), stage("write", "W {{ research }}"))
CHAIN_OF_T0 = 46.0


class WorstCaseClient(FakeClient):
    """Answers every request with all of its max_tokens, and reports usage by the
    estimator the simulated provider uses: the most a chain can really cost. Fails (400)
    any request whose prompt contains ``fail``."""

    def __init__(self, *, fail: str | None = None) -> None:
        def handler(request: ChatRequest) -> str:
            if fail is not None and fail in request.messages[-1]["content"]:
                raise CallError("HTTP 400: scripted failure", status=400)
            return "x" * CHARS_PER_TOKEN * (request.max_tokens or 0)

        super().__init__(handler)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        response = await super().complete(request)
        return replace(
            response,
            prompt_tokens=estimate_message_tokens(request.messages),
            completion_tokens=estimate_tokens(response.text),
        )


def chain_costs(recorder: Recorder) -> dict[int, float]:
    """What each topic's chain really cost, from its StageFinished events."""
    costs: dict[int, float] = {}
    for event in recorder.of(StageFinished):
        assert event.cost is not None
        costs[event.topic.index] = costs.get(event.topic.index, 0.0) + event.cost
    return costs


# --- check_budget ---


def test_without_a_budget_nothing_is_checked() -> None:
    """No --max-cost: unknown prices and missing max_tokens are fine."""
    unbounded = (stage("research", "R", model="nobody-prices-me", max_tokens=None),)
    check_budget(None, unbounded, Prices(fallback=False), source="--max-cost")


def test_a_model_without_a_price_is_a_config_error_naming_it_and_the_prices_section() -> None:
    stages = (stage("a", "A", model="m"), stage("b", "B", model="mystery-2"))
    with pytest.raises(ConfigError) as caught:
        check_budget(1.0, stages, dollar_a_token("m"), source="--max-cost")
    error = caught.value
    assert "'mystery-2'" in error.message
    assert "'m'" not in error.message, "a priced model is not named"
    assert error.field == "--max-cost"
    assert error.hint is not None and "prices:" in error.hint


def test_every_unpriced_model_is_named_once() -> None:
    stages = [stage(name, name, model=model) for name, model in zip("abc", "zaz", strict=True)]
    with pytest.raises(ConfigError, match="known for 'a', 'z', so"):
        check_budget(1.0, stages, Prices(fallback=False), source="chain.yaml: budget.max_cost")


def test_a_stage_without_max_tokens_is_a_config_error_naming_the_stage_and_its_agent() -> None:
    stages = (stage("research", "R"), stage("write", "W", max_tokens=None))
    with pytest.raises(ConfigError) as caught:
        check_budget(1.0, stages, dollar_a_token(), source="--max-cost")
    error = caught.value
    assert "'write'" in error.message and "max_tokens" in error.message
    assert error.hint is not None and "agents/write.yaml" in error.hint


@pytest.mark.parametrize("max_cost", [0.0, -1.0])
def test_a_budget_of_zero_or_less_is_a_config_error(max_cost: float) -> None:
    with pytest.raises(ConfigError, match="must be more than 0") as caught:
        check_budget(max_cost, TWO_STAGES, dollar_a_token(), source="--max-cost")
    assert caught.value.field == "--max-cost"


# --- reservations ---


def test_a_reservation_prices_the_prompt_with_earlier_outputs_empty_plus_their_max_tokens() -> None:
    held = reservations(TWO_STAGES, topic(0, "t0"), dollar_a_token())
    assert held == {"research": 18.0, "write": 28.0}
    assert sum(held.values()) == CHAIN_OF_T0


@pytest.fixture
def repo_chain(project: Path) -> tuple[tuple[Stage, ...], tuple[Topic, ...], Prices]:
    """The repo's own three agents (system prompts, default filters, long templates) over
    topics of different lengths, one with an extra field."""
    topics = project / "topics.yaml"
    write(
        topics,
        """
        - Tides
        - topic: The history of the printing press in early modern Europe
          audience: historians
        - Why is the sky blue?
        """,
    )
    plan = load_plan(topics)
    models = {s.model for s in plan.stages}
    prices = Prices({m: ModelPrice(input=0.15, output=0.60) for m in models}, fallback=False)
    return plan.stages, plan.topics, prices


@pytest.mark.parametrize("client", [WorstCaseClient, FakeClient], ids=["worst-case", "short"])
async def test_a_chain_never_costs_more_than_its_reservation(
    repo_chain: tuple[tuple[Stage, ...], tuple[Topic, ...], Prices], client: type[FakeClient]
) -> None:
    """Run through the engine: each chain's real cost is at most what was reserved for it,
    and the budget's spend is exactly what the stages cost."""
    stages, topics, prices = repo_chain
    budget = Budget(1000.0, stages, prices)
    recorder = Recorder()
    await Engine(
        stages, client=client(), concurrency=2, observers=[recorder], prices=prices, budget=budget
    ).run(topics)

    costs = chain_costs(recorder)
    assert sorted(costs) == [t.index for t in topics]
    for t in topics:
        assert costs[t.index] <= sum(reservations(stages, t, prices).values()), t.text
    assert budget.spent == pytest.approx(sum(costs.values()))
    assert budget.reserved == 0


async def test_a_reservation_covers_an_earlier_output_used_twice() -> None:
    """A prompt may quote an earlier output more than once (here in the system message and
    in the prompt): each copy is paid for, so each must be reserved."""
    stages = (
        stage("research", "R {{ topic }}"),
        stage("write", "Write from {{ research }}", system="Facts: {{ research }}"),
    )
    prices = dollar_a_token()
    t = topic(0, "t0")
    recorder = Recorder()
    await Engine(
        stages, client=WorstCaseClient(), concurrency=1, observers=[recorder], prices=prices
    ).run([t])
    assert chain_costs(recorder)[0] <= sum(reservations(stages, t, prices).values())


async def test_a_reservation_covers_a_prompt_that_renders_only_with_real_outputs() -> None:
    """A template that fails on an *empty* earlier output (the first line of the research)
    passes the plan's checks and renders fine on the real output, prompt text and all."""
    long_prompt = "Title: {{ research.splitlines()[0] }}. " + "Write it well. " * 40
    stages = (stage("research", "R {{ topic }}"), stage("write", long_prompt))
    prices = dollar_a_token()
    t = topic(0, "t0")
    recorder = Recorder()
    await Engine(
        stages, client=WorstCaseClient(), concurrency=1, observers=[recorder], prices=prices
    ).run([t])
    assert [e.stage for e in recorder.of(StageFinished)] == ["research", "write"]
    assert chain_costs(recorder)[0] <= sum(reservations(stages, t, prices).values())


# --- Budget: admit, book, release ---


def test_admit_reserves_chains_while_they_fit_exactly_and_then_refuses() -> None:
    budget = Budget(2 * CHAIN_OF_T0, TWO_STAGES, dollar_a_token())
    assert budget.admit(topic(0, "t0"))
    assert budget.admit(topic(1, "t1")), "spent + reserved + next == max_cost still fits"
    assert budget.reserved == 2 * CHAIN_OF_T0


def test_a_refused_chain_reserves_nothing() -> None:
    budget = Budget(CHAIN_OF_T0 + 10, TWO_STAGES, dollar_a_token())
    assert budget.admit(topic(0, "t0"))
    assert not budget.admit(topic(1, "t1"))
    assert budget.reserved == CHAIN_OF_T0
    budget.release(topic(1, "t1"))  # a refused chain has nothing to release
    assert budget.reserved == CHAIN_OF_T0
    assert budget.spent == 0


def test_admit_counts_what_was_spent_before() -> None:
    """A resumed run's Budget(spent=...) starts from its earlier sessions' spend."""
    assert Budget(CHAIN_OF_T0, TWO_STAGES, dollar_a_token()).admit(topic(0, "t0"))
    resumed = Budget(CHAIN_OF_T0, TWO_STAGES, dollar_a_token(), spent=0.5)
    assert not resumed.admit(topic(0, "t0"))
    assert "spent $0.5" in resumed.refusal(topic(0, "t0"))


def test_book_replaces_a_stage_reservation_with_its_real_cost() -> None:
    budget = Budget(100.0, TWO_STAGES, dollar_a_token())
    t = topic(0, "t0")
    budget.admit(t)
    budget.book(t, "research", 5.0)
    assert (budget.spent, budget.reserved) == (5.0, 28.0)
    budget.book(t, "write", 0.0)  # served from the store
    assert (budget.spent, budget.reserved) == (5.0, 0.0)


def test_a_stage_of_unknown_cost_is_booked_at_its_reservation() -> None:
    """Never as free: an unknown cost counts the most the stage could have cost."""
    budget = Budget(100.0, TWO_STAGES, dollar_a_token())
    t = topic(0, "t0")
    budget.admit(t)
    budget.book(t, "write", None)
    assert (budget.spent, budget.reserved) == (28.0, 18.0)


def test_release_frees_the_stages_a_chain_did_not_run() -> None:
    budget = Budget(100.0, TWO_STAGES, dollar_a_token())
    t0, t1 = topic(0, "t0"), topic(1, "t1")
    budget.admit(t0)
    budget.admit(t1)
    budget.book(t0, "research", 3.0)
    budget.release(t0)  # failed at write
    assert (budget.spent, budget.reserved) == (3.0, CHAIN_OF_T0), "t1's reservation stays"


# --- the engine with a budget ---


def budget_engine(
    topics: int, max_cost: float, *, concurrency: int, spent: float = 0.0, fail: str | None = None
) -> tuple[Engine, Budget, Recorder, list[Topic]]:
    prices = dollar_a_token()
    budget = Budget(max_cost, TWO_STAGES, prices, spent=spent)
    recorder = Recorder()
    engine = Engine(
        TWO_STAGES,
        client=WorstCaseClient(fail=fail),
        concurrency=concurrency,
        observers=[recorder],
        prices=prices,
        budget=budget,
    )
    return engine, budget, recorder, [topic(i, f"t{i}") for i in range(topics)]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_the_engine_starts_chains_only_while_they_fit(concurrency: int) -> None:
    """Chains of 46 against 150: three fit, whether one at a time (46, 92, 138, then 184
    would pass) or three at once (138 reserved; as the first ends, 46 + 92 + 46 would
    pass); the other seven never start, and the run says why."""
    engine, budget, recorder, topics = budget_engine(10, 150.0, concurrency=concurrency)
    results = await engine.run(topics)

    assert len(recorder.of(ChainStarted)) == 3
    assert [r.status for r in results] == ["succeeded"] * 3
    assert len(recorder.of(ChainFinished)) == 3
    assert engine.stopping and engine.halt_reason is None
    assert engine.stop_reason is not None
    assert "budget" in engine.stop_reason and "--max-cost $150" in engine.stop_reason
    assert budget.spent == 3 * CHAIN_OF_T0
    assert budget.spent <= budget.max_cost
    assert budget.reserved == 0


async def test_a_budget_too_small_for_one_chain_starts_none() -> None:
    engine, budget, recorder, topics = budget_engine(3, CHAIN_OF_T0 - 1, concurrency=2)
    assert await engine.run(topics) == []
    assert recorder.events == []
    assert engine.stop_reason is not None and "up to $46" in engine.stop_reason
    assert budget.spent == 0


async def test_a_chain_failing_at_its_first_stage_frees_its_whole_reservation() -> None:
    """Room for one chain: t0 fails at research and releases it, so t1 can start."""
    engine, budget, recorder, topics = budget_engine(2, CHAIN_OF_T0, concurrency=1, fail="R t0")
    results = await engine.run(topics)
    assert [(r.topic.text, r.status) for r in results] == [("t0", "failed"), ("t1", "succeeded")]
    assert engine.stop_reason is None
    assert (budget.spent, budget.reserved) == (CHAIN_OF_T0, 0.0)


async def test_a_resumed_budget_counts_the_earlier_spend() -> None:
    """100 spent in an earlier session: only one more chain of 46 fits under 150."""
    engine, budget, recorder, topics = budget_engine(5, 150.0, concurrency=1, spent=100.0)
    await engine.run(topics)
    assert len(recorder.of(ChainStarted)) == 1
    assert budget.spent == 100.0 + CHAIN_OF_T0
    assert engine.stop_reason is not None and "spent $146" in engine.stop_reason
