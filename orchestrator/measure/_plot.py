"""Line charts as self-contained SVG text, with no plotting dependency.

``orchestrate bench`` uses it to draw time against concurrency per batch size, measured
(solid, with markers) beside theoretical (dashed), into a file any browser opens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

# Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/), yellow left out
# because it is unreadable on white.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
_CHAR_PX = 7  # rough width of one 12 px character, to size margins and the legend
_ROW_PX = 20  # height of one legend row
_MAX_EXACT_TICKS = 12  # a log x axis with at most this many distinct x values ticks each one


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are ``(x, y)`` with x ascending; ``group`` shares a colour."""

    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    group: str | None = None


def line_chart_svg(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    log_y: bool = False,
    width: int = 720,
    height: int = 440,
) -> str:
    """Render ``series`` as a standalone SVG 1.1 document and return its text.

    Raises ``ValueError`` for no series, a series without points, a value that is not finite,
    or a value that is zero or negative on a log axis (such points are refused, not clipped,
    so a chart never silently drops a measurement). The chart grows beyond ``width`` and
    ``height`` when the legend needs the room.
    """
    if not series:
        raise ValueError("line_chart_svg needs at least one series")
    for s in series:
        if not s.points:
            raise ValueError(f"series {s.label!r} has no points")
        for x, y in s.points:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"series {s.label!r} has a point that is not finite: {(x, y)}")
            for name, v, log in (("x", x, log_x), ("y", y, log_y)):
                if log and v <= 0:
                    raise ValueError(
                        f"series {s.label!r} has {name}={v:g}, which a log {name} axis cannot "
                        f"show; HINT: use a linear {name} axis or drop the point"
                    )
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_lo, x_hi, x_ticks = _axis(min(xs), max(xs), log_x)
    y_lo, y_hi, y_ticks = _axis(min(ys), max(ys), log_y)

    y_tick_chars = max(len(_fmt(v)) for v in y_ticks)
    legend_w = 44 + _CHAR_PX * max(len(s.label) for s in series)
    left, top, bottom, right = 34 + _CHAR_PX * y_tick_chars, 44, 56, legend_w + 20
    width = max(width, left + right + 240)
    height = max(height, top + bottom + _ROW_PX * len(series) + 10)
    plot_w, plot_h = width - left - right, height - top - bottom
    sx = _scale(x_lo, x_hi, log_x, left, left + plot_w)
    distinct_x = sorted(set(xs))
    if log_x and len(distinct_x) <= _MAX_EXACT_TICKS:
        # Tick each x (e.g. concurrency 1, 5, 10, 25), unless neighbouring labels would collide.
        exact = _scale(*_padded_log(distinct_x[0], distinct_x[-1]), True, left, left + plot_w)
        at = [exact(v) for v in distinct_x]
        room = _CHAR_PX * max(len(_fmt(v)) for v in distinct_x) + 6
        if all(b - a >= room for a, b in zip(at, at[1:], strict=False)):
            sx, x_ticks = exact, distinct_x
    sy = _scale(y_lo, y_hi, log_y, top + plot_h, top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" {_FONT} font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(width / 2, 26, title, 'text-anchor="middle" font-size="16" font-weight="600"'),
    ]
    for v in x_ticks:
        px = _n(sx(v))
        out.append(f'<line x1="{px}" y1="{top}" x2="{px}" y2="{top + plot_h}" stroke="#e5e5e5"/>')
        out.append(_text(sx(v), top + plot_h + 18, _fmt(v), 'text-anchor="middle"'))
    for v in y_ticks:
        py = _n(sy(v))
        out.append(f'<line x1="{left}" y1="{py}" x2="{left + plot_w}" y2="{py}" stroke="#e5e5e5"/>')
        out.append(_text(left - 8, sy(v) + 4, _fmt(v), 'text-anchor="end"'))
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#888888"/>'
    )
    out.append(_text(left + plot_w / 2, height - 14, x_label, 'text-anchor="middle"'))
    ly = top + plot_h / 2
    out.append(_text(16, ly, y_label, f'text-anchor="middle" transform="rotate(-90 16 {_n(ly)})"'))

    colours = _colours(series)
    for i, s in enumerate(series):
        colour, dash = colours[i], ' stroke-dasharray="6 4"' if s.dashed else ""
        pts = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in s.points)
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        if not s.dashed:
            for x, y in s.points:
                tip = escape(f"{s.label}: x={x:g}, y={y:g}")
                out.append(
                    f'<circle cx="{_n(sx(x))}" cy="{_n(sy(y))}" r="3.5" fill="{colour}">'
                    f"<title>{tip}</title></circle>"
                )
        # The legend sits right of the plot, so it never covers a line.
        lx, row_y = left + plot_w + 16, top + 8 + _ROW_PX * i
        out.append(
            f'<line x1="{lx}" y1="{row_y}" x2="{lx + 26}" y2="{row_y}" stroke="{colour}" '
            f'stroke-width="2"{dash}/>'
        )
        if not s.dashed:
            out.append(f'<circle cx="{lx + 13}" cy="{row_y}" r="3.5" fill="{colour}"/>')
        out.append(_text(lx + 34, row_y + 4, s.label, ""))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _axis(lo: float, hi: float, log: bool) -> tuple[float, float, list[float]]:
    """The shown range and 'nice' ticks: 1-2-5 steps, or powers of ten (plus 2s and 5s)."""
    if not log:
        if lo == hi:
            pad = abs(lo) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        raw = (hi - lo) / 5
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * 0.999)
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        ticks = [round(i * step, 12) for i in range(first, last + 1)]
        return ticks[0], ticks[-1], ticks
    lo, hi = _padded_log(lo, hi)
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    powers = [10.0**k for k in decades if lo <= 10.0**k <= hi]
    if len(powers) >= 3:
        stride = math.ceil(len(powers) / 8)  # never more than eight labels
        return lo, hi, powers[::stride]
    ticks = [m * 10.0**k for k in decades for m in (1, 2, 5) if lo <= m * 10.0**k <= hi]
    return lo, hi, ticks if len(ticks) >= 2 else [lo, hi]


