"""plan: the checked config turned into what will run — the stages (agent, model, prompt,
endpoint) of a chain and the topics it runs over.

May import ``config`` and the base modules; nothing that runs.
"""
