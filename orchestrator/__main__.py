"""``python -m orchestrator`` is the ``orchestrate`` command."""

from .cli._main import main

main()
