"""The simulated OpenAI-compatible provider: settings, text and the HTTP server."""
