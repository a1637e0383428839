"""Which model a server serves, asked of the server itself (``GET {base_url}/models``).

With no ``--model`` and an endpoint that is not OpenAI's, itkit never assumes
an OpenAI model name: it asks the server and uses its only model, or stops
with the list when it serves several. A dry run that cannot reach the server
names the model :data:`UNKNOWN_MODEL` (it sends nothing anyway).
"""

from __future__ import annotations

from typing import Any

import orjson

from itkit.llm.base import FatalLLMError
from itkit.llm.secrets import mask_server_text
from itkit.llm.server_text import sanitize, server_message
from itkit.llm.settings import LLMSettings

MODELS_PATH = "/models"
MODELS_SHOWN = 10
"""Model names listed when a server serves several."""
UNKNOWN_MODEL = "unknown-model"


def needs_discovery(settings: LLMSettings) -> bool:
    return not settings.model_given and not settings.is_openai


def _get_models(settings: LLMSettings, base_url: str) -> list[str]:
    from itkit.llm.openai_client import _httpx

    httpx = _httpx()
    from itkit.llm.secrets import split_credentials

    key = settings.key_value()
    plain, basic = split_credentials(base_url)
    headers = {"Authorization": basic} if basic else {"Authorization": f"Bearer {key}"} if key else {}
    url = plain + MODELS_PATH
    try:
        response = httpx.get(
            url, headers=headers, timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        )
    except Exception as exc:  # noqa: BLE001 - any transport failure reads the same to the user
        raise FatalLLMError(
            f"{settings.endpoint}: no --model given and the server's model list could not be read "
            f"({type(exc).__name__}); give --model, or check --base-url and that the server is up"
        ) from None
    if response.status_code != 200:
        said = mask_server_text(server_message(response.content), key)
        raise FatalLLMError(
            f"{settings.endpoint}: no --model given and GET {MODELS_PATH} answered HTTP {response.status_code}"
            + (f" (server said: {said})" if said else "")
            + "; give --model"
        )
    try:
        data: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        data = None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        items = data.get("models") if isinstance(data, dict) else None  # Ollama's native shape
    names = []
    for item in items or []:
        name = item.get("id") or item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name.strip():
            names.append(sanitize(name, 200))
    return names


def discover_model(settings: LLMSettings) -> LLMSettings:
    """``settings`` with the model the server serves, when the user named none and the endpoint is not OpenAI."""
    if not needs_discovery(settings):
        return settings
    try:
        names = _get_models(settings, settings.base_url or "")
    except FatalLLMError:
        if settings.dry_run:
            return settings.model_copy(update={"model": UNKNOWN_MODEL, "model_given": True})
        raise
    if len(names) == 1:
        return settings.model_copy(update={"model": names[0], "model_given": True})
    if not names:
        if settings.dry_run:
            return settings.model_copy(update={"model": UNKNOWN_MODEL, "model_given": True})
        raise FatalLLMError(f"{settings.endpoint}: no --model given and the server lists no model; give --model")
    shown = ", ".join(names[:MODELS_SHOWN]) + (f" and {len(names) - MODELS_SHOWN} more" if len(names) > MODELS_SHOWN else "")
    raise FatalLLMError(f"{settings.endpoint}: the server serves several models ({shown}); choose one with --model")


__all__ = ["UNKNOWN_MODEL", "discover_model", "needs_discovery"]
