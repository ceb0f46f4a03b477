"""engine: the run loop — workers over the topics, each chain's stages in order, rate limits
and retries around every call, the retry pass, budget, Ctrl-C control, and the events it
reports through ``Observer`` (reporting observers isolated from the run).

May import ``store`` (recall of finished stages), ``provider``, ``plan``, ``config`` and the
base modules; it knows nothing of traces, reports or the CLI.
"""
