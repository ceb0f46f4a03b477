"""Every kind of configuration mistake is a ConfigError naming the file, line and field.

Each test writes one small mistake and pins where the error points (file, 1-based line,
field) and the key words of its message and hint. Nothing here calls a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from orchestrator import ConfigError, load_plan
from orchestrator.cli import main
from orchestrator.config._defaults import default_chain_file
from tests.conftest import write

# --------------------------------------------------------------------------------------------
# helpers


def config_error(topics: Path | str, **kwargs: Any) -> ConfigError:
    """The ConfigError that ``load_plan(topics, **kwargs)`` raises."""
    with pytest.raises(ConfigError) as info:
        load_plan(topics, **kwargs)
    return info.value


def assert_at(err: ConfigError, file: Path, line: int | None, field: str | None) -> None:
    """The error points at exactly this file, line and field."""
    assert err.file is not None, err.render()
    assert Path(err.file).resolve() == file.resolve(), err.render()
    assert err.line == line, err.render()
    assert err.field == field, err.render()


def topics_ok(project: Path) -> Path:
    """A valid topics file: one plain topic and one with an `audience` field."""
    return write(
        project / "topics.yaml",
        """
        - Tides
        - topic: Bees
          audience: children
        """,
    )


def agent(project: Path, name: str, text: str, folder: str = "agents") -> Path:
    return write(project / folder / f"{name}.yaml", text)


def chain(project: Path, text: str, name: str = "chain.yaml") -> Path:
    return write(project / "configs" / name, text)


# --------------------------------------------------------------------------------------------
# YAML syntax


def test_yaml_syntax_error_in_topics_file_points_at_the_bad_line(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        - Bees
          colour: yellow
        - Volcanoes
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 3, None)
    assert "YAML syntax error" in err.message
    assert "mapping values are not allowed" in err.message
    assert err.hint is not None and "indentation" in err.hint


def test_yaml_unclosed_bracket_in_chain_file_names_where_it_started(project: Path) -> None:
    bad = chain(
        project,
        """
        stages: [research, write
        concurrency: 3
        """,
    )
    err = config_error(topics_ok(project), chain=bad)
    assert_at(err, bad, 2, None)
    assert "YAML syntax error" in err.message
    assert "started on line 1" in err.message


def test_yaml_syntax_error_in_agent_file_points_into_the_agent_file(project: Path) -> None:
    bad = agent(
        project,
        "research",
        """
        model: m
        prompt: |
          About {{ topic }}
        system: "unterminated
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 5, None)
    assert "YAML syntax error" in err.message
    assert "quoted scalar started on line 4" in err.message


# --------------------------------------------------------------------------------------------
# unknown keys


def test_unknown_chain_key_suggests_the_near_miss(project: Path) -> None:
    bad = chain(
        project,
        """
        stages: [research, write, edit]
        concurency: 3
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "concurency")
    assert err.message == "unknown field 'concurency'"
    assert err.hint == "did you mean 'concurrency'?"


def test_unknown_chain_key_without_near_miss_lists_known_fields(project: Path) -> None:
    bad = chain(
        project,
        """
        stages: [research]
        zzqqxx: 3
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "zzqqxx")
    assert "unknown field 'zzqqxx'" in err.message
    assert err.hint is not None
    assert err.hint.startswith("known fields:")
    for name in ("stages", "concurrency", "defaults", "agents_dir", "timeout"):
        assert name in err.hint


def test_unknown_key_inside_long_form_stage_is_located_in_that_stage(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - name: draft
            agnet: write
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 4, "stages[1].agnet")
    assert err.message == "unknown field 'agnet'"
    assert err.hint == "did you mean 'agent'?"


def test_unknown_key_inside_stage_overrides_suggests_agent_setting(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - name: research
            overrides:
              modle: gpt-4o
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 4, "stages[0].overrides.modle")
    assert err.hint == "did you mean 'model'?"


