"""webhook: POST a JSON payload to a URL, signed with a shared secret when one is set."""

import json

from engine import signing
from engine.errors import NonRetryableError
from engine.netguard import fetch, parse_body, request_headers, status_error
from engine.registry import step_type

IDEMPOTENCY_HEADER = "X-FlowMatrx-Idempotency-Key"
MAX_RESPONSE_BYTES = 1024 * 1024

SCHEMA = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1, "description": "The receiver's URL."},
        "payload": {"default": {}, "description": "The JSON body to send."},
        "secret": {
            "type": ["string", "null"],
            "default": None,
            "description": "Signs the body (header X-FlowMatrx-Signature: t=<unix seconds>,"
            'v1=<hex HMAC-SHA256 of "<t>.<body>">). Never sent itself.',
            "writeOnly": True,
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "default": {},
            "description": "Extra request headers.",
        },
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 30},
    },
    "additionalProperties": False,
}


@step_type(
    name="webhook",
    config_schema=SCHEMA,
    label="Webhook",
    category="Integrations",
    description="Send a signed JSON POST to another system.",
    icon="send",
)
async def execute(config, context):
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise NonRetryableError("webhook needs a 'url'")
    headers = request_headers(config.get("headers") or {}, "webhook")
    timeout = config.get("timeout_seconds") or 30
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise NonRetryableError("webhook: 'timeout_seconds' must be a positive number")

    body = json.dumps(config.get("payload", {}), separators=(",", ":")).encode()
    headers["Content-Type"] = "application/json"
    key = (context.get("run") or {}).get("idempotency_key")
    if key:
        headers[IDEMPOTENCY_HEADER] = key
    secret = config.get("secret")
    if secret:
        headers[signing.HEADER] = signing.sign(str(secret), body)

    # Not following redirects: a receiver that moved should be reconfigured, and a
    # redirected POST may turn into a GET without the payload.
    response, content = await fetch(
        "POST",
        url,
        timeout=timeout,
        max_bytes=MAX_RESPONSE_BYTES,
        follow_redirects=False,
        headers=headers,
        content=body,
    )
    if not 200 <= response.status_code < 300:
        raise status_error(response, content)
    return {"status_code": response.status_code, "body": parse_body(response, content)}
