"""What a user reads when the Chat Completions endpoint fails: a reason per kind of API error (never the API key:
messages of 401 answers are not quoted), for :class:`bot.analysts.base.AnalysisFailed`."""

from __future__ import annotations

import openai


def _api_message(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"])[:300]
        return f"HTTP {exc.status_code}"
    return str(exc)[:300]


def api_reason(exc: openai.OpenAIError, model: str) -> str:
    """A reason a user can read for an API error (never the key: 401 messages are not quoted)."""
    if isinstance(exc, openai.AuthenticationError):
        return "The model service rejected the API key; check `OPENAI_API_KEY` (and `OPENAI_BASE_URL`)."
    if isinstance(exc, openai.PermissionDeniedError):
        return f"The API key may not use the model `{model}`; check `DATASTORY_MODEL` and the key's permissions."
    if isinstance(exc, openai.NotFoundError):
        return (f"The model `{model}` was not found at the model service; check `DATASTORY_MODEL` and "
                f"`OPENAI_BASE_URL` ({_api_message(exc)}).")
    if isinstance(exc, openai.RateLimitError):
        return ("The model service is rate limiting requests (or the quota is used up) and retrying did not help; "
                f"try again in a minute ({_api_message(exc)}).")
    if isinstance(exc, openai.APITimeoutError):
        return "The model service did not answer in time."
    if isinstance(exc, openai.APIConnectionError):
        return "Could not connect to the model service; check `OPENAI_BASE_URL` and the network."
    if isinstance(exc, openai.BadRequestError):
        message = _api_message(exc)
        hint = " (the model may not support function calling)" if "tool" in message.lower() else ""
        return f"The model service refused the request{hint}: {message}"
    if isinstance(exc, openai.APIStatusError):
        return f"The model service failed (HTTP {exc.status_code}): {_api_message(exc)}"
    return f"The model service returned an answer that could not be read: {type(exc).__name__}."