def _padded_log(lo: float, hi: float) -> tuple[float, float]:
    """A log range a little wider than the data, so end points are not drawn on the frame."""
    if lo == hi:
        return lo / 2, hi * 2
    pad = (math.log10(hi) - math.log10(lo)) * 0.04
    return lo / 10**pad, hi * 10**pad


def _scale(lo: float, hi: float, log: bool, p0: float, p1: float) -> Callable[[float], float]:
    """Map data values onto pixels, ``lo`` to ``p0`` and ``hi`` to ``p1``."""
    f: Callable[[float], float] = math.log10 if log else float
    a, b = f(lo), f(hi)
    return lambda v: p0 + (f(v) - a) / (b - a) * (p1 - p0)


def _colours(series: Sequence[Series]) -> list[str]:
    """One palette colour per group, in order of first appearance; ungrouped series get one each."""
    seen: dict[object, str] = {}
    keys: list[object] = [s.group if s.group is not None else ("", i) for i, s in enumerate(series)]
    for key in keys:
        seen.setdefault(key, _PALETTE[len(seen) % len(_PALETTE)])
    return [seen[key] for key in keys]


def _fmt(v: float) -> str:
    """Compact tick labels: ``1``, ``2.5``, ``0.01``, ``1k``, ``2.5M``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}" if v else "0"


def _n(v: float) -> str:
    """A coordinate rounded to two decimals, without trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text(x: float, y: float, content: str, attrs: str) -> str:
    """A ``<text>`` element whose content is XML-escaped."""
    return f'<text x="{_n(x)}" y="{_n(y)}" fill="#222222" {attrs}>{escape(content)}</text>'
