"""``--max-cost``: the checks a budget needs, each chain's reservation, and the engine
starting chains only while what is spent plus what is reserved stays within the budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jinja2
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
from orchestrator.config._prices import Prices
from orchestrator.config._templates import compile_template
from orchestrator.engine._budget import FALLBACK_PROMPT_TOKENS, Budget, check_budget, reservations
from orchestrator.provider._tokens import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    estimate_tokens,
)

from ..conftest import write
from ..fakes import FakeClient, Recorder


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


def utf8(text: str) -> int:
    """The most tokens ``text`` can be, whatever the tokenizer: one per UTF-8 byte."""
    return len(text.encode("utf-8"))


def overheads(messages: int) -> int:
    """The tokens a chat request adds around the text of its ``messages``."""
    return MESSAGE_OVERHEAD * messages + REPLY_PRIMING


# Two stages of max_tokens 10. For a topic of two characters ("t0"), research's prompt "R t0"
# is one message of 4 bytes, plus 10 out. Write's renders as "W " and research's output (the
# space stays: the output ends the text, so nothing strips it), so 2 bytes plus research's
# max_tokens, plus 10 out.
TWO_STAGES = (stage("research", "R {{ topic }}"), stage("write", "W {{ research }}"))
RESEARCH_OF_T0 = overheads(1) + utf8("R t0") + 10
WRITE_OF_T0 = overheads(1) + utf8("W ") + 10 + 10
CHAIN_OF_T0 = float(RESEARCH_OF_T0 + WRITE_OF_T0)

# What that chain really costs with WorstCaseClient (four characters a token): research's
# "R t0" is 1 token and write's "W " + research's 10 tokens of "xxxx" is 11; each answers 10.
SPENT_ON_T0 = float(
    overheads(1) + estimate_tokens("R t0") + 10
    + overheads(1) + estimate_tokens("W " + "x" * CHARS_PER_TOKEN * 10) + 10
)  # fmt: skip


class TokenizerClient(FakeClient):
    """A provider whose tokenizer counts ``count(text)`` tokens in a text. Answers every
    request with all of its ``max_tokens``, each token ``unit``, and reports its usage as the
    provider would bill it: the text of every message, plus the overheads around them. Fails
    (400) any request whose prompt contains ``fail``."""

    def __init__(self, count: Callable[[str], int], unit: str, *, fail: str | None = None):
        def handler(request: ChatRequest) -> str:
            if fail is not None and fail in request.messages[-1]["content"]:
                raise CallError("HTTP 400: scripted failure", status=400)
            return unit * (request.max_tokens or 0)

        super().__init__(handler)
        self.count = count

    async def complete(self, request: ChatRequest) -> ChatResponse:
        response = await super().complete(request)
        text = sum(self.count(m["content"]) for m in request.messages)
        return replace(
            response,
            prompt_tokens=text + overheads(len(request.messages)),
            completion_tokens=self.count(response.text),
        )


class WorstCaseClient(TokenizerClient):
    """Answers with all of its max_tokens and reports usage by the estimator the simulated
    provider uses (four characters a token): the most a chain can cost with that provider.
    A denser tokenizer costs more for the same text; see the clients below."""

    def __init__(self, *, fail: str | None = None) -> None:
        super().__init__(estimate_tokens, "x" * CHARS_PER_TOKEN, fail=fail)


class DenseClient(TokenizerClient):
    """Twice as dense as the estimator: two characters a token."""

    def __init__(self, *, unit: str = "xx") -> None:
        super().__init__(lambda text: (len(text) + 1) // 2, unit)


class CJKClient(TokenizerClient):
    """One token a character, and answers in CJK characters of three UTF-8 bytes each."""

    def __init__(self) -> None:
        super().__init__(len, "中")


class ByteClient(TokenizerClient):
    """One token a UTF-8 byte: the densest a byte-level tokenizer can be, where the bound
    is exact."""

    def __init__(self, *, unit: str = "x") -> None:
        super().__init__(utf8, unit)


TOKENIZERS = pytest.mark.parametrize(
    "client",
    [WorstCaseClient, DenseClient, CJKClient, ByteClient],
    ids=["4-chars", "2-chars", "cjk", "byte"],
)


def chain_costs(recorder: Recorder) -> dict[int, float]:
    """What each topic's chain really cost, from its StageFinished events."""
    costs: dict[int, float] = {}
    for event in recorder.of(StageFinished):
        assert event.cost is not None
        costs[event.topic.index] = costs.get(event.topic.index, 0.0) + event.cost
    return costs


