"""config: the files a user writes, read and checked — YAML with line numbers, the chain and
agent models, topics, prompt templates, slugs, prices, the simulated provider's settings,
the JSON Schemas and ``orchestrate init``'s defaults.

Owns every mistake of the user (``ConfigError`` with file, line and field). Imports only
``orchestrator._errors`` and ``orchestrator._files``: nothing that runs.
"""
