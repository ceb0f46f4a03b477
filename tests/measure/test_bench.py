"""``orchestrate bench``: the sweep's numbers on a virtual clock, its files, and the
command as a user runs it."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import orchestrator
from orchestrator import BenchReport, ConfigError
from orchestrator.measure._bench import time_scales

from ..conftest import write
from ..fakes import FakeClient, fail_when
from ..session.test_end_to_end import orchestrate
from ..virtual_time import run_virtual

NO_LIMITS = {"rpm": 1_000_000, "tpm": 1_000_000_000}


def _bench(project: Path, client: FakeClient, **kwargs: object) -> BenchReport:
    return run_virtual(
        orchestrator.bench(client=client, out=project / "outs", **NO_LIMITS, **kwargs)  # type: ignore[arg-type]
    )


def test_cells_match_the_theory_on_a_virtual_clock(project: Path) -> None:
    """1 s calls, 3 stages: a chain is 3 s, and n topics on c slots take ceil(n/c) × 3 s."""
    report = _bench(project, FakeClient(delay=1.0), sizes=[4, 6], concurrency=[1, 4, 2])

    got = {(c.topics, c.concurrency): c for c in report.cells}
    assert list(got) == [(4, 1), (4, 2), (4, 4), (6, 1), (6, 2), (6, 4)]  # sorted
    expected = {(4, 1): 12, (4, 2): 6, (4, 4): 3, (6, 1): 18, (6, 2): 9, (6, 4): 6}
    for key, seconds in expected.items():
        cell = got[key]
        assert cell.theoretical_s == pytest.approx(seconds, abs=0.01), key
        assert cell.measured_s == pytest.approx(seconds, abs=0.01), key
        assert abs(cell.deviation_pct) < 0.2, key
        assert cell.calls == key[0] * 3
        assert cell.failed == 0
    assert report.provider == "custom"
    assert report.latency_s is None  # not simulated: the theory used measured chain times
    assert report.time_scale == 1.0
    assert report.worst_deviation_pct is not None and report.worst_deviation_pct < 0.2


def test_the_sweep_writes_table_plot_and_raw_data(project: Path) -> None:
    report = _bench(project, FakeClient(delay=1.0), sizes=[2, 3], concurrency=[1, 2])
    folder = project / "outs" / report.bench_id
    assert report.bench_id.startswith("bench-")

    assert BenchReport.model_validate_json((folder / "bench.json").read_text()) == report
    rows = list(csv.DictReader((folder / "bench.csv").read_text().splitlines()))
    assert [(r["topics"], r["concurrency"]) for r in rows] == [
        ("2", "1"),
        ("2", "2"),
        ("3", "1"),
        ("3", "2"),
    ]
    assert float(rows[0]["theoretical_s"]) == pytest.approx(6.0, abs=0.01)

    svg = ET.fromstring((folder / "bench.svg").read_text())
    assert svg.tag.endswith("svg")
    texts = "".join(svg.itertext())
    assert "2 topics" in texts and "3 topics (theory)" in texts

    md = (folder / "bench.md").read_text()
    assert report.planned == 4
    assert md.startswith("# Bench: time vs concurrency, 4 runs\n")
    assert "![time vs concurrency, measured and theoretical](bench.svg)" in md
    assert md.count("\n| 3 | 2 |") == 1  # one table row per cell
    assert "Every cell is within" in md
    for cell in report.cells:  # each run keeps its manifest, not its articles
        assert (folder / cell.run_json).is_file()
    assert not list(folder.glob("cells/*/*.md"))
    assert (folder / "topics.yaml").is_file()  # the generated topics, kept


def test_failed_chains_are_counted(project: Path) -> None:
    report = _bench(
        project,
        FakeClient(fail_when("topic 0001"), delay=1.0),
        sizes=[3],
        concurrency=[3],
    )
    assert report.cells[0].failed == 1


def test_topics_file_must_hold_the_largest_batch(project: Path) -> None:
    topics = write(project / "few.yaml", "topics:\n  - one\n  - two\n")
    with pytest.raises(ConfigError) as info:
        _bench(project, FakeClient(), sizes=[2, 5], concurrency=[1], topics=topics)
    assert "has 2 topics; the largest batch size needs 5" in info.value.render()
    assert "few.yaml" in info.value.render()
    assert not (project / "outs").exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sizes": [0]}, "--sizes"),
        ({"concurrency": [5, 0]}, "--concurrency"),
        ({"concurrency": []}, "--concurrency"),
        ({"latency": 0.0}, "--latency"),
        ({"jitter": -1.0}, "--jitter"),
        ({"time_scale": 0.0}, "--time-scale"),
        ({"time_scale": 1e-300}, "--time-scale"),
        ({"time_scale": 0.01, "target_s": 10.0}, "--target"),
        ({"target_s": 0.0}, "--target"),
    ],
)
def test_nonsense_sweeps_are_refused_before_anything_runs(
    project: Path, kwargs: dict[str, object], field: str
) -> None:
    client = FakeClient()
    with pytest.raises(ConfigError) as info:
        _bench(project, client, **kwargs)
    assert info.value.field == field
    assert client.requests == []
    assert not (project / "outs").exists()


def test_simulated_only_flags_are_refused_on_another_provider(project: Path) -> None:
    with pytest.raises(ConfigError, match="simulated provider only"):
        _bench(project, FakeClient(), latency=2.0)


# --- the command ---------------------------------------------------------------------------


async def test_bench_command_end_to_end(project: Path) -> None:
    """The real CLI and the simulated provider: a small sweep, scaled to about two seconds."""
    code, out, err = await orchestrate(
        "bench", "--sizes", "2,4", "-c", "1,4", "--latency", "5", "--target", "2",
        cwd=project,
    )  # fmt: skip
    assert code == 0, err
    assert "4 runs on the simulated provider" in err
    assert "[4/4] 4 topics, -c 4" in err
    assert "bench · simulated · simulated seconds" in out
    assert "chain time (3 stages × 5 s = 15 s)" in " ".join(out.split())
    [folder] = (project / "outputs").glob("bench-*")
    data = json.loads((folder / "bench.json").read_text())
    assert data["latency_s"] == 5.0
    assert data["time_scale"] is None  # scaled per run
    # The floors alone (0.12 + 0.06 × c real seconds per call) exceed a 2 s target.
    scales = [c["time_scale"] for c in data["cells"]]
    assert scales == pytest.approx([0.18 / 5, 0.36 / 5, 0.18 / 5, 0.36 / 5])
    assert [c["theoretical_s"] for c in data["cells"]] == [30.0, 15.0, 60.0, 15.0]
    for cell in data["cells"]:
        # Never faster than the simulated calls allow; how close it comes is for the
        # benchmark to measure, not for a test on a noisy machine.
        assert cell["measured_s"] / cell["theoretical_s"] > 0.97
        assert cell["real_s"] == pytest.approx(cell["measured_s"] * cell["time_scale"], rel=0.01)


def test_time_scales_share_the_target_above_each_runs_floor() -> None:
    """Cheap runs share the target; a run whose floor is higher keeps its floor."""
    cells = [(10, 1), (10, 10)]
    scales = time_scales(cells, stages=3, latency=10.0, target_s=20.0)
    floor_1, floor_10 = 0.18 / 10, 0.72 / 10
    assert scales[10, 10] == pytest.approx(floor_10)
    # 10 rounds × 30 s × base + 1 round × 30 s × floor_10 = 20 s
    assert scales[10, 1] == pytest.approx((20 - 30 * floor_10) / 300, rel=1e-6)
    assert scales[10, 1] > floor_1
    # A target below what the floors need: every run at its floor, no less.
    tight = time_scales(cells, stages=3, latency=10.0, target_s=1.0)
    assert tight == {(10, 1): pytest.approx(floor_1), (10, 10): pytest.approx(floor_10)}


async def test_a_fixed_time_scale_applies_to_every_run(project: Path) -> None:
    """--time-scale: one scale for all runs, on the real simulated provider."""
    report = await orchestrator.bench(
        sizes=[2], concurrency=[1, 2], latency=1.0, time_scale=0.02, out=project / "o"
    )
    assert report.provider == "simulated"
    assert report.time_scale == 0.02
    assert "one simulated second lasting 0.02 real seconds" in report.scaling
    assert [c.time_scale for c in report.cells] == [0.02, 0.02]
    assert [c.theoretical_s for c in report.cells] == [6.0, 3.0]
    assert all(c.failed == 0 and c.calls == 6 for c in report.cells)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "0"], "every number must be at least 1"),
        (["-c", "1,x"], "not a comma-separated list of whole numbers"),
        (["--sizes", "0,10"], "every number must be at least 1"),
        (["--latency", "0"], "0.0 is not in the range x>0"),
        (["--time-scale", "-1"], "-1.0 is not in the range x>0"),
    ],
)
async def test_bench_refuses_flags_that_make_no_sense(
    project: Path, args: list[str], message: str
) -> None:
    code, out, err = await orchestrate("bench", *args, cwd=project)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (project / "outputs").exists()


async def test_bench_refuses_simulator_flags_for_a_real_provider(project: Path) -> None:
    code, out, err = await orchestrate(
        "bench", "--latency", "3", cwd=project, env={"OPENAI_API_KEY": "sk-test"}
    )
    assert code == 2
    assert "simulated provider only; this bench runs on openai" in err
    assert not (project / "outputs").exists()