async def run_one(stages: tuple[Stage, ...], t: Topic, client: FakeClient) -> Recorder:
    recorder = Recorder()
    await Engine(
        stages, client=client, concurrency=1, observers=[recorder], prices=dollar_a_token()
    ).run([t])
    return recorder


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


# --- reservations: the numbers ---


def test_a_reservation_prices_the_prompts_bytes_and_each_earlier_outputs_max_tokens() -> None:
    held = reservations(TWO_STAGES, topic(0, "t0"), dollar_a_token())
    assert held == {"research": RESEARCH_OF_T0, "write": WRITE_OF_T0}
    assert sum(held.values()) == CHAIN_OF_T0


def test_a_prompts_own_text_counts_one_token_per_utf8_byte() -> None:
    """Not four characters a token: "é" counts 2 and each CJK character 3."""
    text = "Café 東京"
    held = reservations(TWO_STAGES, topic(0, text), dollar_a_token())
    assert utf8(f"R {text}") == len("R Caf") + 2 + 1 + 2 * 3
    assert held["research"] == overheads(1) + utf8(f"R {text}") + 10


def test_every_message_and_every_earlier_output_is_counted() -> None:
    """A system message adds its overhead and its text; each earlier output counts its own
    stage's max_tokens, and the stage's own max_tokens go out."""
    stages = (
        stage("research", "R {{ topic }}", max_tokens=10),
        stage("write", "W {{ research }}", max_tokens=20),
        stage("edit", "Draft: {{ write }}\nFacts: {{ research }}", system="Edit.", max_tokens=30),
    )
    held = reservations(stages, topic(0, "t0"), dollar_a_token())
    own = utf8("Edit.") + utf8("Draft: \nFacts: ")
    assert held["edit"] == overheads(2) + own + 20 + 10 + 30


@pytest.mark.parametrize(
    ("prompt", "system", "own", "times"),
    [
        ("{{ research }} and {{ research }}", None, " and ", 2),
        ("Write from {{ research }}", "Facts: {{ research }}", "Facts: Write from ", 2),
        ("W {{ research | upper }}", None, "W ", 1),
        ("{{ research | upper }} {{ research }}", None, " ", 2),
        ("{{ research | upper }}/{{ research | lower }}/{{ research | title }}", None, "//", 3),
        ("{% for _ in range(3) %}({{ research }}){% endfor %}", None, "()()()", 3),
    ],
    ids=["twice", "system-and-prompt", "upper", "upper-and-plain", "three-filters", "loop"],
)
def test_an_earlier_output_counts_its_max_tokens_each_place_it_appears(
    prompt: str, system: str | None, own: str, times: int
) -> None:
    """However it is written in (a filter, a second message, a loop), each copy is paid for."""
    stages = (stage("research", "R {{ topic }}"), stage("write", prompt, system=system))
    held = reservations(stages, topic(0, "t0"), dollar_a_token())
    messages = 1 if system is None else 2
    assert held["write"] == overheads(messages) + utf8(own) + times * 10 + 10


_JSON_TEMPLATES = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
_JSON_TEMPLATES.filters["fromjson"] = json.loads


