"""``orchestrate init DIR``: the default agents and configs, written safely into a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import orchestrator
from orchestrator._errors import ConfigError
from orchestrator.cli._init import init_command
from orchestrator.config._init import _SHOWN_CONFLICTS, init_project

from ..conftest import REPO


def repo_defaults() -> dict[str, bytes]:
    """The repo's default YAML files as they are now (others may be editing them), and the
    schemas their headers name (tests/test_schema.py keeps the repo's up to date)."""
    return {
        f"{folder}/{path.name}": path.read_bytes()
        for folder, pattern in (("agents", "*.y*ml"), ("configs", "*.y*ml"), ("schemas", "*.json"))
        for path in sorted((REPO / folder).glob(pattern))
        if not path.name.startswith(".")  # editor droppings are not defaults
    }


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path, with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def invoke(*args: str) -> Result:
    return CliRunner().invoke(init_command, list(args))


def test_init_into_a_missing_folder_writes_every_default_byte_for_byte(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "proj"
    written = init_project(folder)
    expected = repo_defaults()
    assert {"agents/research.yaml", "configs/chain.yaml", "configs/topics.example.yaml"} <= set(
        expected
    )
    assert sorted(p.relative_to(folder).as_posix() for p in written) == sorted(expected)
    assert tree(folder) == expected


def test_init_keeps_unrelated_files_in_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "translate.yaml").write_text("model: x\n")
    init_project(tmp_path)
    files = tree(tmp_path)
    assert files.pop("notes.txt") == b"mine\n"
    assert files.pop("agents/translate.yaml") == b"model: x\n"
    assert files == repo_defaults()


def test_a_conflict_refuses_before_writing_anything(tmp_path: Path) -> None:
    """One existing target is enough: no file is written, none is changed, all are named."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "chain.yaml").write_text("my chain\n")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "edit.yaml").write_text("my editor\n")
    before = tree(tmp_path)
    with pytest.raises(ConfigError) as caught:
        init_project(tmp_path)
    assert tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["agents", "configs", "chain.yaml", "edit.yaml"]
    ), "no temporary files left behind either"
    err = caught.value
    assert err.field == "DIR"
    assert "2 file(s) would be overwritten" in err.message
    assert str(tmp_path / "configs" / "chain.yaml") in err.message
    assert str(tmp_path / "agents" / "edit.yaml") in err.message
    assert err.hint is not None and "--force" in err.hint


def test_a_refusal_names_a_few_conflicts_then_counts_the_rest(tmp_path: Path) -> None:
    init_project(tmp_path)
    with pytest.raises(ConfigError) as caught:
        init_project(tmp_path)
    total = len(repo_defaults())
    message = caught.value.message
    assert f"{total} file(s) would be overwritten" in message
    assert total > _SHOWN_CONFLICTS
    assert message.endswith(f" and {total - _SHOWN_CONFLICTS} more")
    assert message.count(str(tmp_path)) == _SHOWN_CONFLICTS


def test_force_overwrites_the_conflicting_files_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "chain.yaml").write_text("my chain\n")
    (tmp_path / "keep.md").write_text("kept\n")
    init_project(tmp_path, force=True)
    files = tree(tmp_path)
    assert files.pop("keep.md") == b"kept\n"
    assert files == repo_defaults()


def test_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    target.write_text("not a folder\n")
    with pytest.raises(ConfigError, match="is a file, not a folder") as caught:
        init_project(target)
    assert caught.value.field == "DIR"
    assert target.read_text() == "not a folder\n"


def test_a_file_where_a_default_folder_goes_refuses_even_with_force(tmp_path: Path) -> None:
    (tmp_path / "configs").write_text("in the way\n")
    with pytest.raises(ConfigError, match="init needs a folder there"):
        init_project(tmp_path, force=True)
    assert tree(tmp_path) == {"configs": b"in the way\n"}


def test_cli_prints_the_count_the_folder_and_the_next_command(tmp_path: Path) -> None:
    folder = tmp_path / "my project"
    result = invoke(str(folder))
    assert result.exit_code == 0, result.stderr
    assert f"wrote {len(repo_defaults())} files into {folder}" in result.stdout
    assert f"next: cd '{folder}' && orchestrate run configs/topics.example.yaml" in result.stdout
    assert tree(folder) == repo_defaults()


def test_cli_into_the_current_folder_needs_no_cd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke()
    assert result.exit_code == 0, result.stderr
    assert "next: orchestrate run configs/topics.example.yaml" in result.stdout
    assert "cd " not in result.stdout
    assert tree(tmp_path) == repo_defaults()


def test_cli_conflict_exits_2_without_traceback_and_force_overwrites(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "write.yaml").write_text("my writer\n")
    result = invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "error: DIR: 1 file(s) would be overwritten" in result.stderr
    assert "hint: pass --force" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert tree(tmp_path) == {"agents/write.yaml": b"my writer\n"}

    result = invoke(str(tmp_path), "--force")
    assert result.exit_code == 0, result.stderr
    assert tree(tmp_path) == repo_defaults()


def test_cli_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    target.write_text("x\n")
    result = invoke(str(target))
    assert result.exit_code == 2
    assert "is a file, not a folder" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_help_shows_examples() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "--force" in result.stdout
    assert "Examples:\n    orchestrate init my-project\n" in result.stdout


async def test_a_run_in_an_initialised_folder_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The written configs are complete: ./configs/chain.yaml finds ./agents by itself."""
    init_project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    manifest = await orchestrator.run(
        "configs/topics.example.yaml", provider="simulated", limit=2, sim={"time_scale": 0.001}
    )
    assert manifest.status == "finished"
    assert (manifest.totals.topics, manifest.totals.succeeded) == (2, 2)
    assert Path(manifest.output_dir).parent == (tmp_path / "proj" / "outputs").resolve()
