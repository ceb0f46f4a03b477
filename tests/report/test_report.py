"""report.html from a fake picture: what the page says and draws, and what it never lets in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

from orchestrator.report._html import MAX_BARS, SLOWEST, render_report
from orchestrator.report._run_json import RunManifest, StageRecord, TopicRecord
from orchestrator.trace._spans import Marker
from orchestrator.trace._verdict import Parallelism, assess
from orchestrator.trace._waterfall import Bar, Waterfall

NASTY = '<script>alert(1)</script> & "quotes" </svg>'
STAGES = ("research", "write", "edit")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def bar(topic: int, stage: str, start: float, end: float, **changes: object) -> Bar:
    fields: dict[str, object] = {
        "topic": topic,
        "slug": f"topic-{topic}",
        "stage": stage,
        "attempt": 1,
        "model": "gpt-4o-mini",
        "start": start,
        "end": end,
        "waited": 0.0,
        "input_tokens": 100,
        "output_tokens": 200,
        "cost": 0.0001,
        "status": "ok",
        "error": None,
        "lane": topic + 1,
    }
    return Bar(**{**fields, **changes})  # type: ignore[arg-type]


def fan(topics: int, *, concurrency: int = 10) -> list[Bar]:
    """Every topic's chain of three one-second calls, ``concurrency`` chains at a time."""
    bars = []
    for t in range(topics):
        t0 = (t // concurrency) * 3.0 + (t % concurrency) * 0.01
        bars += [bar(t, s, t0 + i, t0 + i + 0.9) for i, s in enumerate(STAGES)]
    return sorted(bars, key=lambda b: (b.start, b.topic))


def picture(
    bars: list[Bar],
    *,
    queued: tuple[tuple[float, float], ...] = (),
    markers: tuple[Marker, ...] = (),
    allowed: int = 10,
) -> Waterfall:
    wall = max((b.end for b in bars), default=0.0) + 0.1
    chains = len({b.topic for b in bars})
    return Waterfall(
        run_id="20260102-030405-abcd",
        wall=wall,
        stages=STAGES,
        bars=tuple(bars),
        lanes=allowed,
        queued=queued,
        markers=markers,
        parallelism=assess(
            calls=[(b.start, b.end) for b in bars],
            wall=wall,
            allowed=allowed,
            chains=chains,
            chain_time=sum(b.latency for b in bars),
            limiter_wait=0.0,
            backoff_wait=0.0,
        ),
    )


def manifest(
    topics: int, *, failed: dict[int, str] | None = None, names: dict[int, str] | None = None
) -> RunManifest:
    """A finished run's manifest; ``failed`` maps topic index → error at its edit stage."""
    failed, names = failed or {}, names or {}
    records = []
    for t in range(topics):
        stages = [
            StageRecord(name=s, status="succeeded", started_at=T0, latency_s=0.9, attempts=1)
            for s in STAGES
        ]
        record = TopicRecord(index=t, topic=names.get(t, f"Topic {t}"), slug=f"topic-{t}")
        record.status, record.passes, record.stages = "succeeded", 1, stages
        if t in failed:
            stages[-1].status, stages[-1].error = "failed", failed[t]
            record.status, record.failed_stage, record.error = "failed", "edit", failed[t]
        records.append(record)
    m = RunManifest(
        run_id="20260102-030405-abcd",
        status="finished",
        mode="parallel",
        concurrency=10,
        provider="openai",
        endpoint="https://api.openai.com/v1",
        topics_file="topics.yaml",
        chain_file="chain.yaml",
        output_dir="/tmp/out",
        stages=list(STAGES),
        started_at=T0,
        wall_time_s=4.0,
        topics=records,
    )
    m.totals.topics, m.totals.calls = topics, topics * 3
    return m


class Parsed(HTMLParser):
    """Every start tag with its attributes, and the text of each SVG <title>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.titles: list[str] = []
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)

    def bars(self) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == "rect" and "bar" in (a.get("class") or "")]


def test_topic_error_and_slug_text_is_escaped_and_cannot_break_out() -> None:
    """A topic, slug or error with markup shows as text: no script, no early </svg>."""
    bars = fan(3)
    bars[0] = bar(0, "research", 0.0, 0.9, slug=NASTY, status="error", error=NASTY)
    html = render_report(picture(bars), manifest(3, failed={0: NASTY}, names={0: NASTY}))
    assert html.count("<script") == 1, "only the page's own measuring script"
    assert html.count("</svg>") == 1
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34; &lt;/svg&gt;" in html
    page = Parsed(html)
    assert any(NASTY in title for title in page.titles), "the hover text reads as written"
    assert len(page.bars()) == len(bars)


def test_page_references_nothing_outside_itself() -> None:
    """No URL to fetch: no src/href, no url() but #fragments, no @import; the endpoint is
    text and the SVG namespace is a name, not a request."""
    bars = fan(4)
    bars[1] = bar(1, "research", 0.01, 0.2, status="error", error="HTTP 500")
    html = render_report(picture(bars, markers=(Marker(2.0, "retry pass 1 (1)"),)), manifest(4))
    for tag, attrs in Parsed(html).tags:
        assert not {"src", "href", "xlink:href", "srcset", "action"} & attrs.keys(), tag
        for value in attrs.values():
            assert not (value or "").startswith("//"), (tag, value)
    assert "@import" not in html
    assert set(re.findall(r"url\((.)", html)) <= {"#"}
    rest = html.replace('xmlns="http://www.w3.org/2000/svg"', "", 1)
    rest = rest.replace("(https://api.openai.com/v1)", "", 1)
    assert "http://" not in rest and "https://" not in rest


def test_small_run_draws_one_bar_per_call_in_picture_order_and_colour() -> None:
    """The same picture as the terminal: one row per call in ``bars`` order, stage colours."""
    p = picture(fan(12, concurrency=4))
    drawn = Parsed(render_report(p, manifest(12))).bars()
    assert len(drawn) == len(p.bars) == 36
    assert [rect["fill"] for rect in drawn] == [p.colour(b.stage) for b in p.bars]
    ys = [float(rect["y"] or 0) for rect in drawn]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    left = float(drawn[0]["x"] or 0)
    assert all(float(r["x"] or 0) >= left and float(r["width"] or 0) > 0 for r in drawn)


def test_failed_calls_are_hatched_and_outlined_and_listed_on_hover() -> None:
    bars = fan(2)
    bars[0] = bar(0, "research", 0.0, 0.3, status="error", error="HTTP 503 overloaded")
    html = render_report(picture(bars), manifest(2))
    failed = [r for r in Parsed(html).bars() if "failed" in (r.get("class") or "")]
    assert len(failed) == 1
    assert (failed[0]["fill"] or "").startswith("url(#fail")
    assert '<pattern id="fail0"' in html
    assert "failed: HTTP 503 overloaded" in html


def test_queued_band_and_retry_pass_markers_are_drawn_apart_from_the_calls() -> None:
    p = picture(fan(20), queued=((0.0, 3.0), (0.0, 6.0)), markers=(Marker(5.5, "retry pass 1"),))
    html = render_report(p, manifest(20))
    assert 'class="queued"' in html and "chains queued for a slot: at most" in html
    assert html.count('class="marker"') == 1 and "retry pass 1" in html


def test_verdict_word_explanation_and_numbers_lead_the_page() -> None:
    p = picture(fan(20))
    assert p.parallelism.verdict == "fan"
    html = render_report(p, manifest(20))
    verdict = html.index('id="verdict"')
    assert verdict < html.index('id="waterfall"')
    assert '<div class="word">fan</div>' in html
    assert str(p.parallelism.explanation) in html
    assert f"{p.parallelism.effective:.2f}" in html


def test_staircase_and_missing_verdict_are_said_too() -> None:
    stairs = [bar(t, "research", t * 1.0, t * 1.0 + 0.9) for t in range(5)]
    html = render_report(picture(stairs, allowed=1), manifest(5))
    assert '<div class="word">staircase</div>' in html and "concurrency 1 set the pace" in html
    empty = Waterfall("r", 0.0, STAGES, (), 0, (), (), Parallelism())
    html = render_report(empty, manifest(0))
    assert '<div class="word">no verdict</div>' in html


def test_failures_section_appears_only_when_a_topic_failed() -> None:
    p = picture(fan(3))
    assert 'id="failures"' not in render_report(p, manifest(3))
    html = render_report(p, manifest(3, failed={2: "HTTP 400 context_length_exceeded"}))
    assert 'id="failures"' in html and "HTTP 400 context_length_exceeded" in html


def test_topic_table_has_a_row_per_topic_with_stage_cells_and_reused_marker() -> None:
    m = manifest(3)
    m.topics[1].stages[0].cached, m.topics[1].stages[0].attempts = True, 0
    m.topics[2].stages[1].attempts = 3
    html = render_report(picture(fan(3)), m)
    table = html[html.index('id="topics"') :]
    assert table.count("<tr>") == 4  # header + one per topic
    assert "(reused 1/3)" in table and "0.90 s ×3" in table


def test_more_than_max_bars_calls_are_aggregated_per_stage_with_slowest_listed() -> None:
    bars = fan(MAX_BARS // 3 + 1, concurrency=50)
    assert len(bars) > MAX_BARS
    bars[7] = bar(7, "write", 1.0, 9.0)
    html = render_report(picture(bars), manifest(MAX_BARS // 3 + 1))
    page = Parsed(html)
    assert page.bars() == []
    assert 'id="aggregated"' in html and f"more than the {MAX_BARS:,}" in html
    flights = [a for t, a in page.tags if t == "path" and a.get("class") == "flight"]
    assert [a["fill"] for a in flights] == [*(picture(bars).colour(s) for s in STAGES), "#555555"]
    slowest = html[html.index('id="slowest"') : html.index('id="topics"')]
    assert slowest.count("<tr") == SLOWEST + 1
    assert "<td>Topic 7</td><td>write</td>" in slowest, "the slowest call leads the list"


def test_a_stage_the_run_did_not_list_still_gets_a_legend_entry_and_an_in_flight_row() -> None:
    """As in ``orchestrate trace``: the chain's stages, then any other a call names."""
    bars = fan(MAX_BARS // 3 + 1, concurrency=50)
    bars.append(bar(0, "review", 0.5, 1.5))
    p = picture(bars)
    html = render_report(p, manifest(MAX_BARS // 3 + 1))
    flights = [a for t, a in Parsed(html).tags if t == "path" and a.get("class") == "flight"]
    assert len(flights) == len(STAGES) + 2 and flights[-2]["fill"] == p.colour("review")
    small = render_report(picture([bar(0, "review", 0.0, 1.0)]), manifest(1))
    assert f'background: {p.colour("review")}"></span>review' in small
