"""session: one run put together — ``prepare`` checks everything and builds the client and
limiters, ``execute`` wires the engine to the store, trace and report observers, ``run()``
and ``resume()`` open the store and the run folder, ``validate()`` estimates without a call,
``list_runs()`` reads an outputs root.

May import ``report`` and everything below it.
"""
