"""``orchestrate init DIR``: write the default agents and configs into a folder.

Everything to write is computed first, as (relative path, bytes) pairs; then every target is
checked, and only when none is in the way (or ``force``) is anything written. So a refused
init leaves the folder exactly as it was. Each file is written to a temporary name and
renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from .._errors import ConfigError
from ._defaults import defaults_dir
from ._schema import schema_files

# One generated file: where it goes inside the folder, and its exact bytes.
FileToWrite = tuple[PurePosixPath, bytes]

# How many conflicting files the refusal names before it says "and N more".
_SHOWN_CONFLICTS = 3
# The default folders init copies; only their YAML files, so a stray editor backup or a
# __pycache__ beside them never reaches a user's project.
_DEFAULT_FOLDERS = ("agents", "configs")
_YAML_SUFFIXES = frozenset({".yaml", ".yml"})


def default_files() -> list[FileToWrite]:
    """The packaged default agents and configs, as they are on disk now."""
    root = defaults_dir()
    files: list[FileToWrite] = []
    for name in _DEFAULT_FOLDERS:
        source = root / name
        if not source.is_dir():
            raise ConfigError(
                f"the default {name}/ folder is missing from the installation ({source})",
                hint="reinstall orchestrate",
            )
        for path in sorted(source.iterdir()):
            if path.is_file() and path.suffix in _YAML_SUFFIXES and not path.name.startswith("."):
                files.append((PurePosixPath(name, path.name), path.read_bytes()))
    return files


# Every set of files init writes, in order: one line per set. Each returns (relative path,
# bytes) pairs and writes nothing itself, so the conflict check covers them all.
_FILE_SETS: tuple[Callable[[], Iterable[FileToWrite]], ...] = (default_files, schema_files)


def init_project(folder: Path, *, force: bool = False) -> list[Path]:
    """Write the default ``agents/`` and ``configs/``, and the JSON Schemas their headers
    name (``schemas/``), into ``folder`` (created if missing); return the paths written.

    Other files already in ``folder`` are left alone. When any file init would write exists
    already, nothing is written and a ``ConfigError`` names them, unless ``force``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"{folder} is a file, not a folder",
            field="DIR",
            hint="give a folder to write into (it is created if missing)",
        )
    files = [item for make in _FILE_SETS for item in make()]
    targets = [(folder.joinpath(relative), content) for relative, content in files]
    _check_folders(folder, [path for path, _ in targets])
    if not force:
        _refuse_overwrites(folder, [path for path, _ in targets])
    for path, content in targets:
        _write_atomically(path, content, folder=folder)
    return [path for path, _ in targets]


def _check_folders(folder: Path, paths: list[Path]) -> None:
    """A file where init needs a folder (e.g. DIR/configs is a file) cannot be forced."""
    parents = {parent for path in paths for parent in path.parents if folder in parent.parents}
    for parent in sorted(parents):
        if parent.exists() and not parent.is_dir():
            raise ConfigError(
                f"{parent} is a file, but init needs a folder there",
                field="DIR",
                hint="move that file away, or init another folder",
            )


def _refuse_overwrites(folder: Path, paths: list[Path]) -> None:
    # lexists: a dangling symlink is in the way too.
    existing = [path for path in paths if os.path.lexists(path)]
    if not existing:
        return
    shown = ", ".join(str(path) for path in existing[:_SHOWN_CONFLICTS])
    more = len(existing) - _SHOWN_CONFLICTS
    if more > 0:
        shown += f" and {more} more"
    raise ConfigError(
        f"{len(existing)} file(s) would be overwritten, so nothing was written: {shown}",
        field="DIR",
        hint=f"pass --force to overwrite them with the defaults, or init another folder "
        f"than {folder}",
    )


def _write_atomically(path: Path, content: bytes, *, folder: Path) -> None:
    """Write via a temporary file and a rename; an unwritable folder is the user's to fix."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}",
            field="DIR",
            hint=f"make {folder} writable, or init another folder",
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
