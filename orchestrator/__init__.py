"""orchestrate: run a chain of LLM agents over many topics, concurrently.

The public API is what ``__all__`` lists; everything in ``_``-prefixed modules is private.

    import asyncio, orchestrator
    manifest = asyncio.run(orchestrator.run("configs/topics.example.yaml", concurrency=5))
    report = asyncio.run(orchestrator.compare("configs/topics.example.yaml", concurrency=5))
    manifest = asyncio.run(orchestrator.resume(manifest.run_id))  # after an interruption
    guess = orchestrator.validate("configs/topics.example.yaml")  # checks + estimate, no call
"""

from ._errors import (
    BadResponse,
    CallError,
    ConfigError,
    ContentFiltered,
    CutOff,
    EmptyResponse,
    ErrorPage,
    NotJSONResponse,
    OrchestrateError,
    OutputError,
    RunError,
    StageFailed,
    StoreError,
    TruncatedResponse,
)
from .config._models import RetryPolicy
from .config._prices import ModelPrice
from .config._sim_settings import SimSettings
from .config._topics import Topic
from .engine._control import RunControl
from .engine._engine import ChainResult, Engine
from .engine._events import (
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
    TopicRestored,
    Waited,
)
from .measure._bench import bench
from .measure._bench_model import BenchCell, BenchReport
from .measure._compare import compare
from .measure._compare_model import CompareReport
from .plan._plan import Plan, Stage, load_plan
from .provider._client import ChatClient, ChatRequest, ChatResponse, OpenAIChatClient
from .provider._limits import Limit
from .provider.sim._server import SimServer
from .report._run_json import RunManifest, TraceExport
from .session._estimate import Estimate, StageEstimate, validate
from .session._run import resume, run
from .session._runs import RunListing, RunSummary, list_runs
from .trace._verdict import Parallelism

__all__ = [
    "BadResponse",
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
    "ContentFiltered",
    "CutOff",
    "EmptyResponse",
    "Engine",
    "ErrorPage",
    "Estimate",
    "Event",
    "Limit",
    "ModelPrice",
    "NotJSONResponse",
    "Observer",
    "OpenAIChatClient",
    "OrchestrateError",
    "OutputError",
    "Parallelism",
    "Plan",
    "RetryPassStarted",
    "RetryPolicy",
    "RunControl",
    "RunError",
    "RunFinished",
    "RunListing",
    "RunManifest",
    "RunStarted",
    "RunSummary",
    "SimServer",
    "SimSettings",
    "Stage",
    "StageErrored",
    "StageEstimate",
    "StageFailed",
    "StageFinished",
    "StageStarted",
    "StoreError",
    "Topic",
    "TopicRestored",
    "TraceExport",
    "TruncatedResponse",
    "Waited",
    "bench",
    "compare",
    "list_runs",
    "load_plan",
    "resume",
    "run",
    "validate",
]
