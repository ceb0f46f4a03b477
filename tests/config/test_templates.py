"""How prompts are rendered: what a template sees, what is passed through literally, and
which setting wins. Pinned through ``load_plan(...).stages`` and ``Stage.messages``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import Plan, Stage, Topic, load_plan
from tests.conftest import write

JINJA_TEXTS = [
    "{{ 7*7 }}",
    "{% raw %}x{% endraw %}",
    "{# x #} and {% if true %}yes{% endif %}",
    "{{ topic }} {{ undefined_name }}",
]


def context_for(topic: Topic, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    """The context the engine builds: the topic's fields, `topic`, then stage outputs."""
    return {**topic.vars, "topic": topic.text, **(outputs or {})}


def user_prompt(stage: Stage, context: dict[str, Any]) -> str:
    messages = stage.messages(context)
    assert messages[-1]["role"] == "user"
    return messages[-1]["content"]


def stage_named(plan: Plan, name: str) -> Stage:
    return next(s for s in plan.stages if s.name == name)


def two_stage_project(project: Path) -> None:
    """Agents `gather` (topic + audience) and `compose` (uses gather's output)."""
    write(
        project / "agents" / "gather.yaml",
        """
        model: m
        prompt: |
          Topic: {{ topic }}
          Audience: {{ audience }}
        """,
    )
    write(
        project / "agents" / "compose.yaml",
        """
        model: m
        prompt: |
          Topic: {{ topic }}
          Notes: {{ gather }}
        """,
    )
    write(project / "configs" / "chain.yaml", "stages: [gather, compose]\n")


# --------------------------------------------------------------------------------------------
# what a prompt sees


def test_prompt_sees_topic_extra_fields_and_earlier_outputs(project: Path) -> None:
    two_stage_project(project)
    topics = write(project / "topics.yaml", "- topic: Tides\n  audience: sailors\n")
    plan = load_plan(topics)
    topic = plan.topics[0]
    assert topic.vars == {"audience": "sailors"}
    gather, compose = plan.stages
    assert user_prompt(gather, context_for(topic)) == "Topic: Tides\nAudience: sailors"
    ctx = context_for(topic, {"gather": "The moon pulls the sea."})
    assert user_prompt(compose, ctx) == "Topic: Tides\nNotes: The moon pulls the sea."


def test_rendered_prompt_is_stripped_of_surrounding_whitespace(project: Path) -> None:
    write(project / "agents" / "pad.yaml", 'model: m\nprompt: "\\n\\n  {{ topic }}  \\n\\n"\n')
    write(project / "configs" / "chain.yaml", "stages: [pad]\n")
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    assert user_prompt(plan.stages[0], context_for(plan.topics[0])) == "Tides"


def test_non_string_topic_fields_are_passed_as_values(project: Path) -> None:
    write(
        project / "agents" / "count.yaml",
        """
        model: m
        prompt: "{{ topic }}: {{ words * 2 }} words{% if draft %}, draft{% endif %}"
        """,
    )
    write(project / "configs" / "chain.yaml", "stages: [count]\n")
    topics = write(project / "topics.yaml", "- topic: Tides\n  words: 300\n  draft: true\n")
    plan = load_plan(topics)
    assert user_prompt(plan.stages[0], context_for(plan.topics[0])) == "Tides: 600 words, draft"


# --------------------------------------------------------------------------------------------
# values are never rendered as templates


@pytest.mark.parametrize("text", JINJA_TEXTS)
def test_topic_text_with_jinja_syntax_is_passed_through_literally(project: Path, text: str) -> None:
    write(project / "agents" / "echo.yaml", 'model: m\nprompt: "Topic: {{ topic }}!"\n')
    write(project / "configs" / "chain.yaml", "stages: [echo]\n")
    topics = write(project / "topics.yaml", f"- topic: '{text}'\n")
    plan = load_plan(topics)
    topic = plan.topics[0]
    assert topic.text == text
    prompt = user_prompt(plan.stages[0], context_for(topic))
    assert prompt == f"Topic: {text}!"
    assert "49" not in prompt


def test_topic_field_with_jinja_syntax_is_passed_through_literally(project: Path) -> None:
    two_stage_project(project)
    topics = write(project / "topics.yaml", "- topic: Tides\n  audience: '{{ 6*7 }} {# c #}'\n")
    plan = load_plan(topics)
    prompt = user_prompt(plan.stages[0], context_for(plan.topics[0]))
    assert prompt == "Topic: Tides\nAudience: {{ 6*7 }} {# c #}"


@pytest.mark.parametrize("text", JINJA_TEXTS)
def test_stage_output_with_jinja_syntax_is_passed_through_literally(
    project: Path, text: str
) -> None:
    two_stage_project(project)
    plan = load_plan(write(project / "topics.yaml", "- topic: Tides\n  audience: sailors\n"))
    compose = stage_named(plan, "compose")
    prompt = user_prompt(compose, context_for(plan.topics[0], {"gather": text}))
    assert prompt == f"Topic: Tides\nNotes: {text}"
    assert "49" not in prompt


# --------------------------------------------------------------------------------------------
# system prompts, overrides and precedence


def test_system_prompt_is_rendered_and_comes_first(project: Path) -> None:
    write(
        project / "agents" / "research.yaml",
        """
        model: m
        system: You write for {{ audience | default("everyone") }} about {{ topic }}.
        prompt: "Topic: {{ topic }}"
        """,
    )
    write(project / "configs" / "chain.yaml", "stages: [research]\n")
    topics = write(project / "topics.yaml", "- topic: Tides\n  audience: sailors\n- Bees\n")
    plan = load_plan(topics)
    stage = plan.stages[0]
    assert stage.messages(context_for(plan.topics[0])) == [
        {"role": "system", "content": "You write for sailors about Tides."},
        {"role": "user", "content": "Topic: Tides"},
    ]
    assert stage.messages(context_for(plan.topics[1]))[0] == {
        "role": "system",
        "content": "You write for everyone about Bees.",
    }


