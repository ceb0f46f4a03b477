"""What a person sees: progress lines and the summary treat topic text as data."""

from __future__ import annotations

import io
from datetime import datetime

from rich.console import Console

from orchestrator import ChainFinished, RunManifest, RunStarted, Topic
from orchestrator._console import ProgressPrinter, print_summary, shorten
from orchestrator._manifest import TopicRecord


def manifest(topics: list[TopicRecord]) -> RunManifest:
    m = RunManifest(
        run_id="20261122-000000-abcd",
        status="finished",
        mode="parallel",
        concurrency=2,
        provider="simulated",
        endpoint="http://127.0.0.1:1/v1",
        topics_file="t.yaml",
        chain_file="c.yaml",
        output_dir="/runs/[red]odd[/red]",
        stages=["research"],
        started_at=datetime.now().astimezone(),
        wall_time_s=1.5,
        topics=topics,
    )
    m.totals.topics = len(topics)
    m.totals.failed = sum(t.status == "failed" for t in topics)
    return m


def test_summary_prints_markup_in_topics_and_paths_literally() -> None:
    record = TopicRecord(
        index=0,
        topic="[bold]Tides[/bold]",
        slug="tides",
        status="failed",
        failed_stage="research",
        error="HTTP 400 [x]",
    )
    console = Console(record=True, width=200, color_system=None)
    print_summary(manifest([record]), console=console)
    text = console.export_text()
    assert "[bold]Tides[/bold]" in text
    assert "HTTP 400 [x]" in text
    assert "/runs/[red]odd[/red]" in text


def test_a_huge_topic_is_shortened_on_screen() -> None:
    record = TopicRecord(
        index=0,
        topic="word " * 400_000,
        slug="word",
        status="failed",
        failed_stage="research",
        error="too long",
    )
    console = Console(record=True, width=200, color_system=None)
    print_summary(manifest([record]), console=console)
    assert len(console.export_text()) < 5_000


def test_shorten_keeps_one_bounded_line() -> None:
    assert shorten("a\nb   c") == "a b c"
    assert len(shorten("x" * 500)) == 80
    assert shorten("x" * 500).endswith("…")


async def test_progress_lines_count_topics_and_show_failures() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream=stream)
    await printer.on_event(
        RunStarted("rid", 0.0, datetime.now().astimezone(), "parallel", 2, "sim", "u", 2, ["a"])
    )
    await printer.on_event(
        ChainFinished(Topic(0, "A", "a"), "succeeded", {}, None, None, 0.0, 1.25)
    )
    await printer.on_event(
        ChainFinished(Topic(1, "B", "b"), "failed", {}, "a", "HTTP 400: bad", 0.0, 2.0)
    )
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("run rid: 2 topic(s) × 1 stage(s)")
    assert lines[1] == "provider: sim at u"
    assert lines[2] == "ok   [1/2] a  1.2s"
    assert lines[3] == "FAIL [2/2] b  2.0s  a: HTTP 400: bad"
