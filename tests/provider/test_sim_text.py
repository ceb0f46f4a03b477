"""The simulated provider's answer text: deterministic, stage-shaped, sized by tokens."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from orchestrator.provider._tokens import estimate_tokens
from orchestrator.provider.sim._text import generate

AGENTS = Path(__file__).resolve().parents[2] / "agents"
SECTIONS = ("Key facts", "Perspectives", "Examples", "Open questions")

SYSTEMS = {
    "research": "You are a meticulous research analyst. You gather what a writer needs.",
    "write": "You are an experienced feature writer. You turn a research brief into an article.",
    "edit": "You are a senior editor. You keep the writer's voice and check the research.",
}

RESEARCH = """# Research brief: Tidal power
## Key facts
- Tidal barrages have run on the Rance estuary since the 1960s.
- Tidal streams are predictable years ahead, unlike wind.
- Turbine maintenance under water is the largest running cost. (unverified)
- Few sites combine a strong tidal range with grid access.
## Perspectives
- **Engineers** stress the predictability.
## Open questions
- Will costs fall as they did for offshore wind?
"""

DRAFT = """# The Predictable Power of the Tides

Tidal power has a rare virtue among renewables. It is predictable.

## Lessons From the Rance

The Rance barrage has been generating for decades. It proves the idea works.

## Why Maintenance Dominates

Working under water is slow and expensive. Every repair needs a calm window.

## The Bottom Line

