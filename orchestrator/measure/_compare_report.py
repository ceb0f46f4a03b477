"""A comparison, written for someone who has never seen the tool: ``report.md`` and the
terminal table.

Pure rendering of a ``CompareReport``; nothing here measures or decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..report._format import shorten

if TYPE_CHECKING:
    from ._compare_model import CompareReport, ModeResult


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _cost(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _md(text: str) -> str:
    """Topic text made safe for a Markdown table cell."""
    return shorten(text, 60).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def plural(n: int, word: str) -> str:
    """``1 topic``, ``2 topics``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def headline(r: CompareReport) -> str:
    """One sentence: how much faster parallel was, or why the times cannot say."""
    seq = r.sequential.wall_time_s
    par = r.parallel.wall_time_s if r.parallel is not None else None
    if r.not_comparable is not None:
        return f"No speedup to report: {r.not_comparable}."
    if r.speedup is None or seq is None or par is None:
        return "No speedup to report: a run has no wall time."
    faster = f"{r.speedup:.2f}× faster" if r.speedup >= 1 else f"{1 / r.speedup:.2f}× slower"
    saved = r.time_saved_pct or 0.0
    return (
        f"With {plural(r.concurrency, 'chain')} at once the {plural(r.topics, 'topic')} took "
        f"{par:.2f} s; one chain at a time took {seq:.2f} s: {faster}, {saved:.1f}% of the "
        "time saved."
    )


def theory_lines(r: CompareReport) -> list[str]:
    """The theory in three sentences: best possible, expected from the chains, measured."""
    t, n, c = r.theory, r.topics, r.concurrency
    lines = [
        f"Best possible: {plural(c, 'slot')} fill ceil({n} ÷ {c}) = {plural(t.rounds, 'time')}, so "
        f"{n} equal {'chain' if n == 1 else 'chains'} can run at most {n} ÷ {t.rounds} = "
        f"{t.best_speedup:.2f}× faster."
    ]
    if t.expected_parallel_s is not None and t.chain_time_min_s is not None:
        lines.append(
            f"The chains of the sequential run took {t.chain_time_min_s:.2f}–"
            f"{t.chain_time_max_s or 0:.2f} s each. Handed out in order to whichever slot frees "
            f"first (as the workers do), they would take {t.expected_parallel_s:.2f} s: "
            f"an expected {_x(t.expected_speedup)}."
        )
    par = r.parallel.wall_time_s if r.parallel is not None else None
    if r.overhead_pct is not None and par is not None:
        measured = f"Measured: {par:.2f} s, "
        if abs(r.overhead_pct) < 1:
            measured += "within 1% of that expectation"
        elif r.overhead_pct > 0:
            measured += (
                f"{r.overhead_pct:.1f}% over that expectation (the cost of the calls "
                "themselves: client, network, a provider answering several at once)"
            )
        else:
            measured += f"{-r.overhead_pct:.1f}% under that expectation"
        lines.append(f"{measured}; {100 * (r.efficiency or 0):.0f}% of the best possible.")
    return lines


def _mode_rows(seq: ModeResult, par: ModeResult | None) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, Callable[[ModeResult], str]]] = [
        ("Total time", lambda m: _s(m.wall_time_s)),
        ("Status", lambda m: m.status),
        ("Topics succeeded", lambda m: str(m.succeeded)),
        ("Topics failed / skipped", lambda m: f"{m.failed} / {m.skipped}"),
        ("Model calls (failed)", lambda m: f"{m.calls} ({m.failed_calls})"),
        ("Retries", lambda m: "—" if m.retries is None else str(m.retries)),
        ("Tokens in / out", lambda m: f"{m.prompt_tokens:,} / {m.completion_tokens:,}"),
        ("Cost", lambda m: _cost(m.cost)),
    ]
    return [(name, f(seq), f(par) if par is not None else "not run") for name, f in rows]