@pytest.mark.parametrize(
    "failing",
    [
        stage("edit", "Second word: {{ write.split()[1] }}", max_tokens=30),
        replace(
            stage("edit", "E", max_tokens=30),
            prompt=_JSON_TEMPLATES.from_string("Title: {{ (write | fromjson).title }}"),
        ),
    ],
    ids=["second-word", "json"],
)
def test_a_template_that_fails_on_the_markers_gets_the_fallback_bound(failing: Stage) -> None:
    """Nothing rendered bounds such a prompt: every earlier output three times over, plus a
    long prompt's worth."""
    stages = (
        stage("research", "R {{ topic }}", max_tokens=10),
        stage("write", "W {{ research }}", max_tokens=20),
        failing,
    )
    held = reservations(stages, topic(0, "t0"), dollar_a_token())
    assert held["edit"] == 3 * (10 + 20) + FALLBACK_PROMPT_TOKENS + 30


@pytest.mark.parametrize(
    "prompt",
    [
        "N: {{ write | int + 1 }}",
        "J: {{ write | tojson }}",
        "Tail: {{ write[20:] }}",
        "{{ write }} (it begins {{ write[:3] }})",
    ],
    ids=["int", "tojson", "slice", "whole-and-slice"],
)
def test_an_output_used_but_not_as_its_text_gets_the_fallback_bound(prompt: str) -> None:
    """BUG in _budget.py. These render with the marker, but not the marker: ``int`` turns it
    into 0, ``tojson`` escapes its control characters, a slice cuts it. No whole marker is
    found, so write's output counts the few bytes it rendered as, not its max_tokens; yet
    the real output renders to as many tokens (a number of 20 digits, the text quoted, its
    tail, its first characters of up to 3 bytes each)."""
    stages = (
        stage("research", "R {{ topic }}", max_tokens=10),
        stage("write", "W {{ research }}", max_tokens=20),
        stage("edit", prompt, max_tokens=30),
    )
    held = reservations(stages, topic(0, "t0"), dollar_a_token())
    assert held["edit"] == 3 * (10 + 20) + FALLBACK_PROMPT_TOKENS + 30


# --- reservations: a chain run through the engine never costs more ---


@pytest.fixture
def repo_chain(project: Path) -> tuple[tuple[Stage, ...], tuple[Topic, ...], Prices]:
    """The repo's own three agents (system prompts, default filters, long templates) over
    topics of different lengths and scripts, one with an extra field."""
    topics = project / "topics.yaml"
    write(
        topics,
        """
        - Tides
        - topic: The history of the printing press in early modern Europe
          audience: historians
        - Why is the sky blue?
        - topic: 潮汐はなぜ起こるのか
          audience: 高校生
        """,
    )
    plan = load_plan(topics)
    models = {s.model for s in plan.stages}
    prices = Prices({m: ModelPrice(input=0.15, output=0.60) for m in models}, fallback=False)
    return plan.stages, plan.topics, prices


@pytest.mark.parametrize(
    "client",
    [WorstCaseClient, DenseClient, CJKClient, ByteClient, FakeClient],
    ids=["4-chars", "2-chars", "cjk", "byte", "short"],
)
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


async def test_the_bound_is_exact_for_a_tokenizer_of_one_token_per_byte(
    repo_chain: tuple[tuple[Stage, ...], tuple[Topic, ...], Prices],
) -> None:
    """A one-byte-a-token tokenizer answering all its max_tokens costs the whole reservation:
    the bound is the least that holds whatever the tokenizer."""
    stages, topics, prices = repo_chain
    recorder = Recorder()
    await Engine(
        stages, client=ByteClient(), concurrency=1, observers=[recorder], prices=prices
    ).run(topics)
    costs = chain_costs(recorder)
    for t in topics:
        assert costs[t.index] == pytest.approx(sum(reservations(stages, t, prices).values()))


