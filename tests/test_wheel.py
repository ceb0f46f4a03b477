"""The installed program, as a user gets it: a wheel built from this repo, installed into a
fresh virtual environment, then ``orchestrate init`` and a run from a folder outside the repo.

Offline by construction: the wheel is built without build isolation (hatchling comes from
the dev extra), the venv sees the current environment's packages for the dependencies, and
the wheel is installed with ``--no-deps --no-index``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO

_DEFAULT_FOLDERS = ("agents", "configs")


@dataclass(frozen=True)
class Installed:
    venv: Path
    bin: Path
    env: Mapping[str, str]
    # The repo's default files as they were when the wheel was built from it: others may be
    # editing them while the tests run.
    defaults: Mapping[str, bytes]


def snapshot_defaults() -> dict[str, bytes]:
    """The repo's defaults, and the schemas their headers name (kept up to date by
    tests/test_schema.py), which init writes from the models."""
    globs = [(folder, "*.y*ml") for folder in _DEFAULT_FOLDERS] + [("schemas", "*.json")]
    return {
        f"{folder}/{path.name}": path.read_bytes()
        for folder, pattern in globs
        for path in sorted((REPO / folder).glob(pattern))
        if not path.name.startswith(".")  # editor droppings are not defaults
    }


def call(*args: str | Path, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run a command; on failure, the assertion shows everything it printed."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def user_environ(venv_bin: Path) -> dict[str, str]:
    """The environment of a user with the venv on PATH: no provider keys, no leaks of this
    environment's Python settings, and a simulator fast enough for a test."""
    dropped = ("OPENAI_", "ORCHESTRATE_SIM_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["ORCHESTRATE_SIM_TIME_SCALE"] = "0.001"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel and install it into a fresh venv, once for this module."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.fail(
            "hatchling is not installed; it comes with the dev extra: pip install -e '.[dev]'"
        )
    root = tmp_path_factory.mktemp("wheel")
    defaults = snapshot_defaults()
    call(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--quiet",
        "-w",
        root / "dist",
        REPO,
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("orchestrate-*.whl")

    venv = root / "venv"
    # Without its own pip (ensurepip takes seconds): this environment's pip, importable in
    # the venv through the site-packages below, installs into the venv all the same.
    call(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=root)
    venv_python = venv / "bin" / "python"
    # When the tests themselves run in a venv (CI does), "system" site-packages means the
    # base interpreter's, which lacks our dependencies: point the new venv at this
    # environment's too. The venv's own site-packages stays first on sys.path, so its
    # orchestrator, from the wheel, wins over any other copy.
    venv_site = Path(
        call(
            venv_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root
        ).strip()
    )
    (venv_site / "_outer_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # --ignore-installed: this environment has orchestrate (editable) at the same version;
    # without it pip tries to uninstall that one first (and only declines because it lies
    # outside the venv). Ignoring it never touches it.
    call(
        venv_python,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        "--quiet",
        wheel,
        cwd=root,
    )
    yield Installed(venv, venv / "bin", user_environ(venv / "bin"), defaults)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder outside the repo, so nothing is found there by accident."""
    assert REPO not in tmp_path.parents
    return tmp_path


def test_the_venv_imports_the_wheel_not_the_repo(installed: Installed, outside: Path) -> None:
    """This environment's editable install puts the repo on sys.path; the wheel must win."""
    code = (
        "import orchestrator, orchestrator.config._defaults as d; "
        "print(orchestrator.__file__); print(d.defaults_dir())"
    )
    out = call(installed.bin / "python", "-c", code, cwd=outside, env=installed.env)
    package_file, defaults = (Path(line) for line in out.splitlines())
    package = package_file.parent
    assert installed.venv.resolve() in package.resolve().parents, package
    assert REPO.resolve() not in package.resolve().parents
    assert (package / "_defaults" / "configs" / "chain.yaml").is_file()
    assert defaults.resolve() == (package / "_defaults").resolve()
    assert shutil.which("orchestrate", path=installed.env["PATH"]) == str(
        installed.bin / "orchestrate"
    )


def test_version_is_the_projects(installed: Installed, outside: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    out = call("orchestrate", "--version", cwd=outside, env=installed.env)
    assert f"version {version}" in out


def test_init_then_run_from_a_folder_outside_the_repo(installed: Installed, outside: Path) -> None:
    out = call("orchestrate", "init", "proj", cwd=outside, env=installed.env)
    assert "next: cd proj && orchestrate run configs/topics.example.yaml" in out
    project = outside / "proj"
    written = {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file()
    }
    assert written == installed.defaults

    call(
        "orchestrate",
        "run",
        "configs/topics.example.yaml",
        "--limit",
        "2",
        "-q",
        cwd=project,
        env=installed.env,
    )
    manifest = json.loads((project / "outputs" / "latest" / "run.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["provider"] == "simulated"
    assert (manifest["totals"]["topics"], manifest["totals"]["succeeded"]) == (2, 2)
