"""orchestrate: run a chain of LLM agents over many topics, concurrently.

The public API is what ``__all__`` lists; everything in ``_``-prefixed modules is private.

    import asyncio, orchestrator
    manifest = asyncio.run(orchestrator.run("configs/topics.example.yaml", concurrency=5))
    report = asyncio.run(orchestrator.compare("configs/topics.example.yaml", concurrency=5))
"""

from ._bench import BenchCell, BenchReport, bench
from ._client import ChatClient, ChatRequest, ChatResponse, OpenAIChatClient
from ._compare import CompareReport, compare
from ._engine import ChainResult, Engine
from ._errors import (
    CallError,
    ConfigError,
    OrchestrateError,
    OutputError,
    RunError,
    StageFailed,
)
from ._events import (
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    Event,
    Observer,
    RetryPassStarted,
    RunFinished,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    Waited,
)
from ._limits import Limit
from ._manifest import RunManifest
from ._plan import Plan, Stage, load_plan
from ._retry import RetryPolicy
from ._run import run
from ._sim._server import SimServer
from ._sim._settings import SimSettings
from ._topics import Topic

__all__ = [
    "BenchCell",
    "BenchReport",
    "CallError",
    "CallFailed",
    "CallFinished",
    "CallStarted",
    "ChainFinished",
    "ChainResult",
    "ChainStarted",
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "CompareReport",
    "ConfigError",
    "Engine",
    "Event",
    "Limit",
    "Observer",
    "OpenAIChatClient",
    "OrchestrateError",
    "OutputError",
    "Plan",
    "RetryPassStarted",
    "RetryPolicy",
    "RunError",
    "RunFinished",
    "RunManifest",
    "RunStarted",
    "SimServer",
    "SimSettings",
    "Stage",
    "StageErrored",
    "StageFailed",
    "StageFinished",
    "StageStarted",
    "Topic",
    "Waited",
    "bench",
    "compare",
    "load_plan",
    "run",
]
