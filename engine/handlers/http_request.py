"""http_request: call an HTTP API (through the network guard) and return its response."""

import json

import httpx

from engine.errors import NonRetryableError
from engine.netguard import (
    DEFAULT_MAX_RESPONSE_BYTES,
    fetch,
    parse_body,
    request_headers,
    status_error,
)
from engine.registry import step_type

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
SCALAR = ["string", "number", "boolean"]

SCHEMA = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1, "description": "The http(s) URL to call."},
        "method": {"type": "string", "enum": METHODS, "default": "GET"},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": SCALAR},
            "default": {},
            "description": "Request headers.",
        },
        "query": {
            "type": "object",
            "additionalProperties": {"type": [*SCALAR, "null", "array"]},
            "default": {},
            "description": "Query parameters, added to those already in the URL.",
        },
        "body": {
            "description": "Request body: sent as JSON when an object or list, else as text.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "Limit for the whole exchange, retried like a network error.",
        },
        "idempotency_header": {
            "type": ["string", "null"],
            "default": None,
            "description": "When set (e.g. Idempotency-Key), send the step's stable "
            "idempotency key in this header so the server can drop repeats.",
        },
        "follow_redirects": {
            "type": "boolean",
            "default": True,
            "description": "Follow up to 5 redirects (each hop passes the network guard).",
        },
        "max_response_bytes": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_MAX_RESPONSE_BYTES,
            "description": "Larger responses fail the step.",
        },
    },
    "additionalProperties": False,
}


def _number(config, key, default, kind=(int, float)) -> float:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise NonRetryableError(f"http_request: '{key}' must be a positive number")
    return value


def _with_query(url: str, query) -> str:
    """The URL with `query` added to the parameters it already has."""
    if not isinstance(query, dict):
        raise NonRetryableError("http_request: 'query' must be an object")
    if not query:
        return url
    try:
        return str(httpx.URL(url).copy_merge_params(query))
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise NonRetryableError(f"http_request: invalid url or query: {exc}") from None


def _headers(config, context) -> httpx.Headers:
    out = request_headers(config.get("headers") or {}, "http_request")
    name = config.get("idempotency_header")
    if name:
        key = (context.get("run") or {}).get("idempotency_key")
        if not key:
            raise NonRetryableError("http_request: no idempotency key in this context")
        out[str(name)] = key
    return out


def _body(config, headers: httpx.Headers) -> dict:
    body = config.get("body")
    if body is None:
        return {}
    if isinstance(body, dict | list):
        return {"json": body}
    if "content-type" not in headers:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    return {"content": body if isinstance(body, str) else json.dumps(body)}


@step_type(
    name="http_request",
    config_schema=SCHEMA,
    label="HTTP request",
    category="Integrations",
    description="Call an HTTP API and use its JSON or text response.",
    icon="globe",
)
async def execute(config, context):
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise NonRetryableError("http_request needs a 'url'")
    method = str(config.get("method") or "GET").upper()
    if method not in METHODS:
        raise NonRetryableError(f"http_request: unsupported method {method!r}")
    url = _with_query(url, config.get("query") or {})
    headers = _headers(config, context)
    body = _body(config, headers)
    response, content = await fetch(
        method,
        url,
        timeout=_number(config, "timeout_seconds", 30),
        max_bytes=_number(config, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, int),
        follow_redirects=bool(config.get("follow_redirects", True)),
        headers=headers,
        **body,
    )
    if response.status_code >= 400:
        raise status_error(response, content)
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "body": parse_body(response, content),
    }
