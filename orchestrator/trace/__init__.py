"""trace: what the engine's events become for diagnosis — spans after the OpenTelemetry
GenAI conventions, ``trace.json``, ``events.jsonl``, the OTLP export, the parallelism
verdict and the waterfall (in the terminal too).

May import ``engine`` (its events) and everything below it.
"""
