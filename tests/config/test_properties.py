"""Generated input (hypothesis) either loads or fails our way: a ConfigError naming the
file — never another exception — for topics files and chain files; slugs always stay
inside the run folder; topics reach the model verbatim, never evaluated as templates."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import ConfigError
from orchestrator.config._slug import slugify, unique_slugs
from orchestrator.config._topics import load_topics
from orchestrator.plan._plan import load_plan

from ..conftest import REPO

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# YAML-ish text: real structure mixed with junk, so both branches are exercised.
SCALARS = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["{{ 7*7 }}", "../../x", "/etc/passwd", "東京", "שלום", "🙂" * 3, "con"]),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["topic", "topics", "chain", "audience", "stages", "x", "limit"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
TEXTS = st.one_of(
    DOCS.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=200),
    st.sampled_from(["- a\n- [b\n", "topics: {", "\t- tab", "- a\n  - b: [", ": :", "---\n---\n"]),
)


def _write(text: str) -> Path:
    folder = Path(tempfile.mkdtemp())
    path = folder / "topics.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@FAST
@given(TEXTS)
def test_any_topics_file_loads_or_raises_a_config_error(text: str) -> None:
    path = _write(text)
    try:
        loaded = load_topics(path)
    except ConfigError as error:
        assert error.file is not None and str(path) in error.render()
        return
    for topic in loaded.topics:
        assert isinstance(topic.text, str) and topic.text.strip()
        assert SLUG.match(topic.slug), topic.slug


@FAST
@given(DOCS)
def test_any_chain_file_loads_or_raises_a_config_error(document: object) -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "topics.yaml").write_text("- one\n")
    chain = folder / "chain.yaml"
    text = yaml.safe_dump(document, allow_unicode=True)
    chain.write_text(
        text + f"\nagents_dir: {REPO / 'agents'}\n" if isinstance(document, dict) else text
    )
    try:
        load_plan(folder / "topics.yaml", chain=chain)
    except ConfigError as error:
        assert error.file is not None
        assert "Traceback" not in error.render()


@given(st.text(max_size=300))
def test_a_slug_never_leaves_the_run_folder(text: str) -> None:
    slug = slugify(text)
    assert SLUG.match(slug), slug
    assert ".." not in slug and "/" not in slug and "\\" not in slug
    assert len(slug) <= 60


@given(st.lists(st.text(max_size=20), min_size=1, max_size=20))
def test_slugs_are_unique_whatever_the_topics(texts: list[str]) -> None:
    slugs = unique_slugs(texts)
    assert len(set(slugs)) == len(slugs)


def test_hostile_topics_go_verbatim_to_the_model_and_stay_in_the_folder() -> None:
    topics = ["{{ 7*7 }}", "../../x", "{% raw %}", "A" * 1_000_000, "שלום עולם", "🙂", "a", "a"]
    path = _write(yaml.safe_dump(topics, allow_unicode=True))
    plan = load_plan(path, chain=REPO / "configs" / "chain.yaml")
    assert len(plan.topics) == len(topics)
    slugs = [t.slug for t in plan.topics]
    assert len(set(slugs)) == len(slugs), "duplicates get -2, -3"
    stage = plan.stages[0]
    for topic in plan.topics:
        assert SLUG.match(topic.slug)
        prompt = stage.messages({**topic.vars, "topic": topic.text})[-1]["content"]
        assert topic.text in prompt, "verbatim, never rendered as a template"
    assert "49" not in stage.messages({"topic": "{{ 7*7 }}"})[-1]["content"].split("Topic:")[1][:12]
