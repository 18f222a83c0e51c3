"""llm_call: one chat completion from an OpenAI-compatible or Anthropic API.

Base URLs (with the version, e.g. https://api.openai.com/v1) and keys come from the
settings OPENAI_BASE_URL / OPENAI_API_KEY and ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY.
"""

import json

from django.conf import settings

from engine.errors import NonRetryableError
from engine.netguard import fetch, is_json, snippet, status_error
from engine.registry import step_type

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
MAX_RESPONSE_BYTES = 10 * 1024 * 1024

SCHEMA = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "provider": {"type": "string", "enum": ["openai", "anthropic"], "default": "openai"},
        "model": {"type": "string", "minLength": 1, "description": "e.g. gpt-4o-mini"},
        "messages": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                    "content": {"type": ["string", "array"]},
                },
            },
            "description": "The conversation, as {role, content} objects.",
        },
        "prompt": {
            "type": "string",
            "description": "Shorthand: appended to the messages as a user message.",
        },
        "system": {"type": "string", "description": "The system prompt."},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "description": f"Output token limit (Anthropic requires one: {DEFAULT_MAX_TOKENS}).",
        },
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 120},
    },
    "additionalProperties": False,
}


def _messages(config) -> tuple[list[dict], list[str]]:
    """(chat messages, system prompts) from `system`, `messages` and `prompt`."""
    messages = config.get("messages") or []
    if not isinstance(messages, list):
        raise NonRetryableError("llm_call: 'messages' must be a list of {role, content}")
    system = [config["system"]] if config.get("system") else []
    chat = []
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise NonRetryableError("llm_call: each message needs a 'role' and a 'content'")
        if message["role"] == "system":
            system.append(message["content"])
        else:
            chat.append({"role": message["role"], "content": message["content"]})
    if config.get("prompt"):
        chat.append({"role": "user", "content": config["prompt"]})
    if not chat:
        raise NonRetryableError("llm_call needs 'messages' or a 'prompt'")
    return chat, system


def _openai_request(config, chat, system):
    system_messages = [{"role": "system", "content": text} for text in system]
    body = {"model": config["model"], "messages": [*system_messages, *chat]}
    if config.get("max_tokens") is not None:
        body["max_tokens"] = config["max_tokens"]
    headers = {"Authorization": f"Bearer {_key('OPENAI_API_KEY')}"}
    return _url("OPENAI_BASE_URL", "/chat/completions"), headers, body


def _anthropic_request(config, chat, system):
    body = {
        "model": config["model"],
        "messages": chat,
        "max_tokens": config.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(str(text) for text in system)
    headers = {"x-api-key": _key("ANTHROPIC_API_KEY"), "anthropic-version": ANTHROPIC_VERSION}
    return _url("ANTHROPIC_BASE_URL", "/messages"), headers, body


def _key(name: str) -> str:
    key = getattr(settings, name, "")
    if not key:
        raise NonRetryableError(f"llm_call: {name} is not configured on the server")
    return key


def _url(name: str, path: str) -> str:
    return str(getattr(settings, name)).rstrip("/") + path


def _openai_output(data: dict) -> dict:
    choice = (data.get("choices") or [{}])[0]
    usage = data.get("usage") or {}
    return {
        "content": (choice.get("message") or {}).get("content") or "",
        "model": data.get("model"),
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
        },
        "finish_reason": choice.get("finish_reason"),
    }


def _anthropic_output(data: dict) -> dict:
    blocks = data.get("content") or []
    usage = data.get("usage") or {}
    return {
        "content": "".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
        "model": data.get("model"),
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
        },
        "finish_reason": data.get("stop_reason"),
    }


PROVIDERS = {
    "openai": (_openai_request, _openai_output),
    "anthropic": (_anthropic_request, _anthropic_output),
}


def _api_error(content: bytes) -> str:
    """The API's own error message ({"error": {"message": ...}} on both APIs)."""
    try:
        return str(json.loads(content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return snippet(content)


@step_type(
    name="llm_call",
    config_schema=SCHEMA,
    label="LLM call",
    category="AI",
    description="Ask an OpenAI-compatible or Anthropic model; returns its answer and usage.",
    icon="sparkles",
)
async def execute(config, context):
    provider = config.get("provider") or "openai"
    if provider not in PROVIDERS:
        raise NonRetryableError(f"llm_call: unknown provider {provider!r}")
    if not isinstance(config.get("model"), str) or not config["model"]:
        raise NonRetryableError("llm_call needs a 'model'")
    build, output = PROVIDERS[provider]
    chat, system = _messages(config)
    url, headers, body = build(config, chat, system)
    if config.get("temperature") is not None:
        body["temperature"] = config["temperature"]
    timeout = config.get("timeout_seconds") or 120
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise NonRetryableError("llm_call: 'timeout_seconds' must be a positive number")

    response, content = await fetch(
        "POST",
        url,
        timeout=timeout,
        max_bytes=MAX_RESPONSE_BYTES,
        follow_redirects=False,
        headers=headers,
        json=body,
    )
    if response.status_code >= 300:
        raise status_error(response, content, f"{provider} API error: {_api_error(content)}")
    try:
        data = json.loads(content) if is_json(response) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise NonRetryableError(
            f"{provider} API answered {response.status_code} without a JSON object: "
            f"{snippet(content)}"
        )
    return {"provider": provider, **output(data)}
