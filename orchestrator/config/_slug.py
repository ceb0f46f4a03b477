"""Safe, unique file names for topics.

A topic's text never chooses a path outside the run folder: a slug is lowercase ASCII
letters, digits and single hyphens, so it has no separators, no ``..`` and no leading dot.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

MAX_SLUG_LENGTH = 60
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


# Names Windows will not create as files, whatever the extension.
_RESERVED = frozenset(
    {
        "con",
        "prn",
        "aux",
        "nul",
        *(f"com{i}" for i in range(1, 10)),
        *(f"lpt{i}" for i in range(1, 10)),
    }
)


def slugify(text: str, *, max_length: int = MAX_SLUG_LENGTH) -> str:
    """``"Quantum computing: what's real?"`` -> ``"quantum-computing-what-s-real"``.

    Text with no ASCII letters or digits (``"東京"``) gets ``topic-`` and a short hash of the
    text, so such topics stay distinct and stable from run to run.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_ALLOWED.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-")
    if not slug:
        slug = "topic-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    elif slug in _RESERVED:
        slug += "-topic"
    return slug


def unique_slugs(texts: Iterable[str]) -> list[str]:
    """Slugify each text; when two collide, the later ones get ``-2``, ``-3``, ..."""
    seen: set[str] = set()
    result: list[str] = []
    for text in texts:
        base = slugify(text)
        slug, n = base, 1
        while slug in seen:
            n += 1
            suffix = f"-{n}"
            slug = base[: MAX_SLUG_LENGTH - len(suffix)].rstrip("-") + suffix
        seen.add(slug)
        result.append(slug)
    return result
