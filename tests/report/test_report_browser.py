"""report.html as a browser draws it: a real run's page opened in headless Chromium.

The page's own script measures what was drawn (``data-*`` on ``<body>``); Chromium's
``--dump-dom`` hands those back. Skipped when Chromium is missing, unless
``ORCHESTRATE_REQUIRE_BROWSER=1`` (CI sets it), then it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import orchestrator
from orchestrator.report._html import render_report

from ..conftest import write
from .test_report import NASTY, STAGES, fan, manifest, picture

BROWSER_S = 60


def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
    )
    if found is None:
        if os.environ.get("ORCHESTRATE_REQUIRE_BROWSER") == "1":
            pytest.fail("ORCHESTRATE_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH: apt-get install chromium to check the drawn report")
    return found


async def browse(page: Path, profile: Path, *args: str) -> str:
    """Open ``page`` in headless Chromium with ``args``; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,2000",
        f"--user-data-dir={profile}",
        *args,
        page.as_uri(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BROWSER_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


class Dom(HTMLParser):
    """The <body> attributes, the number of <script> elements and every <title> text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.scripts = 0
        self.titles: list[str] = []
        self._title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.body = dict(attrs)
        self.scripts += tag == "script"
        self._title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._title = False

    def handle_data(self, data: str) -> None:
        if self._title:
            self.titles.append(data)


def measured(dom: Dom, name: str) -> int:
    return int(dom.body.get(f"data-{name}") or -1)


async def test_real_run_report_draws_every_call_inside_the_axis_with_the_verdict_shown(
    project: Path, tmp_path: Path
) -> None:
    """A real run (one topic failing, one full of markup): every call a visible bar inside
    the time axis, the verdict on screen, the markup only ever text."""
    topics = write(
        project / "topics.yaml",
        f"""
        - Tides
        - '{NASTY}'
        - Volcanoes
        - {"very long topic " * 800}
        - Glaciers
        """,
    )
    result = await orchestrator.run(
        topics, out="outs", concurrency=3, sim={"time_scale": 0.05, "context_window": 3000}
    )
    assert result.totals.failed == 1, "the over-long topic fails at its first stage"
    report = Path(result.output_dir) / "report.html"
    assert report.is_file()

    dom = Dom(await browse(report, tmp_path / "profile", "--dump-dom"))
    calls = result.totals.calls
    assert measured(dom, "drawn") == calls > 0
    assert measured(dom, "drawn-positive") == calls, "every bar has a width and height"
    assert measured(dom, "drawn-inside") == calls, "every bar lies on the time axis"
    assert measured(dom, "svg-width") > 1000
    assert dom.body.get("data-verdict-visible") == "1"
    assert dom.scripts == 1, "a topic's <script> stayed text"
    assert any(NASTY in t for t in dom.titles), "its hover text reads as written"

    shot = tmp_path / "report.png"
    await browse(report, tmp_path / "profile2", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000, "a blank page compresses to almost nothing"
    if target := os.environ.get("ORCHESTRATE_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")


async def test_aggregated_report_draws_one_in_flight_row_per_stage(tmp_path: Path) -> None:
    """Past MAX_BARS calls the browser draws the in-flight rows (all stages, then each)."""
    bars = fan(800, concurrency=50)
    page = tmp_path / "report.html"
    page.write_text(render_report(picture(bars), manifest(800)), encoding="utf-8")
    dom = Dom(await browse(page, tmp_path / "profile", "--dump-dom"))
    assert measured(dom, "drawn") == measured(dom, "drawn-positive") == len(STAGES) + 1
    assert measured(dom, "drawn-inside") == len(STAGES) + 1
    assert dom.body.get("data-verdict-visible") == "1"
