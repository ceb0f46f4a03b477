"""The public API is exactly what orchestrator.__all__ lists (as httpx guards its own)."""

from __future__ import annotations

import importlib
import types

import orchestrator

# The subpackages show the architecture (see docs/architecture.md); their modules are
# private, and they export nothing themselves (cli: only its entry point).
PACKAGES = {"cli", "config", "engine", "measure", "plan", "provider", "report", "session"}
PACKAGES |= {"store", "trace"}


def test_all_is_sorted_and_every_name_exists() -> None:
    assert orchestrator.__all__ == sorted(orchestrator.__all__)
    for name in orchestrator.__all__:
        assert hasattr(orchestrator, name), name


def test_public_names_are_all_exported() -> None:
    """Nothing public leaks in without being listed; private modules stay private."""
    public = {
        name
        for name in dir(orchestrator)
        if not name.startswith("_") and name not in {"annotations", *PACKAGES}
    }
    assert public == set(orchestrator.__all__)


def test_subpackages_are_structure_not_api() -> None:
    for name in sorted(PACKAGES):
        package = importlib.import_module(f"orchestrator.{name}")
        assert isinstance(package, types.ModuleType), name
        assert package.__doc__, f"{name}/__init__.py says what it owns and may import"
        exported = {n for n in vars(package) if not n.startswith("_") and n != "annotations"}
        exported -= {n for n in exported if isinstance(getattr(package, n), types.ModuleType)}
        assert exported == ({"main"} if name == "cli" else set()), (name, exported)


def test_exported_members_claim_the_package_as_their_home() -> None:
    """Objects are defined in orchestrator's own modules, not re-exported from elsewhere."""
    for name in orchestrator.__all__:
        member = getattr(orchestrator, name)
        module = getattr(member, "__module__", "orchestrator")
        if module in ("typing", "types"):  # the Event union alias (X | Y)
            continue
        assert module.startswith("orchestrator."), (name, module)
