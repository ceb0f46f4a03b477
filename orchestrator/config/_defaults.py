"""Where the packaged default agents and configs live.

The repo's ``agents/`` and ``configs/`` are the single source: a wheel carries them as
``orchestrator/_defaults/`` (hatch ``force-include``), while an editable install or a source
checkout reads them from the repo root beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # the orchestrator package


def defaults_dir() -> Path:
    """The folder holding the default ``agents/`` and ``configs/``."""
    packaged = _PACKAGE / "_defaults"
    if (packaged / "configs").is_dir():
        return packaged
    return _PACKAGE.parent


def default_chain_file() -> Path:
    """The packaged default chain file."""
    return defaults_dir() / "configs" / "chain.yaml"
