"""The LLM layer: one interface (``base``), one OpenAI-compatible implementation, and the engine.

Modules, each holding one thing:

- ``base``: the ``LLM`` interface, requests, responses and typed errors;
- ``settings``: ``LLMSettings`` (options > environment > defaults, key redacted);
- ``openai_client``: ``OpenAIChatLLM`` on the official SDK, for any base URL;
- ``engine``: ``Engine`` (concurrency, rate limits, retries, cache, accounting,
  progress, dry run, Ctrl-C) and ``open_engine(settings)``;
- ``cache``: the SQLite response cache; ``pricing``: the price table;
- ``stats``, ``progress``, ``dryrun``, ``report``: accounting, the progress bar,
  the dry-run estimate, the summary and failures files.
- ``job``: what every LLM command does around its method (read the input,
  check the output format before any request, file the summary).
"""

from itkit.llm.base import (
    LLM,
    ChatRequest,
    ChatResponse,
    FatalLLMError,
    RecordFailure,
    ResponseRejected,
    Sampling,
    TransientLLMError,
)
from itkit.llm.engine import Engine, Outcome, open_engine, parse_json
from itkit.llm.errors import DryRunRequest, Interrupted, RequestTooLarge
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings

__all__ = [
    "LLM",
    "ChatRequest",
    "ChatResponse",
    "DryRunRequest",
    "Engine",
    "FatalLLMError",
    "Interrupted",
    "LLMSettings",
    "Outcome",
    "RecordFailure",
    "RequestTooLarge",
    "ResponseRejected",
    "RunReport",
    "Sampling",
    "TransientLLMError",
    "open_engine",
    "parse_json",
]
