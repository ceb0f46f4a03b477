"""The public API is exactly what orchestrator.__all__ lists (as httpx guards its own)."""

from __future__ import annotations

import orchestrator


def test_all_is_sorted_and_every_name_exists() -> None:
    assert orchestrator.__all__ == sorted(orchestrator.__all__)
    for name in orchestrator.__all__:
        assert hasattr(orchestrator, name), name


def test_public_names_are_all_exported() -> None:
    """Nothing public leaks in without being listed; private modules stay private."""
    public = {
        name
        for name in dir(orchestrator)
        if not name.startswith("_") and name not in {"annotations", "cli"}
    }
    assert public == set(orchestrator.__all__)


def test_exported_members_claim_the_package_as_their_home() -> None:
    """Objects are defined in orchestrator's own modules, not re-exported from elsewhere."""
    for name in orchestrator.__all__:
        member = getattr(orchestrator, name)
        module = getattr(member, "__module__", "orchestrator")
        if module in ("typing", "types"):  # the Event union alias (X | Y)
            continue
        assert module.startswith("orchestrator."), (name, module)