@TOKENIZERS
@pytest.mark.parametrize(
    ("prompt", "system"),
    [
        ("Write from {{ research }}", "Facts: {{ research }}"),
        ("{{ research }}\n---\n{{ research }}", None),
        ("Shout: {{ research | upper }}", None),
    ],
    ids=["system-and-prompt", "twice", "upper"],
)
async def test_a_reservation_covers_an_earlier_output_used_again_or_filtered(
    client: type[TokenizerClient], prompt: str, system: str | None
) -> None:
    """A prompt may quote an earlier output more than once, or through a filter: each copy
    is paid for, so each must be reserved."""
    stages = (stage("research", "R {{ topic }}"), stage("write", prompt, system=system))
    t = topic(0, "潮汐 tides")
    recorder = await run_one(stages, t, client())
    assert [e.stage for e in recorder.of(StageFinished)] == ["research", "write"]
    assert chain_costs(recorder)[0] <= sum(reservations(stages, t, dollar_a_token()).values())


async def test_a_reservation_covers_a_prompt_that_renders_only_with_real_outputs() -> None:
    """A template that fails on the markers (the research's second word) passes the plan's
    checks and renders fine on the real output, prompt text and all: the fallback covers it."""
    long_prompt = "Second word: {{ research.split()[1] }}. " + "Write it well. " * 40
    stages = (stage("research", "R {{ topic }}"), stage("write", long_prompt))
    t = topic(0, "t0")
    recorder = await run_one(stages, t, DenseClient(unit="x "))
    assert [e.stage for e in recorder.of(StageFinished)] == ["research", "write"]
    assert chain_costs(recorder)[0] <= sum(reservations(stages, t, dollar_a_token()).values())


@pytest.mark.parametrize(
    "prompt",
    ["N: {{ research | int + 1 }}", "J: {{ research | tojson }}", "Tail: {{ research[20:] }}"],
    ids=["int", "tojson", "slice"],
)
async def test_a_budget_holds_for_an_output_used_but_not_as_its_text(prompt: str) -> None:
    """BUG in _budget.py (see test_an_output_used_but_not_as_its_text_gets_the_fallback_bound):
    research answers 100 digits; write's prompt quotes them, or the number plus one, or all
    but 20 of them, yet was reserved as if research's output were a few bytes. A budget of
    exactly one chain's reservation is passed."""
    stages = (stage("research", "R {{ topic }}", max_tokens=100), stage("write", prompt))
    t = topic(0, "t0")
    prices = dollar_a_token()
    budget = Budget(sum(reservations(stages, t, prices).values()), stages, prices)
    recorder = Recorder()
    await Engine(
        stages,
        client=ByteClient(unit="9"),
        concurrency=1,
        observers=[recorder],
        prices=prices,
        budget=budget,
    ).run([t])
    assert [e.stage for e in recorder.of(StageFinished)] == ["research", "write"]
    assert budget.spent <= budget.max_cost


# --- Budget: admit, book, release ---


def test_admit_reserves_chains_while_they_fit_exactly_and_then_refuses() -> None:
    budget = Budget(2 * CHAIN_OF_T0, TWO_STAGES, dollar_a_token())
    assert budget.admit(topic(0, "t0"))
    assert budget.admit(topic(1, "t1")), "spent + reserved + next == max_cost still fits"
    assert budget.reserved == 2 * CHAIN_OF_T0
    assert not budget.admit(topic(2, "t2"))


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
    assert (budget.spent, budget.reserved) == (5.0, WRITE_OF_T0)
    budget.book(t, "write", 0.0)  # served from the store
    assert (budget.spent, budget.reserved) == (5.0, 0.0)


