"""Run folders and files on disk: ids, atomic writes, the ``latest`` link.

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from ._errors import ConfigError, OutputError


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename; OutputError on failure."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OutputError(path, exc.strerror or str(exc)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def new_run_id(now: datetime | None = None) -> str:
    """A run id like ``20261122-153012-a3f9``: UTC time, then 4 random hex digits."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_run_dir(root: Path, *, prefix: str = "") -> tuple[str, Path]:
    """Make ``root/<prefix><run-id>/`` (a fresh id on the rare collision) and return the
    folder's name and path; ``compare`` and ``bench`` use prefixes of their own.

    An outputs root that cannot be used is the user's to fix: a ConfigError on ``--out``.
    """
    while True:
        run_id = prefix + new_run_id()
        run_dir = root / run_id
        try:
            root.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            if root.is_dir():
                continue
            raise ConfigError(
                f"cannot create the outputs folder {root}: a file is in the way",
                field="--out",
                hint="choose another --out",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot create {run_dir}: {exc.strerror or exc}",
                field="--out",
                hint="choose a writable --out folder",
            ) from None
        return run_id, run_dir.resolve()


def point_latest(root: Path, run_id: str) -> None:
    """Make ``root/latest`` a relative symlink to the run, replacing any old one atomically."""
    link = root / "latest"
    tmp = root / f".latest.{secrets.token_hex(4)}"
    try:
        tmp.symlink_to(run_id, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        # No symlinks (some Windows setups, some network drives): a text file is the next
        # best thing, and `orchestrate trace outputs/latest` can follow it.
        tmp.unlink(missing_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        if not link.exists():
            atomic_write_text(link, run_id + "\n")