Tides will not power everything, but they can anchor a grid.
"""


def prompt(kind: str, topic: str, audience: str = "school teachers") -> list[dict[str, str]]:
    """Messages shaped like the rendered agents/*.yaml prompts."""
    user = f"Topic: {topic}\nAudience: {audience}\n\n"
    if kind in ("write", "edit"):
        user += f"Research brief:\n<<<\n{RESEARCH}\n>>>\n\n"
    if kind == "edit":
        user += f"Draft:\n<<<\n{DRAFT}\n>>>\n\n"
    user += "Do the job described above."
    return [{"role": "system", "content": SYSTEMS[kind]}, {"role": "user", "content": user}]


def run(
    messages: list[dict[str, str]], seed: int = 1, max_tokens: int = 2000, target: int = 400
) -> tuple[str, str]:
    return generate(messages, seed=seed, max_tokens=max_tokens, target_tokens=target)


def test_same_arguments_give_identical_text() -> None:
    for kind in SYSTEMS:
        assert run(prompt(kind, "Tidal power")) == run(prompt(kind, "Tidal power"))


def test_different_seed_gives_different_text() -> None:
    for kind in SYSTEMS:
        assert run(prompt(kind, "Tidal power"), seed=1) != run(prompt(kind, "Tidal power"), seed=2)


def test_research_brief_has_heading_and_four_sections() -> None:
    text, reason = run(prompt("research", "Tidal power"))
    assert reason == "stop"
    assert text.startswith("# Research brief: Tidal power\n")
    positions = [text.index(f"\n## {name}\n") for name in SECTIONS]
    assert positions == sorted(positions)
    facts = text.split("## Key facts\n", 1)[1].split("\n## ", 1)[0]
    assert facts.count("\n- ") >= 3


def test_write_gives_titled_draft_with_sections() -> None:
    text, _ = run(prompt("write", "Tidal power"))
    assert text.startswith("# ") and not text.startswith("# Research brief")
    assert 3 <= text.count("\n## ") <= 5
    assert "## Key facts" not in text


def test_edit_gives_titled_article() -> None:
    text, _ = run(prompt("edit", "Tidal power"))
    assert text.startswith("# ") and text.count("\n## ") >= 3


def test_unrecognised_system_prompt_gives_generic_answer() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How do I keep basil alive on a windowsill?"},
    ]
    text, reason = run(messages, target=150)
    assert reason == "stop"
    assert not text.startswith("#") and "## " not in text
    assert "How do I keep basil alive on a windowsill" in text


def test_kind_detection_is_case_insensitive_and_has_fallbacks() -> None:
    """Upper-case role words work; without a system prompt the quoted blocks decide."""
    upper = [{"role": "system", "content": "YOU ARE AN EDITOR."}, prompt("edit", "Tides")[1]]
    assert "## Lessons From the Rance" in run(upper)[0]
    assert "## Lessons From the Rance" in run([prompt("edit", "Tides")[1]])[0]
    no_system = run([prompt("write", "Tides")[1]])[0]
    assert no_system.startswith("# ") and "## Key facts" not in no_system
    research = [{"role": "user", "content": "Topic: Tides\nPlease research this."}]
    assert run(research)[0].startswith("# Research brief: Tides")


def test_real_agent_prompts_are_detected() -> None:
    """The repository's own agents/*.yaml, rendered, produce their stage's structure."""
    context = {"topic": "Tidal power", "research": RESEARCH, "write": DRAFT}
    starts = {
        "research": "# Research brief: Tidal power",
        "write": "# ",
        "edit": "# The Predictable",
    }
    for kind, start in starts.items():
        agent = yaml.safe_load((AGENTS / f"{kind}.yaml").read_text(encoding="utf-8"))
        user = jinja2.Template(agent["prompt"]).render(**context)
        messages = [
            {"role": "system", "content": agent["system"]},
            {"role": "user", "content": user},
        ]
        text, _ = run(messages, max_tokens=agent["max_tokens"])
        assert text.startswith(start), kind
        assert ("## Key facts" in text) == (kind == "research"), kind


def test_topic_appears_in_every_stage() -> None:
    for kind in SYSTEMS:
        assert "Urban beekeeping" in run(prompt(kind, "Urban beekeeping"))[0], kind


def test_topic_with_braces_quotes_and_unicode_is_plain_text() -> None:
    topic = 'The {{ x }} "quoted" {0} {t} café — 東京 🐝'
    for kind in SYSTEMS:
        for seed in range(10):
            text, _ = run(prompt(kind, topic), seed=seed)
            assert topic in text, kind
            body = text.split("\n", 1)[1].replace(topic, "")  # the title may be title-cased
            assert "{" not in body and "}" not in body, kind  # no template field left unfilled
    assert run(prompt("research", topic))[0].startswith(f"# Research brief: {topic}\n")


def test_topic_falls_back_to_first_line_of_the_request() -> None:
    messages = [{"role": "system", "content": "You are a research analyst."}]
    messages.append({"role": "user", "content": "Honey bees in cities\n\nMore detail here."})
    assert run(messages)[0].startswith("# Research brief: Honey bees in cities\n")


def test_long_topic_is_not_repeated_absurdly() -> None:
    topic = "the long-term effects of remote work on mid-sized software companies in Europe"
    for kind in SYSTEMS:
        assert run(prompt(kind, topic), target=600)[0].count(topic) <= 8, kind


def test_audience_colours_the_text() -> None:
    text, _ = run(prompt("research", "Tidal power", audience="retired marine engineers"))
    assert "retired marine engineers" in text


def test_draft_reuses_research_bullets() -> None:
    text, _ = run(prompt("write", "Tidal power"))
    bullets = [
        "Tidal barrages have run on the Rance estuary since the 1960s.",
        "Tidal streams are predictable years ahead, unlike wind.",
        "Turbine maintenance under water is the largest running cost.",
        "Few sites combine a strong tidal range with grid access.",
    ]
    assert sum(bullet in text for bullet in bullets) >= 3
    assert "Will costs fall" not in text  # questions are not presented as facts
    if bullets[2] in text:  # an "(unverified)" fact is hedged, not stated flatly
        assert "not independently verified" in text


def test_edit_reuses_draft_title_and_headings() -> None:
    text, _ = run(prompt("edit", "Tidal power"))
    assert text.startswith("# The Predictable Power of the Tides\n")
    for heading in ("Lessons From the Rance", "Why Maintenance Dominates", "The Bottom Line"):
        assert f"\n## {heading}\n" in text
    assert "The Rance barrage has been generating for decades." in text
    assert text != DRAFT.strip()


def test_edit_without_draft_is_a_standalone_article() -> None:
    messages = [
        {"role": "system", "content": SYSTEMS["edit"]},
        {"role": "user", "content": "Topic: Tidal power\n\nPolish an article on this."},
    ]
    text, _ = run(messages)
    assert text.startswith("# ") and "Tidal" in text.split("\n", 1)[0]
    assert text.count("\n## ") >= 3


def test_length_is_near_target_when_max_tokens_is_large() -> None:
    for target in (300, 400, 800):
        for kind in SYSTEMS:
            for seed in range(5):
                text, reason = run(prompt(kind, "Tidal power"), seed=seed, target=target)
                assert reason == "stop"
                assert abs(estimate_tokens(text) - target) <= target * 0.15, (kind, target, seed)


def test_text_is_cut_at_max_tokens_with_length_reason() -> None:
    for kind in SYSTEMS:
        full, _ = run(prompt(kind, "Tidal power"), target=400)
        text, reason = run(prompt(kind, "Tidal power"), max_tokens=50, target=400)
        assert reason == "length"
        assert 0 < estimate_tokens(text) <= 50
        assert full.startswith(text)
        assert full[len(text)] in " \n"  # cut at a word boundary


def test_target_above_max_tokens_is_capped() -> None:
    text, reason = run(prompt("write", "Tidal power"), max_tokens=100, target=5000)
    assert reason == "length" and estimate_tokens(text) <= 100


def test_tiny_values_give_non_empty_text() -> None:
    for kind in SYSTEMS:
        for max_tokens, target in ((1, 1), (1, 1000), (2, 1), (1000, 1)):
            text, reason = run(prompt(kind, "Tidal power"), max_tokens=max_tokens, target=target)
            assert text and estimate_tokens(text) <= max_tokens
            assert reason in ("stop", "length")
    assert run([], max_tokens=5, target=5)[0]
    assert run([{"role": "user", "content": ""}], max_tokens=5, target=5)[0]


def test_ten_topics_give_ten_different_texts() -> None:
    topics = [
        "Tidal power",
        "Urban beekeeping",
        "Sourdough baking",
        "Quantum error correction",
        "Medieval trade routes",
        "Sleep and memory",
        "Electric bicycles",
        "Coral reef recovery",
        "Open-source licensing",
        "Four-day work weeks",
    ]
    for kind in SYSTEMS:
        texts = {run(prompt(kind, topic), seed=7)[0] for topic in topics}
        assert len(texts) == len(topics)
        # Not just the topic swapped in: with the seeds a real request would get (the server
        # hashes the messages, topic included), texts differ even with the topic blanked out.
        blanked = {run(prompt(kind, t), seed=i)[0].replace(t, "X") for i, t in enumerate(topics)}
        assert len(blanked) == len(topics)


def test_stages_give_different_texts_for_the_same_topic() -> None:
    texts = {run(prompt(kind, "Tidal power"))[0] for kind in SYSTEMS}
    assert len(texts) == len(SYSTEMS)
