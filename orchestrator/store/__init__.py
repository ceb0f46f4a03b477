"""store: the SQLite state store — its writer thread, what a resumed run restores, and
which stages need no call (resumed, or asked before verbatim).

May import ``provider`` (a request's fingerprint), ``plan``, ``config`` and the base
modules; never the engine, reports or the CLI.
"""
