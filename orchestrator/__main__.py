"""``python -m orchestrator`` is the ``orchestrate`` command."""

from .cli import main

main()
