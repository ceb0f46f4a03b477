"""The files a run leaves: safe unique slugs, atomic writes, `latest`, articles and run.json."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from orchestrator import RunManifest, RunStarted
from orchestrator._files import atomic_write_text, create_run_dir, new_run_id, point_latest
from orchestrator.config._slug import MAX_SLUG_LENGTH, slugify, unique_slugs
from orchestrator.report._manifest import ManifestObserver


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Quantum computing: what's real?", "quantum-computing-what-s-real"),
        ("../../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ("Ünïcödé Café", "unicode-cafe"),
        (".hidden", "hidden"),
        ("CON", "con-topic"),
    ],
)
def test_slugs_are_safe_file_names(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_text_without_ascii_letters_gets_a_stable_hashed_slug() -> None:
    tokyo, osaka, dots = slugify("東京"), slugify("大阪"), slugify("..")
    assert tokyo.startswith("topic-") and len(tokyo) == len("topic-") + 8
    assert len({tokyo, osaka, dots}) == 3
    assert slugify("東京") == tokyo, "the same text always gets the same slug"


def test_slugs_have_bounded_length_and_no_trailing_hyphen() -> None:
    slug = slugify("word " * 100)
    assert len(slug) <= MAX_SLUG_LENGTH
    assert not slug.endswith("-")


def test_topics_that_slug_alike_get_distinct_slugs() -> None:
    slugs = unique_slugs(["Tides", "tides", "TIDES!", "x" * 200, "x" * 201, "tides-2"])
    assert slugs[:3] == ["tides", "tides-2", "tides-3"]
    assert len(set(slugs)) == len(slugs)
    assert all(len(s) <= MAX_SLUG_LENGTH for s in slugs)


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.md"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["file.md"]


def test_run_ids_sort_by_time_and_dirs_are_unique(tmp_path: Path) -> None:
    assert new_run_id(datetime(2026, 11, 22, 15, 30, 12).astimezone()).count("-") == 2
    ids = {create_run_dir(tmp_path)[0] for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == len("20261122-153012-a3f9") for i in ids)


def test_latest_points_at_the_newest_run(tmp_path: Path) -> None:
    first, _ = create_run_dir(tmp_path)
    point_latest(tmp_path, first)
    second, second_dir = create_run_dir(tmp_path)
    point_latest(tmp_path, second)
    latest = tmp_path / "latest"
    assert latest.is_symlink()
    assert latest.resolve() == second_dir.resolve()
    assert os.readlink(latest) == second  # relative, so the outputs folder can move


async def test_run_json_is_written_at_start_then_throttled(tmp_path: Path) -> None:
    """Events before the interval has passed do not rewrite run.json; the next one after does."""
    from orchestrator import ChainStarted, Topic

    path = tmp_path / "run.json"
    topics = (Topic(0, "a", "a"), Topic(1, "b", "b"))
    observer = ManifestObserver(
        path,
        topics,
        topics_file=tmp_path / "t.yaml",
        chain_file=tmp_path / "c.yaml",
        output_dir=tmp_path,
        interval=2.0,
        clock=lambda: now,
    )
    now = 100.0
    await observer.on_event(
        RunStarted("rid", 0.0, datetime.now().astimezone(), "parallel", 2, "sim", "", 2, ["s"])
    )
    written = RunManifest.model_validate_json(path.read_text())
    assert written.status == "running"
    assert [t.status for t in written.topics] == ["pending", "pending"]

    await observer.on_event(ChainStarted(topics[0], 1.0))
    assert RunManifest.model_validate_json(path.read_text()).topics[0].status == "pending"
    now = 102.5
    await observer.on_event(ChainStarted(topics[1], 1.0))
    assert [t.status for t in RunManifest.model_validate_json(path.read_text()).topics] == [
        "running",
        "running",
    ]


def test_manifest_schema_keeps_unbuilt_values_null() -> None:
    """Keys from the product brief exist now, as null, so later work only fills them in."""
    schema = RunManifest.model_json_schema()
    totals = schema["$defs"]["Totals"]["properties"]
    for key in ("retries", "rate_limited", "cost"):
        assert key in totals
    assert "parallelism" in schema["properties"]
    assert "schema_version" in schema["properties"]


def test_front_matter_escapes_topic_text(tmp_path: Path) -> None:
    """A topic with YAML-significant characters still yields valid front matter."""
    import asyncio

    from orchestrator import ChainFinished, StageFinished, Topic
    from orchestrator.report._outputs import OutputWriter

    topic = Topic(0, 'Colons: "quotes" --- and #hashes', "colons")
    writer = OutputWriter(tmp_path)

    async def feed() -> None:
        await writer.on_event(
            RunStarted("rid", 0.0, datetime.now().astimezone(), "parallel", 1, "s", "", 1, ["a"])
        )
        await writer.on_event(StageFinished(topic, "a", "m", "Body text", 1, 5, 2, 0.0, 1.0))
        await writer.on_event(
            ChainFinished(topic, "succeeded", {"a": "Body text"}, None, None, 0.0, 1.0)
        )

    asyncio.run(feed())
    text = (tmp_path / "colons.md").read_text()
    _, front, body = text.split("---\n", 2)
    header = yaml.safe_load(front)
    assert header["topic"] == topic.text
    assert header["tokens"] == 7
    assert body.strip() == "Body text"
    assert (tmp_path / "stages" / "colons" / "a.md").read_text() == "Body text\n"
    assert json.dumps(header)  # plain data only
