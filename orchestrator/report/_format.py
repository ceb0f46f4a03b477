"""How numbers and text are shown on one terminal line: the one duration format, and
shortening (with control characters made harmless) of whatever a topic or model wrote."""

from __future__ import annotations


def shorten(text: str, width: int = 80) -> str:
    """One line of at most ``width`` characters: a 2 MB topic must not flood the terminal,
    and what a topic or a model wrote is shown, never obeyed — control characters (an
    escape sequence's ESC, a carriage return, a bell) become spaces or visible ``\x1b``."""
    line = " ".join(printable(text[: width * 8]).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def printable(text: str) -> str:
    """``text`` with every control character shown as its escape (``\x1b``), newlines and
    tabs kept; safe to write to any terminal."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode() for c in text
    )


def duration(seconds: float, *, precise: bool = False) -> str:
    """``7s``, ``1m40s``, ``2h05m``: short, and the same shape from one line to the next.
    ``precise`` shows tenths under a minute (``12.3s``), for times measured once."""
    if precise and seconds < 59.95:
        return f"{max(0.0, seconds):.1f}s"
    s = max(0, round(seconds) if precise else int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
