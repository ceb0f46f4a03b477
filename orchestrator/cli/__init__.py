"""cli: the ``orchestrate`` command, one module per command group, a thin shell over the
library (``await run(...)``); the one ``asyncio.run`` of the program.

The only package that imports ``click``. May import anything.
"""

from ._main import main

__all__ = ["main"]