def test_a_stage_of_unknown_cost_is_booked_at_its_reservation() -> None:
    """Never as free: an unknown cost counts the most the stage could have cost."""
    budget = Budget(100.0, TWO_STAGES, dollar_a_token())
    t = topic(0, "t0")
    budget.admit(t)
    budget.book(t, "write", None)
    assert (budget.spent, budget.reserved) == (WRITE_OF_T0, RESEARCH_OF_T0)


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
    """Chains that reserve 50 and cost 46, against 150: three fit, whether one at a time
    (50, then 46 + 50, then 92 + 50; 138 + 50 would pass) or three at once (150 reserved;
    as the first ends, it costs 46 and the others at least that, so 46 * 3 + 50 would pass);
    the other seven never start, and the run says why."""
    assert (CHAIN_OF_T0, SPENT_ON_T0) == (50, 46)  # the numbers the docstring works with
    engine, budget, recorder, topics = budget_engine(10, 150.0, concurrency=concurrency)
    results = await engine.run(topics)

    assert len(recorder.of(ChainStarted)) == 3
    assert [r.status for r in results] == ["succeeded"] * 3
    assert len(recorder.of(ChainFinished)) == 3
    assert engine.stopping and engine.halt_reason is None
    assert engine.stop_reason is not None
    assert "budget" in engine.stop_reason and "--max-cost $150" in engine.stop_reason
    assert budget.spent == 3 * SPENT_ON_T0
    assert budget.spent <= budget.max_cost
    assert budget.reserved == 0


async def test_a_budget_too_small_for_one_chain_starts_none() -> None:
    engine, budget, recorder, topics = budget_engine(3, CHAIN_OF_T0 - 1, concurrency=2)
    assert await engine.run(topics) == []
    assert recorder.events == []
    assert engine.stop_reason is not None and f"up to ${CHAIN_OF_T0:.4g}" in engine.stop_reason
    assert budget.spent == 0


async def test_a_chain_failing_at_its_first_stage_frees_its_whole_reservation() -> None:
    """Room for one chain: t0 fails at research and releases it, so t1 can start."""
    engine, budget, recorder, topics = budget_engine(2, CHAIN_OF_T0, concurrency=1, fail="R t0")
    results = await engine.run(topics)
    assert [(r.topic.text, r.status) for r in results] == [("t0", "failed"), ("t1", "succeeded")]
    assert engine.stop_reason is None
    assert (budget.spent, budget.reserved) == (SPENT_ON_T0, 0.0)


async def test_a_resumed_budget_counts_the_earlier_spend() -> None:
    """100 spent in an earlier session: only one more chain (reserving 50) fits under 150."""
    engine, budget, recorder, topics = budget_engine(5, 150.0, concurrency=1, spent=100.0)
    await engine.run(topics)
    assert len(recorder.of(ChainStarted)) == 1
    assert budget.spent == 100.0 + SPENT_ON_T0
    assert engine.stop_reason is not None
    assert f"spent ${100.0 + SPENT_ON_T0:.4g}" in engine.stop_reason


@TOKENIZERS
@pytest.mark.parametrize("chains", [1.0, 1.5, 2.5])
@pytest.mark.parametrize("concurrency", [1, 3])
async def test_an_engine_with_a_budget_never_spends_more_than_max_cost(
    repo_chain: tuple[tuple[Stage, ...], tuple[Topic, ...], Prices],
    client: type[TokenizerClient],
    chains: float,
    concurrency: int,
) -> None:
    """The repo's chain, with a budget of room for one to two and a half of its costliest
    chains: whatever the tokenizer, what is spent stays within max_cost."""
    stages, topics, prices = repo_chain
    costliest = max(sum(reservations(stages, t, prices).values()) for t in topics)
    budget = Budget(chains * costliest, stages, prices)
    recorder = Recorder()
    engine = Engine(
        stages,
        client=client(),
        concurrency=concurrency,
        observers=[recorder],
        prices=prices,
        budget=budget,
    )
    await engine.run(topics)

    assert recorder.of(ChainStarted), "the first chain always fits"
    assert engine.stop_reason is not None, "not every chain fits"
    assert sum(chain_costs(recorder).values()) == pytest.approx(budget.spent)
    assert budget.spent <= budget.max_cost
