"""Shared fixtures. No test reaches the internet or needs an API key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Variables that would point a test at a real provider, or change the simulator.
_PROVIDER_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove provider credentials and simulator overrides from every test's environment."""
    import os

    for name in list(os.environ):
        if name in _PROVIDER_VARS or name.startswith("ORCHESTRATE_SIM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repo's agents/ and configs/ in a temporary folder, which is the cwd."""
    shutil.copytree(REPO / "agents", tmp_path / "agents")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    """Write a (dedented) file and return its path."""
    import textwrap

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path
