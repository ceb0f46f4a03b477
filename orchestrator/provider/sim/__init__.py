"""sim: the simulated OpenAI-compatible provider — the HTTP server, its text, its rate limits
and its faults. Its settings are configuration, so they live in ``config._sim_settings``.
"""