def test_unknown_key_in_simulated_section_is_reported(project: Path) -> None:
    bad = chain(
        project,
        """
        stages: [research]
        simulated:
          latency_mean: 0.1
          latncy_jitter: 0.1
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 4, "simulated.latncy_jitter")
    assert "unknown field 'latncy_jitter'" in err.message
    assert err.hint == "did you mean 'latency_jitter'?"


def test_unknown_key_in_agent_file_suggests_the_near_miss(project: Path) -> None:
    bad = agent(
        project,
        "research",
        """
        model: m
        temprature: 0.5
        prompt: "About {{ topic }}"
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "temprature")
    assert err.message == "unknown field 'temprature'"
    assert err.hint == "did you mean 'temperature'?"


def test_unknown_top_level_key_in_topics_mapping_suggests_the_near_miss(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        chain: configs/chain.yaml
        topcs:
          - Tides
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topcs")
    assert err.message == "unknown field 'topcs'"
    assert err.hint == "did you mean 'topics'?"


# --------------------------------------------------------------------------------------------
# wrong types and out-of-range values


def test_concurrency_zero_is_rejected_as_not_positive(project: Path) -> None:
    bad = chain(
        project,
        """
        stages: [research]
        concurrency: 0
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "concurrency")
    assert "greater than 0" in err.message
    assert "(got 0)" in err.message


def test_concurrency_that_is_not_a_number_is_rejected(project: Path) -> None:
    bad = chain(
        project,
        """
        stages: [research]
        concurrency: lots
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "concurrency")
    assert "valid integer" in err.message
    assert "(got 'lots')" in err.message


def test_temperature_above_two_in_agent_file_is_rejected(project: Path) -> None:
    bad = agent(
        project,
        "research",
        """
        model: m
        temperature: 5
        prompt: "About {{ topic }}"
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "temperature")
    assert "less than or equal to 2" in err.message
    assert "(got 5)" in err.message


def test_negative_max_tokens_in_stage_overrides_is_rejected(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - name: write
            overrides:
              max_tokens: -1
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 5, "stages[1].overrides.max_tokens")
    assert "greater than 0" in err.message
    assert "(got -1)" in err.message


# --------------------------------------------------------------------------------------------
# agent files


def test_missing_agent_file_hint_lists_available_agents(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - wirte
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 3, "stages[1]")
    assert err.message.startswith("agent file not found:")
    assert err.message.endswith("wirte.yaml")
    assert err.hint is not None and err.hint.startswith("agents in ")
    for name in ("edit", "research", "write"):
        assert name in err.hint


def test_agents_dir_pointing_to_empty_folder_says_there_are_no_agents(project: Path) -> None:
    (project / "configs" / "no_agents").mkdir()
    bad = chain(
        project,
        """
        stages:
          - research
        agents_dir: no_agents
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "stages[0]")
    assert "agent file not found" in err.message
    assert "no_agents" in err.message
    assert err.hint is not None
    assert "no agent files in" in err.hint
    assert "agents_dir" in err.hint


def test_agents_dir_pointing_to_missing_folder_points_at_agents_dir(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
        agents_dir: does_not_exist
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 3, "agents_dir")
    assert "agents folder not found" in err.message
    assert "does_not_exist" in err.message
    assert err.hint is not None and "relative to the chain file" in err.hint


def test_model_missing_everywhere_names_the_agent_file(project: Path) -> None:
    bad = agent(project, "research", 'prompt: "About {{ topic }}"\n')
    chain(project, "stages: [research]\n")
    err = config_error(topics_ok(project))
    assert_at(err, bad, None, "model")
    assert err.message == "no model is set for this agent"
    assert err.hint is not None
    assert "`model:` in the agent file" in err.hint
    assert "defaults" in err.hint


def test_agent_without_prompt_is_an_error_naming_the_agent_file(project: Path) -> None:
    bad = agent(project, "research", "model: m\n")
    err = config_error(topics_ok(project))
    assert_at(err, bad, None, "prompt")
    assert "no prompt" in err.message


# --------------------------------------------------------------------------------------------
# stage names


def test_stage_name_that_is_not_an_identifier_is_rejected(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - name: my-draft
            agent: write
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 3, "stages[1].name")
    assert "'my-draft' is not a valid name" in err.message
    assert "letters, digits and underscores" in err.message


def test_short_form_stage_name_starting_with_a_digit_is_rejected(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - 2nd
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 3, "stages[1].name")
    assert "'2nd' is not a valid name" in err.message


def test_duplicate_stage_name_points_at_the_second_one(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - write
          - name: research
            agent: edit
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 4, "stages[2]")
    assert err.message == "stage 'research' appears twice"
    assert err.hint is not None and "name:" in err.hint


def test_stage_named_topic_is_rejected(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - research
          - name: topic
            agent: write
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 3, "stages[1]")
    assert err.message == "a stage cannot be called 'topic'"
    assert err.hint == "rename it"


@pytest.mark.parametrize("name", ["none", "true", "false", "self"])
def test_stage_named_like_a_jinja_constant_is_rejected_or_usable(project: Path, name: str) -> None:
    """A stage name either gets rejected, or a later prompt really sees its output."""
    agent(project, name, 'model: m\nprompt: "About {{ topic }}"\n')
    agent(project, "use", 'model: m\nprompt: "Before: {{ NAME }}"\n'.replace("NAME", name))
    chain(project, f'stages: ["{name}", use]\n')  # quoted: YAML reads bare true as a bool
    try:
        plan = load_plan(topics_ok(project))
    except ConfigError:
        return  # rejecting the name is a fine fix
    messages = plan.stages[1].messages({"topic": "Tides", name: "THE-OUTPUT"})
    assert "THE-OUTPUT" in messages[-1]["content"]


# --------------------------------------------------------------------------------------------
# templates


def test_template_syntax_error_points_at_the_line_inside_the_block(project: Path) -> None:
    bad = agent(
        project,
        "research",
        """
        model: m
        prompt: |
          Topic: {{ topic }}
          Audience: {{ audience | default("all") }}
          Notes: {{ topic | }}
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 5, "prompt")  # the `Notes:` line, the block's third line
    assert err.message.startswith("template syntax error:")
    assert err.hint is not None and "Jinja2 syntax" in err.hint


def test_template_syntax_error_in_a_one_line_prompt_points_at_that_line(project: Path) -> None:
    bad = agent(project, "research", 'model: m\nprompt: "About {{ topic "\n')
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "prompt")


def test_unclosed_block_in_chain_override_prompt_points_at_the_override(project: Path) -> None:
    bad = chain(
        project,
        """
        stages:
          - name: research
            overrides:
              prompt: "{% if topic %}About {{ topic }}"
        """,
    )
    err = config_error(topics_ok(project))
    assert_at(err, bad, 4, "stages[0].overrides.prompt")
    assert "template syntax error" in err.message
    assert "endif" in err.message


def test_typo_in_variable_name_lists_the_available_variables(project: Path) -> None:
    agent(project, "research", 'model: m\nprompt: "About {{ topic }}"\n')
    bad = agent(
        project,
        "write",
        """
        model: m
        prompt: |
          Topic: {{ topic }}
          Notes: {{ reserch }}
        """,
    )
    chain(project, "stages: [research, write]\n")
    topics = write(project / "topics.yaml", "- Tides\n")
    err = config_error(topics)
    assert_at(err, bad, 2, "prompt")
    assert err.message == "uses {{ reserch }}, which no topic field or earlier stage provides"
    assert err.hint == "variables available here: topic, research"


def test_typo_in_variable_hint_includes_the_topic_fields(project: Path) -> None:
    bad = agent(project, "research", 'model: m\nprompt: "{{ topic }} for {{ audiance }}"\n')
    chain(project, "stages: [research]\n")
    topics = write(project / "topics.yaml", "- topic: Tides\n  audience: sailors\n")
    err = config_error(topics)
    assert_at(err, bad, 2, "prompt")
    assert "{{ audiance }}" in err.message
    assert err.hint == "variables available here: topic, audience"


def test_using_a_later_stage_output_hint_says_it_runs_later(project: Path) -> None:
    bad = agent(
        project,
        "write",
        """
        model: m
        prompt: |
          Topic: {{ topic }}
          Brief: {{ research }}
        """,
    )
    agent(project, "research", 'model: m\nprompt: "About {{ topic }}"\n')
    chain(project, "stages: [write, research]\n")
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "prompt")
    assert "{{ research }}" in err.message
    assert err.hint == (
        "stage 'research' runs after 'write'; a prompt sees only the outputs of earlier stages"
    )


def test_undefined_variable_in_system_prompt_points_at_system(project: Path) -> None:
    bad = agent(
        project,
        "research",
        """
        model: m
        system: You write for {{ reader }}.
        prompt: About {{ topic }}
        """,
    )
    chain(project, "stages: [research]\n")
    err = config_error(topics_ok(project))
    assert_at(err, bad, 2, "system")
    assert "{{ reader }}" in err.message


def test_undefined_attribute_error_names_the_attribute(project: Path) -> None:
    agent(project, "research", 'model: m\nprompt: "About {{ topic.subject }}"\n')
    chain(project, "stages: [research]\n")
    err = config_error(topics_ok(project))
    assert "subject" in err.message
    assert "{{ ? }}" not in err.message


def test_field_only_some_topics_have_points_at_a_topic_lacking_it(project: Path) -> None:
    agent(
        project,
        "research",
        """
        model: m
        prompt: "For {{ audience }}: {{ topic }}"
        """,
    )
    chain(project, "stages: [research]\n")
    topics = write(
        project / "topics.yaml",
        """
        - topic: Tides
          audience: sailors
        - topic: Bees
          audience: children
        - Volcanoes
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 5, "topics[2]")
    assert err.message == "this topic has no field 'audience', which stage 'research' uses"
    assert err.hint is not None
    assert "add `audience:` to this topic" in err.hint
    assert "default(" in err.hint
    assert "research.yaml" in err.hint


def test_field_only_some_topics_have_in_mapping_form_topics_file(project: Path) -> None:
    agent(project, "research", 'model: m\nprompt: "For {{ audience }}: {{ topic }}"\n')
    chain(project, "stages: [research]\n")
    topics = write(
        project / "topics.yaml",
        """
        topics:
          - Volcanoes
          - topic: Tides
            audience: sailors
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topics[0]")
    assert "no field 'audience'" in err.message


def test_variable_guarded_by_default_may_be_absent(project: Path) -> None:
    agent(
        project,
        "research",
        """
        model: m
        prompt: |
          For {{ audience | default("everyone") }}: {{ topic }}
          {% if tone is defined %}Tone: {{ tone }}{% endif %}
        """,
    )
    chain(project, "stages: [research]\n")
    plan = load_plan(topics_ok(project))
    assert [t.text for t in plan.topics] == ["Tides", "Bees"]


# --------------------------------------------------------------------------------------------
# topics file


def test_empty_topics_file_says_there_are_no_topics(project: Path) -> None:
    topics = write(project / "topics.yaml", "")
    err = config_error(topics)
    assert_at(err, topics, None, None)
    assert err.message == "there are no topics"
    assert err.hint == "add at least one topic"


def test_topics_file_with_only_comments_says_there_are_no_topics(project: Path) -> None:
    topics = write(project / "topics.yaml", "# nothing yet\n")
    err = config_error(topics)
    assert_at(err, topics, None, None)
    assert err.message == "there are no topics"


def test_empty_topics_list_says_there_are_no_topics(project: Path) -> None:
    topics = write(project / "topics.yaml", "[]\n")
    err = config_error(topics)
    assert_at(err, topics, None, None)
    assert err.message == "there are no topics"


def test_empty_topics_list_in_mapping_form_points_at_topics_key(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        chain: configs/chain.yaml
        topics: []
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topics")
    assert err.message == "there are no topics"


def test_topics_mapping_without_topics_key_is_rejected(project: Path) -> None:
    topics = write(project / "topics.yaml", "chain: configs/chain.yaml\n")
    err = config_error(topics)
    assert_at(err, topics, None, None)
    assert "no `topics:` list" in err.message
    assert err.hint is not None and "list of topics" in err.hint


def test_topics_file_that_is_a_single_string_is_rejected(project: Path) -> None:
    topics = write(project / "topics.yaml", "Tides\n")
    err = config_error(topics)
    assert_at(err, topics, None, None)
    assert err.message == "expected a list of topics, got str"


def test_topic_mapping_without_topic_key_is_rejected(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        - title: Bees
          audience: children
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topics[1]")
    assert err.message == "a topic mapping needs a `topic:` key"
    assert err.hint is not None and "- topic:" in err.hint


def test_empty_topic_string_is_rejected(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        - "   "
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topics[1]")
    assert err.message == "a topic is empty"


def test_blank_list_entry_is_rejected_as_empty(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        -
        - Bees
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topics[1]")
    assert err.message == "this entry is empty"


def test_topic_that_is_a_list_is_rejected(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        - [Bees, Wasps]
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 2, "topics[1]")
    assert err.message == "a topic must be text, got list"
    assert err.hint is not None and "write the topic as a string" in err.hint


def test_topic_value_that_is_a_mapping_is_rejected(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        topics:
          - Tides
          - topic:
              name: Bees
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 3, "topics[1].topic")  # the line of the `topic:` key
    assert err.message == "a topic must be text, got dict"


def test_topic_extra_field_that_is_not_an_identifier_is_rejected(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        - topic: Bees
          target-audience: children
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 3, "topics[1].target-audience")
    assert "'target-audience' is not a valid name" in err.message


def test_topic_extra_field_named_like_a_stage_is_rejected(project: Path) -> None:
    topics = write(
        project / "topics.yaml",
        """
        - Tides
        - topic: Bees
          research: my own notes
        """,
    )
    err = config_error(topics)
    assert_at(err, topics, 3, "topics[1].research")
    assert err.message == "topic field 'research' has the name of a stage"
    assert err.hint is not None and "rename the field" in err.hint


@pytest.mark.parametrize("name", ["none", "self"])
def test_topic_field_named_like_a_jinja_constant_is_rejected_or_usable(
    project: Path, name: str
) -> None:
    """A topic field name either gets rejected, or the prompt really sees its value."""
    prompt = '"{{ topic }}: {{ NAME }}"'.replace("NAME", name)
    agent(project, "research", f"model: m\nprompt: {prompt}\n")
    chain(project, "stages: [research]\n")
    topics = write(project / "topics.yaml", f"- topic: Tides\n  {name}: THE-VALUE\n")
    try:
        plan = load_plan(topics)
    except ConfigError:
        return  # rejecting the name is a fine fix
    topic = plan.topics[0]
    messages = plan.stages[0].messages({**topic.vars, "topic": topic.text})
    assert "THE-VALUE" in messages[-1]["content"]


def test_missing_topics_file_is_a_config_error(project: Path) -> None:
    missing = project / "nope.yaml"
    err = config_error(missing)
    assert_at(err, missing, None, None)
    assert err.message == "topics file not found"
    assert err.hint == "check the path"


def test_missing_explicit_chain_file_is_a_config_error(project: Path) -> None:
    missing = project / "nope-chain.yaml"
    err = config_error(topics_ok(project), chain=missing)
    assert_at(err, missing, None, None)
    assert err.message == "chain file not found"


def test_limit_keeps_the_first_n_topics(project: Path) -> None:
    topics = write(project / "topics.yaml", "- One\n- Two\n- Three\n- Four\n")
    plan = load_plan(topics, limit=2)
    assert [t.text for t in plan.topics] == ["One", "Two"]
    assert [t.index for t in plan.topics] == [0, 1]
    assert len(load_plan(topics, limit=10).topics) == 4


def test_negative_limit_is_rejected(project: Path) -> None:
    topics = write(project / "topics.yaml", "- One\n- Two\n- Three\n")
    with pytest.raises((ConfigError, ValueError)):
        load_plan(topics, limit=-1)


def test_two_thousand_string_topics_load_with_unique_slugs(project: Path) -> None:
    """A large file loads (no timing assertion); repeated texts still get unique slugs."""
    lines = "".join(f"- Topic number {i % 700}\n" for i in range(2000))
    topics = write(project / "topics.yaml", lines)
    plan = load_plan(topics)
    assert len(plan.topics) == 2000
    assert len({t.slug for t in plan.topics}) == 2000
    assert plan.topics[0].slug == "topic-number-0"
    assert plan.topics[700].slug == "topic-number-0-2"


# --------------------------------------------------------------------------------------------
# finding the chain


def test_topics_file_chain_key_is_relative_to_the_topics_file(project: Path) -> None:
    sub = project / "sub"
    own = write(sub / "my-chain.yaml", "stages: [research]\nagents_dir: ../agents\n")
    topics = write(sub / "topics.yaml", "chain: my-chain.yaml\ntopics: [Tides]\n")
    plan = load_plan(topics)  # cwd is the project, which has no my-chain.yaml
    assert plan.chain_file.resolve() == own.resolve()
    assert [s.name for s in plan.stages] == ["research"]


def test_explicit_chain_wins_over_topics_file_chain_key(project: Path) -> None:
    sub = project / "sub"
    write(sub / "my-chain.yaml", "stages: [research]\nagents_dir: ../agents\n")
    explicit = chain(project, "stages: [research, write]\n", name="explicit.yaml")
    topics = write(sub / "topics.yaml", "chain: my-chain.yaml\ntopics: [Tides]\n")
    plan = load_plan(topics, chain=explicit)
    assert plan.chain_file.resolve() == explicit.resolve()
    assert [s.name for s in plan.stages] == ["research", "write"]


def test_missing_chain_named_by_topics_file_is_a_config_error(project: Path) -> None:
    topics = write(project / "sub" / "topics.yaml", "chain: ../gone.yaml\ntopics: [Tides]\n")
    err = config_error(topics)
    assert_at(err, topics, 1, "chain")
    assert err.message == f"chain file not found: {(project / 'gone.yaml').resolve()}"
    assert err.hint == "the path is relative to the topics file"


def test_chain_in_cwd_configs_is_used_without_chain_key(project: Path) -> None:
    chain(project, "stages: [research, write]\nconcurrency: 9\n")
    plan = load_plan(topics_ok(project))
    assert plan.chain.concurrency == 9
    assert [s.name for s in plan.stages] == ["research", "write"]


def test_packaged_default_chain_is_used_when_cwd_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    topics = write(tmp_path / "topics.yaml", "- Tides\n")
    plan = load_plan(topics)
    assert plan.chain_file.resolve() == default_chain_file().resolve()
    assert [s.name for s in plan.stages] == ["research", "write", "edit"]


# --------------------------------------------------------------------------------------------
# the error's rendering and the CLI


def test_render_is_file_line_field_message_then_hint(project: Path) -> None:
    chain(project, "stages: [research]\nconcurency: 3\n")
    err = config_error(topics_ok(project))  # found as ./configs/chain.yaml, relative
    assert err.render() == (
        "configs/chain.yaml:2: concurency: unknown field 'concurency'\n"
        "  hint: did you mean 'concurrency'?"
    )
    assert str(err) == err.render()


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """The CLI reconfigures structlog globally (onto CliRunner's stderr); undo that."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("restore_structlog")
def test_cli_config_error_exits_2_with_location_and_no_traceback(project: Path) -> None:
    chain(project, "stages: [research]\nconcurency: 3\n")
    topics = topics_ok(project)
    result = CliRunner().invoke(main, ["run", str(topics), "--out", str(project / "out")])
    assert result.exit_code == 2, result.output
    assert "configs/chain.yaml:2: concurency: unknown field 'concurency'" in result.stderr
    assert "hint: did you mean 'concurrency'?" in result.stderr
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert not (project / "out").exists()


def test_numeric_topics_keep_their_text_as_written(project: Path) -> None:
    """YAML would read `010` as 8 and `1e3` as 1000.0; the topic is the text the user wrote."""
    topics = write(project / "topics.yaml", "- 010\n- 1e3\n- 2024\n")
    assert [t.text for t in load_plan(topics).topics] == ["010", "1e3", "2024"]


def test_a_topic_yaml_reads_as_a_boolean_asks_to_be_quoted(project: Path) -> None:
    topics = write(project / "topics.yaml", "- Tides\n- yes\n")
    err = config_error(topics)
    assert_at(err, topics, 2, "topics[1]")
    assert err.message == "YAML reads this topic as the boolean True"
    assert err.hint is not None and "quote it" in err.hint


def test_a_limit_for_a_model_no_stage_uses_is_an_error_with_a_suggestion(project: Path) -> None:
    """A typo in `limits:` would otherwise silently leave the real model unlimited."""
    import asyncio

    import orchestrator

    write(
        project / "configs" / "chain.yaml",
        "stages: [research, write, edit]\nlimits:\n  gpt4o-mini: {rpm: 6}\n",
    )
    with pytest.raises(ConfigError) as info:
        asyncio.run(orchestrator.run("configs/topics.example.yaml"))
    assert info.value.field == "limits.gpt4o-mini"
    assert info.value.hint == "did you mean 'gpt-4o-mini'?"
    assert not (project / "outputs").exists()
