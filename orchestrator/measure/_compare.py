"""``compare()``: the same topics sequentially, then in parallel, side by side.

Each mode is a complete run of its own — its own client (and simulated server), its own
limiters, no results carried over — written to ``<out>/compare-<id>/sequential/`` and
``.../parallel/``. The comparison itself — times, the theory, whether the outputs match —
goes to ``compare.json`` (a ``CompareReport``) and ``report.md`` beside them.
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .._files import atomic_write_text, create_run_dir
from ..engine._events import ChainFinished, Event, Observer
from ..provider._client import ChatClient
from ..report._run_json import RunManifest
from ..session._progress import with_progress
from ..session._setup import RunSetup, prepare
from ._compare_model import (
    CompareReport,
    Mode,
    ModeResult,
    OutputsVerdict,
    Theory,
    TopicComparison,
)
from ._compare_report import plural, render_markdown
from ._schedule import best_speedup, list_schedule, rounds


class _FinalOutputs:
    """An observer keeping every succeeded chain's stage outputs, for the comparison."""

    def __init__(self) -> None:
        self.outputs: dict[int, Mapping[str, str]] = {}

    async def on_event(self, event: Event) -> None:
        if isinstance(event, ChainFinished) and event.status == "succeeded":
            self.outputs[event.topic.index] = dict(event.outputs)


