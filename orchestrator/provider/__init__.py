"""provider: calling models — the ``ChatClient`` protocol and its ``openai`` implementation,
rate-limit headers, the client-side limiters, token estimates, choosing an endpoint, and
``sim/``, the simulated OpenAI-compatible server.

The only package that imports ``openai``. May import ``plan``, ``config`` and the base
modules.
"""
