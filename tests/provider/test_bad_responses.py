"""Answers that are not what they claim, from a real HTTP server through the real openai
client: each is a named error with a message a person understands, retried only where that
can help and within its cap, and never a traceback or a lost topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator import RunManifest

from ..conftest import write
from ..session.test_end_to_end import orchestrate

TOPICS = "configs/topics.example.yaml"
FAST: dict[str, Any] = {"time_scale": 0.01, "latency_jitter": 0.0}


async def run_with(kind: str, rate: float, **options: Any) -> RunManifest:
    sim = {**FAST, "bad_response_rate": rate, "bad_response": kind}
    return await orchestrator.run(TOPICS, sim=sim, progress=False, **options)


@pytest.mark.parametrize(
    ("kind", "says", "attempts"),
    [
        ("not_json", "body that is not JSON", 6),
        ("truncated", "cut off mid-body", 6),
        ("html_error", "an error page from nginx (text/html: '502 Bad Gateway')", 6),
        ("empty_choices", "no choices", 2),
        ("null_content", "has no text", 2),
        ("content_filter", "content filter", 1),
    ],
)
async def test_every_bad_answer_is_named_and_retried_only_as_far_as_it_helps(
    project: Path, kind: str, says: str, attempts: int
) -> None:
    manifest = await run_with(kind, 1.0, limit=2, retry_passes=0)
    assert manifest.totals.failed == 2
    for record in manifest.topics[:2]:
        [stage] = record.stages
        assert says in (record.error or ""), record.error
        assert "JSONDecodeError" not in (record.error or "")
        assert stage.attempts == attempts


@pytest.mark.parametrize("kind", ["not_json", "truncated", "html_error", "empty_choices"])
async def test_some_bad_answers_among_good_ones_cost_no_topic(project: Path, kind: str) -> None:
    manifest = await run_with(kind, 0.2)
    assert (manifest.status, manifest.totals.succeeded) == ("finished", 10)
    assert manifest.totals.retries


def _short_agent(project: Path, cut_off: str | None) -> Path:
    text = (project / "agents" / "research.yaml").read_text()
    text = text.replace("max_tokens: 900", "max_tokens: 20")
    if cut_off:
        text += f"cut_off: {cut_off}\n"
    (project / "agents" / "research.yaml").write_text(text)
    return project


async def test_a_cut_off_answer_is_a_warning_on_the_stage(project: Path) -> None:
    _short_agent(project, None)
    manifest = await orchestrator.run(TOPICS, sim=FAST, progress=False, limit=3)
    assert manifest.totals.succeeded == 3
    assert manifest.totals.warnings == 3
    for record in manifest.topics[:3]:
        assert record.stages[0].warning and "max_tokens" in record.stages[0].warning
        assert record.stages[1].warning is None
    code, out, err = await orchestrate(
        "run",
        TOPICS,
        "--limit",
        "1",
        "--fresh",
        cwd=project,
        env={"ORCHESTRATE_SIM_TIME_SCALE": "0.01"},
    )
    assert code == 0, err
    assert "warnings" in out and "cut off at max_tokens" in out


async def test_cut_off_error_fails_the_stage_without_retrying(project: Path) -> None:
    _short_agent(project, "error")
    manifest = await orchestrator.run(TOPICS, sim=FAST, progress=False, limit=2, retry_passes=1)
    assert manifest.totals.failed == 2
    for record in manifest.topics[:2]:
        assert "cut_off: error" in (record.error or "")
        assert record.stages[0].attempts == 1, "the same request would be cut off again"
        assert record.passes == 1, "not transient: no retry pass"


async def test_an_unknown_cut_off_setting_is_a_config_error(project: Path) -> None:
    _short_agent(project, "sometimes")
    code, _, err = await orchestrate("run", TOPICS, cwd=project)
    assert code == 2
    assert "research.yaml" in err and "cut_off" in err and "Traceback" not in err


async def test_the_cli_shows_a_bad_answer_as_words_not_a_traceback(project: Path) -> None:
    env = {
        "ORCHESTRATE_SIM_TIME_SCALE": "0.01",
        "ORCHESTRATE_SIM_BAD_RESPONSE_RATE": "1",
        "ORCHESTRATE_SIM_BAD_RESPONSE": "not_json",
    }
    topics = write(project / "one.yaml", "- One topic\n")
    code, out, err = await orchestrate(
        "run", str(topics), "--retry-passes", "0", cwd=project, env=env
    )
    assert code == 1
    assert "Traceback" not in err + out and "JSONDecodeError" not in err + out
    assert "not JSON" in out