def test_agent_without_system_prompt_sends_only_the_user_message(project: Path) -> None:
    write(project / "agents" / "research.yaml", 'model: m\nprompt: "Topic: {{ topic }}"\n')
    write(project / "configs" / "chain.yaml", "stages: [research]\n")
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    assert plan.stages[0].system is None
    assert plan.stages[0].messages(context_for(plan.topics[0])) == [
        {"role": "user", "content": "Topic: Tides"}
    ]


def test_stage_override_prompt_replaces_the_agent_prompt(project: Path) -> None:
    write(
        project / "configs" / "chain.yaml",
        """
        stages:
          - research
          - name: write
            overrides:
              prompt: "Short piece on {{ topic }} from {{ research }}"
        """,
    )
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    write_stage = stage_named(plan, "write")
    messages = write_stage.messages(context_for(plan.topics[0], {"research": "BRIEF"}))
    assert messages[-1]["content"] == "Short piece on Tides from BRIEF"
    assert messages[0]["role"] == "system"  # the agent's own system prompt is kept
    assert "feature writer" in messages[0]["content"]


def test_stage_override_system_replaces_the_agent_system(project: Path) -> None:
    write(
        project / "configs" / "chain.yaml",
        """
        stages:
          - name: research
            overrides:
              system: "Be brief about {{ topic }}."
        """,
    )
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    messages = plan.stages[0].messages(context_for(plan.topics[0]))
    assert messages[0] == {"role": "system", "content": "Be brief about Tides."}


def test_settings_precedence_is_overrides_then_agent_then_chain_defaults(project: Path) -> None:
    write(project / "agents" / "research.yaml", 'temperature: 0.3\nprompt: "{{ topic }}"\n')
    write(
        project / "agents" / "write.yaml",
        'model: agent-model\nmax_tokens: 500\nprompt: "{{ research }}"\n',
    )
    write(
        project / "configs" / "chain.yaml",
        """
        stages:
          - name: research
            overrides:
              max_tokens: 77
          - name: write
            overrides:
              model: override-model
              temperature: 1.5
        defaults:
          model: default-model
          temperature: 0.9
          max_tokens: 1000
        """,
    )
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    research, write_stage = plan.stages
    # research: model from defaults, temperature from the agent, max_tokens from overrides
    assert (research.model, research.temperature, research.max_tokens) == (
        "default-model",
        0.3,
        77,
    )
    # write: model and temperature from overrides, max_tokens from the agent
    assert (write_stage.model, write_stage.temperature, write_stage.max_tokens) == (
        "override-model",
        1.5,
        500,
    )


def test_unset_settings_stay_none_without_chain_defaults(project: Path) -> None:
    write(project / "agents" / "research.yaml", 'model: m\nprompt: "{{ topic }}"\n')
    write(project / "configs" / "chain.yaml", "stages: [research]\n")
    stage = load_plan(write(project / "topics.yaml", "- Tides\n")).stages[0]
    assert (stage.model, stage.temperature, stage.max_tokens) == ("m", None, None)


# --------------------------------------------------------------------------------------------
# the packaged default agents


def test_default_agents_render_for_every_example_topic(project: Path) -> None:
    plan = load_plan(project / "configs" / "topics.example.yaml")
    assert [s.name for s in plan.stages] == ["research", "write", "edit"]
    assert len(plan.topics) == 10
    with_audience = [t for t in plan.topics if "audience" in t.vars]
    assert with_audience, "the example file has topics with an audience"
    for topic in plan.topics:
        outputs: dict[str, str] = {}
        for stage in plan.stages:
            messages = stage.messages(context_for(topic, outputs))
            assert [m["role"] for m in messages] == ["system", "user"]
            prompt = messages[-1]["content"]
            assert topic.text in prompt
            if "audience" in topic.vars:
                assert f"Audience: {topic.vars['audience']}" in prompt
            else:
                assert "Audience: curious, technically literate general readers" in prompt
            for earlier, text in outputs.items():
                assert text in prompt, f"{stage.name} should see {earlier}"
            outputs[stage.name] = f"<<{stage.name} output for {topic.slug}>>"


# --------------------------------------------------------------------------------------------
# stage order and the long form


def test_stages_follow_the_chain_order(project: Path) -> None:
    write(project / "configs" / "chain.yaml", "stages: [research, write, edit]\n")
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    assert [s.name for s in plan.stages] == ["research", "write", "edit"]
    assert [s.agent for s in plan.stages] == ["research", "write", "edit"]


def test_long_form_stage_renames_and_later_prompt_uses_the_new_name(project: Path) -> None:
    write(
        project / "agents" / "polish.yaml",
        'model: m\nprompt: "Polish this draft about {{ topic }}: {{ draft }}"\n',
    )
    write(
        project / "configs" / "chain.yaml",
        """
        stages:
          - research
          - name: draft
            agent: write
          - polish
        """,
    )
    plan = load_plan(write(project / "topics.yaml", "- Tides\n"))
    assert [s.name for s in plan.stages] == ["research", "draft", "polish"]
    draft = plan.stages[1]
    assert draft.agent == "write"
    assert draft.agent_file.resolve() == (project / "agents" / "write.yaml").resolve()
    ctx = context_for(plan.topics[0], {"research": "BRIEF", "draft": "DRAFT TEXT"})
    assert "BRIEF" in user_prompt(draft, ctx)  # write.yaml's prompt, under the name `draft`
    assert user_prompt(plan.stages[2], ctx) == "Polish this draft about Tides: DRAFT TEXT"