async def compare(
    topics: str | Path,
    *,
    chain: str | Path | None = None,
    out: str | Path = "outputs",
    concurrency: int = 2,
    provider: str = "auto",
    limit: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    retry_passes: int | None = None,
    sim: Mapping[str, Any] | None = None,
    observers: Sequence[Observer] = (),
    progress: Observer | bool = True,
    client: ChatClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> CompareReport:
    """Run ``topics`` sequentially, then with ``concurrency`` chains at once, and compare.

    Writes ``<out>/compare-<id>/`` with both runs, ``compare.json`` and ``report.md``, and
    returns the report. Raises ``ConfigError`` before any call when anything is wrong,
    including a ``concurrency`` below 1. ``observers`` hear both runs (``RunStarted.mode``
    says which); ``progress`` is the display of ``run()``, for both. Later stage reuse must
    not apply here: each mode calls everything.
    """
    observers = with_progress(observers, progress)
    setup = prepare(
        topics,
        chain=chain,
        concurrency=concurrency,
        provider=provider,
        limit=limit,
        rpm=rpm,
        tpm=tpm,
        retry_passes=retry_passes,
        sim=sim,
        client=client,
        environ=environ,
    )
    root = Path(out)
    compare_id, compare_dir = create_run_dir(root, prefix="compare-")
    created = datetime.now().astimezone()
    runs: dict[Mode, tuple[RunManifest, dict[int, Mapping[str, str]]]] = {}
    modes: tuple[tuple[Mode, RunSetup], ...] = (
        ("sequential", setup.with_width(1, sequential=True)),
        ("parallel", setup),
    )
    for mode, mode_setup in modes:
        kept = _FinalOutputs()
        manifest = await mode_setup.execute(
            f"{compare_id}-{mode}",
            compare_dir / mode,
            observers=[kept, *observers],
            warm_up=True,  # the first call's one-off costs would count against sequential
        )
        runs[mode] = manifest, kept.outputs
        if manifest.status == "stopped":  # e.g. insufficient_quota: the next would stop too
            break
    report = build_report(
        compare_id,
        created,
        setup,
        sequential=runs["sequential"],
        parallel=runs.get("parallel"),
    )
    # The runs are on disk already; the report files appear whole or not at all.
    atomic_write_text(compare_dir / "compare.json", report.model_dump_json(indent=2) + "\n")
    atomic_write_text(compare_dir / "report.md", render_markdown(report))
    return report


def build_report(
    compare_id: str,
    created: datetime,
    setup: RunSetup,
    *,
    sequential: tuple[RunManifest, Mapping[int, Mapping[str, str]]],
    parallel: tuple[RunManifest, Mapping[int, Mapping[str, str]]] | None,
) -> CompareReport:
    """The comparison of two finished runs of the same plan (pure: no I/O); ``parallel``
    is None when it was not run."""
    seq, seq_out = sequential
    par, par_out = parallel if parallel is not None else (None, {})
    n, width = len(setup.plan.topics), setup.width
    final = setup.plan.stages[-1].name

    # Only chains that ran to the end say how long a chain takes.
    chain_times = [t.latency_s or 0.0 for t in seq.topics if t.status == "succeeded"]
    expected = list_schedule(chain_times, width) if chain_times else None
    reason = _not_comparable(seq, par)
    seq_wall = seq.wall_time_s if reason is None else None
    par_wall = par.wall_time_s if par is not None and reason is None else None
    theory = Theory(
        rounds=rounds(n, width),
        best_speedup=round(best_speedup(n, width), 4),
        chain_time_min_s=min(chain_times, default=None),
        chain_time_max_s=max(chain_times, default=None),
        expected_parallel_s=_round(expected),
        expected_speedup=_round(_ratio(sum(chain_times), expected)),
    )
    speedup = _ratio(seq_wall, par_wall)

    per_topic = []
    par_topics = par.topics if par is not None else [None] * len(seq.topics)
    for s, p in zip(seq.topics, par_topics, strict=True):
        a, b = seq_out.get(s.index), par_out.get(s.index)
        identical = similarity = None
        differing: list[str] = []
        if a is not None and b is not None:
            identical = a.get(final) == b.get(final)
            similarity = 1.0 if identical else _similarity(a.get(final, ""), b.get(final, ""))
            differing = [stage for stage in a if a.get(stage) != b.get(stage)]
        per_topic.append(
            TopicComparison(
                index=s.index,
                topic=s.topic,
                slug=s.slug,
                sequential_s=s.latency_s,
                parallel_s=p.latency_s if p is not None else None,
                parallel_queued_s=p.queued_s if p is not None else None,
                identical=identical,
                similarity=_round(similarity),
                differing_stages=differing,
            )
        )

    deterministic = setup.provider == "simulated"
    return CompareReport(
        compare_id=compare_id,
        created_at=created,
        topics_file=seq.topics_file,
        chain_file=seq.chain_file,
        provider=seq.provider,
        endpoint=seq.endpoint,
        stages=seq.stages,
        models=sorted({stage.model for stage in setup.plan.stages}),
        topics=n,
        concurrency=width,
        sequential=_mode_result("sequential", seq),
        parallel=_mode_result("parallel", par) if par is not None else None,
        not_comparable=reason,
        speedup=_round(speedup),
        time_saved_pct=_round(None if speedup is None else 100 * (1 - 1 / speedup), 2),
        efficiency=_round(_ratio(speedup, best_speedup(n, width))),
        overhead_pct=_round(
            None if expected is None or par_wall is None else 100 * (par_wall / expected - 1), 2
        ),
        theory=theory,
        outputs=_outputs_verdict(per_topic, deterministic, setup),
        per_topic=per_topic,
    )


def _not_comparable(seq: RunManifest, par: RunManifest | None) -> str | None:
    """Why the two wall times cannot be set against each other, if they cannot."""
    if par is None:
        return (
            f"the sequential run stopped ({seq.stop_reason or 'no reason given'}), so the "
            "parallel run was not started"
        )
    if par.status == "stopped":
        return f"the parallel run stopped ({par.stop_reason or 'no reason given'})"
    lost_seq = seq.totals.failed + seq.totals.skipped
    lost_par = par.totals.failed + par.totals.skipped
    if lost_seq or lost_par:
        return (
            f"{plural(lost_seq, 'topic')} did not finish in the sequential run and "
            f"{lost_par} in the parallel one; a run that skips work is not faster"
        )
    return None


def _mode_result(mode: Mode, manifest: RunManifest) -> ModeResult:
    t = manifest.totals
    return ModeResult(
        mode=mode,
        concurrency=manifest.concurrency,
        run_dir=mode,
        status=manifest.status,
        wall_time_s=manifest.wall_time_s,
        succeeded=t.succeeded,
        failed=t.failed,
        skipped=t.skipped,
        calls=t.calls,
        failed_calls=t.failed_calls,
        retries=t.retries,
        prompt_tokens=t.prompt_tokens,
        completion_tokens=t.completion_tokens,
        total_tokens=t.total_tokens,
        cost=t.cost,
    )


def _outputs_verdict(
    per_topic: Sequence[TopicComparison], deterministic: bool, setup: RunSetup
) -> OutputsVerdict:
    compared = [t for t in per_topic if t.identical is not None]
    same = sum(1 for t in compared if t.identical)
    mean = statistics.fmean(t.similarity or 0.0 for t in compared) if compared else None
    if not compared:
        answer = "Not known: no topic succeeded in both modes, so there is nothing to compare."
    elif same == len(compared):
        answer = f"No: {_all(same)} identical in both modes" + (
            " — on the deterministic simulated provider the same request gets the same "
            "answer, and running chains in parallel did not change a single request."
            if deterministic
            else "."
        )
    elif deterministic:
        answer = (
            f"Yes, and it should not have: {len(compared) - same} of {len(compared)} outputs "
            "differ on the deterministic simulated provider, where the same requests must get "
            "the same answers. Please report this with both run folders."
        )
    else:
        temps = sorted({s.temperature for s in setup.plan.stages if s.temperature is not None})
        at = f" at temperature {', '.join(f'{t:g}' for t in temps)}" if temps else ""
        answer = (
            f"Not from this alone: {len(compared) - same} of {len(compared)} final outputs "
            f"differ (mean word-level similarity {mean:.2f}). A chain's requests depend only "
            "on its topic and its earlier stages' answers, never on the mode, so the "
            f"differences come from the model sampling each answer anew{at}; run compare "
            "again to see how much two runs of the same mode differ."
        )
    return OutputsVerdict(
        compared=len(compared),
        identical=same,
        mean_similarity=_round(mean),
        deterministic_provider=deterministic,
        answer=answer,
    )


def _all(n: int) -> str:
    return "the final output is" if n == 1 else f"all {n} final outputs are"


def _similarity(a: str, b: str) -> float:
    """Word-level similarity, 0 (nothing shared) to 1 (same words in the same order)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
