"""The LLM layer: one interface (``base``), one OpenAI-compatible implementation, and the engine.

Modules, each holding one thing:

- ``base``: the ``LLM`` interface, requests, responses and typed errors;
- ``settings``: ``LLMSettings`` (options > environment > defaults, key redacted);
- ``openai_client``: ``OpenAIChatLLM`` on the official SDK, for any base URL;
- ``engine``: ``Engine`` (retries, cache, single flight, accounting, progress,
  dry run, Ctrl-C) and ``open_engine(settings)``, over one or more endpoints;
- ``endpoints``: one endpoint's state, built from ``concurrency`` (adaptive
  limit, AIMD), ``breaker`` (circuit breaker for outages) and ``ratelimits``
  (buckets, 429 pauses, limits learned from ``x-ratelimit-*`` headers);
- ``attempts``: backoff and the retry that can change a rejected answer;
- ``server_errors``: what an HTTP error from any OpenAI-compatible server means;
  ``server_text``: the one sanitiser of text a server sent;
- ``discovery``: the model a local server serves (``GET /models``);
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
