"""``orchestrate validate``: the run's own checks, and estimates a real simulated run meets
within 20% — with no call made and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import orchestrator
from orchestrator.cli import main
from orchestrator.session._estimate import estimate
from orchestrator.session._setup import prepare

from ..conftest import write

EXAMPLE = "configs/topics.example.yaml"


def within(estimated: float, real: float, share: float = 0.2) -> bool:
    return abs(estimated - real) <= share * real


@pytest.mark.parametrize(
    ("name", "chain_extra", "environ", "options"),
    [
        ("fan of 5", "", {"ORCHESTRATE_SIM_TIME_SCALE": "0.5"}, {}),
        ("sequential", "", {"ORCHESTRATE_SIM_TIME_SCALE": "0.1"}, {"sequential": True}),
        (
            "every chain at once, answers capped by max_tokens",
            "",
            {
                "ORCHESTRATE_SIM_TIME_SCALE": "0.3",
                "ORCHESTRATE_SIM_OUTPUT_TOKENS": "1500",
                "ORCHESTRATE_SIM_PER_OUTPUT_TOKEN": "0.001",
            },
            {"concurrency": 10},
        ),
        (
            "paced by an rpm limit",
            "limits: {gpt-4o-mini: {rpm: 600}}\n",
            {"ORCHESTRATE_SIM_TIME_SCALE": "0.05"},
            {"concurrency": 10},
        ),
        (
            "paced by a tpm limit",
            "limits: {gpt-4o-mini: {tpm: 500000}}\n",
            {"ORCHESTRATE_SIM_TIME_SCALE": "0.05", "ORCHESTRATE_SIM_OUTPUT_TOKENS": "200"},
            {"concurrency": 10},
        ),
    ],
)
async def test_estimates_are_within_20_percent_of_a_real_simulated_run(
    project: Path,
    name: str,
    chain_extra: str,
    environ: dict[str, str],
    options: dict[str, object],
) -> None:
    chain = project / "configs" / "chain.yaml"
    chain.write_text(chain.read_text() + chain_extra)
    guess = estimate(prepare(EXAMPLE, environ=environ, **options))  # type: ignore[arg-type]
    manifest = await orchestrator.run(
        EXAMPLE,
        environ=environ,
        progress=False,
        **options,  # type: ignore[arg-type]
    )
    t = manifest.totals
    assert t.succeeded == guess.topics == 10
    assert guess.calls == t.calls
    assert within(guess.prompt_tokens, t.prompt_tokens), (guess.prompt_tokens, t.prompt_tokens)
    assert within(guess.completion_tokens, t.completion_tokens), (
        guess.completion_tokens,
        t.completion_tokens,
    )
    assert t.cost is not None and guess.cost is not None and within(guess.cost, t.cost)
    assert manifest.wall_time_s is not None
    assert within(guess.wall_s, manifest.wall_time_s), (name, guess.wall_s, manifest.wall_time_s)
    assert guess.max_cost is not None and guess.max_cost >= t.cost


def test_what_sets_the_pace_is_named(project: Path) -> None:
    free = estimate(prepare(EXAMPLE, environ={}, concurrency=5))
    assert free.paced_by == "concurrency 5"
    assert within(free.sequential_s / free.wall_s, 5, 0.25)
    limited = estimate(prepare(EXAMPLE, environ={}, concurrency=10, rpm=60))
    assert limited.paced_by == "the rpm limit of gpt-4o-mini"
    assert limited.wall_s > 25  # 30 calls at 60 RPM (paced at 97%)


def test_a_real_endpoint_is_estimated_with_its_assumptions_said(project: Path) -> None:
    guess = estimate(
        prepare(EXAMPLE, environ={"OPENAI_BASE_URL": "http://localhost:1/v1"}, provider="auto")
    )
    assert guess.stages[0].endpoint == "http://localhost:1/v1"
    assert any("assumed to fill" in note for note in guess.assumptions)
    assert any("no rate limits configured" in note for note in guess.assumptions)


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_validate_prints_the_checks_and_the_estimate(project: Path) -> None:
    code, out, err = run_cli("validate", EXAMPLE, "-c", "5")
    assert code == 0, err
    assert "ok topics: 10" in out and "research → write → edit" in out
    assert "simulated (built in, no key needed)" in out
    assert "estimate (no call made)" in out and "wall time: about" in out
    assert err == ""
    assert not (project / "outputs").exists()  # nothing written


def test_validate_json_is_the_only_thing_on_stdout(project: Path) -> None:
    code, out, _ = run_cli("validate", EXAMPLE, "--json", "--limit", "3")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["estimate"]["calls"] == 9
    assert [s["name"] for s in data["estimate"]["stages"]] == ["research", "write", "edit"]


async def test_validate_calls_nothing(project: Path) -> None:
    """Pointed at a live endpoint, validate still sends it nothing."""
    async with orchestrator.SimServer(orchestrator.SimSettings()) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        code, out, _ = run_cli("validate", EXAMPLE, env=env)
        assert code == 0 and server.base_url in out
        assert server.requests_served == 0


# Every way a run refuses to start: validate refuses the same way, with the same words.
BROKEN = {
    "missing topics file": (["missing.yaml"], None, {}),
    "YAML syntax error": (["bad.yaml"], ("bad.yaml", "- a\n- [b\n"), {}),
    "unknown chain field": (
        [EXAMPLE],
        ("configs/chain.yaml", "stages: [research]\nconcurency: 3\n"),
        {},
    ),
    "missing agent": ([EXAMPLE], ("configs/chain.yaml", "stages: [research, review]\n"), {}),
    "undefined template variable": (
        [EXAMPLE],
        ("agents/write.yaml", "model: gpt-4o-mini\nprompt: '{{ reserch }}'\n"),
        {},
    ),
    "sequential with concurrency": ([EXAMPLE, "--sequential", "-c", "3"], None, {}),
    "openai without a key": ([EXAMPLE, "--provider", "openai"], None, {}),
    "budget without a price": (
        [EXAMPLE, "--max-cost", "1"],
        ("agents/edit.yaml", "model: my-own-model\nmax_tokens: 10\nprompt: '{{ write }}'\n"),
        {},
    ),
    "limits for an unused model": (
        [EXAMPLE],
        ("configs/chain.yaml", "stages: [research]\nlimits: {gpt-4o: {rpm: 10}}\n"),
        {},
    ),
    "max_tokens above the tpm": ([EXAMPLE, "--tpm", "100"], None, {}),
    "unknown simulator variable": ([EXAMPLE], None, {"ORCHESTRATE_SIM_LATENCY": "1"}),
    "bad simulator value": ([EXAMPLE], None, {"ORCHESTRATE_SIM_TIME_SCALE": "fast"}),
    "api key variable not set": (
        [EXAMPLE],
        (
            "configs/chain.yaml",
            "stages:\n  - name: research\n    base_url: http://localhost:9/v1\n"
            "    api_key_env: NO_SUCH_KEY\n",
        ),
        {},
    ),
    "bad base_url": (
        [EXAMPLE],
        ("configs/chain.yaml", "stages: [research]\nbase_url: localhost:11434\n"),
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validate_refuses_what_run_refuses_with_the_same_error(project: Path, case: str) -> None:
    args, broken_file, env = BROKEN[case]
    if broken_file is not None:
        write(project / broken_file[0], broken_file[1])
    run_code, run_out, run_err = run_cli("run", *args, env=env)
    code, out, err = run_cli("validate", *args, env=env)
    assert run_code == code == 2, (case, run_err, err)
    assert err == run_err and err.startswith("error: ")
    assert "Traceback" not in err and out == ""
    assert not (project / "outputs").exists()