def render_markdown(r: CompareReport) -> str:
    """The whole ``report.md``."""
    par_name = f"Parallel (-c {r.concurrency})"
    chain = " → ".join(r.stages)
    out = [
        f"# Sequential vs parallel: {r.topics} topics through {chain}",
        "",
        f"**{headline(r)}**",
        "",
        f"**Did parallel execution change output quality?** {r.outputs.answer}",
        "",
        "## What was run",
        "",
        f"- Topics: `{r.topics_file}` ({r.topics} topics); chain: `{r.chain_file}` "
        f"({chain}; model{'s' if len(r.models) > 1 else ''} {', '.join(r.models)}).",
        f"- Provider: {r.provider} at {r.endpoint}.",
        "- **Sequential**: one chain at a time; each topic waits for the one before.",
        f"- **Parallel**: up to {r.concurrency} chains at once. Within a chain the stages "
        "still run in order, since each needs the one before.",
        "- Each mode is a separate run with its own client; no result is reused between "
        "them or from earlier runs. Their folders, with every article and a `run.json`, "
        "are `sequential/` and `parallel/` beside this report.",
        "",
        "## Results",
        "",
        f"| | Sequential | {par_name} |",
        "|---|---:|---:|",
        *(f"| {name} | {a} | {b} |" for name, a, b in _mode_rows(r.sequential, r.parallel)),
        "",
        (
            f"Speedup: **{_x(r.speedup)}** (sequential time ÷ parallel time). "
            f"Time saved: **{(r.time_saved_pct or 0):.1f}%** (1 − parallel ÷ sequential)."
            if r.not_comparable is None
            else f"No speedup: {r.not_comparable}."
        ),
        "",
        "## What theory says",
        "",
        *(f"- {line}" for line in theory_lines(r)),
        "",
        "## Per topic",
        "",
        "A chain's time runs from getting its slot to its last stage; in parallel, later "
        "topics first wait for a free slot.",
        "",
        "| # | Topic | Sequential | Parallel | Waited for a slot | Same output |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for t in r.per_topic:
        if t.identical is None:
            same = "— (failed)"
        elif t.identical:
            same = "yes"
        else:
            stages = ", ".join(t.differing_stages)
            same = f"no: {t.similarity:.2f} similar ({stages} differ)"
        out.append(
            f"| {t.index + 1} | {_md(t.topic)} | {_s(t.sequential_s)} | {_s(t.parallel_s)} "
            f"| {_s(t.parallel_queued_s)} | {same} |"
        )
    out += [
        "",
        "## How to read this",
        "",
        "The stages of one topic's chain depend on each other, so they must run one after "
        "another; different topics do not, so their chains can overlap. Waiting on a model "
        "is nearly all of a chain's time, and waiting can be shared: running chains side by "
        "side costs little more than the longest of them. The speedup is bounded by how "
        "often the slots fill up (rounds) and by how unequal the chains are — not by the "
        "number of topics alone.",
        "",
        "`compare.json` holds every number above as data.",
        "",
    ]
    return "\n".join(out)


def print_comparison(r: CompareReport, report_path: str, console: Console | None = None) -> None:
    """The comparison in the terminal: a table, the theory, the quality answer."""
    console = console or Console()
    table = Table(title=f"{r.topics} topics · {' → '.join(r.stages)} · {r.provider}")
    table.add_column("")
    table.add_column("sequential", justify="right")
    table.add_column(f"parallel -c {r.concurrency}", justify="right")
    for name, a, b in _mode_rows(r.sequential, r.parallel):
        table.add_row(name, a, b)
    console.print(table)
    notes = Table.grid(padding=(0, 1))
    notes.add_column(no_wrap=True)
    notes.add_column()
    notes.add_row("[bold]Speed[/]", escape(headline(r)))
    for line in theory_lines(r):
        notes.add_row("", f"· {escape(line)}")
    notes.add_row("[bold]Quality[/]", escape(r.outputs.answer))
    notes.add_row("[bold]Report[/]", escape(report_path))
    console.print(notes)
