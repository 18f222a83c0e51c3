"""Webhook signatures, for the outbound `webhook` step and the inbound webhook trigger.

Header `X-FlowMatrx-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`,
keyed with the shared secret. Several `v1=` entries may be sent (while a secret is being
rotated); one matching is enough. The secret itself never travels.
"""

import hashlib
import hmac
import string
import time

HEADER = "X-FlowMatrx-Signature"
DEFAULT_TOLERANCE = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def sign(secret: str, body: bytes | str, timestamp: int | None = None) -> str:
    """The header value signing `body` at `timestamp` (now by default)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, _bytes(body))}"


def parse(header: str) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures) of a header value; SignatureError when malformed."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value and all(c in string.hexdigits for c in value):
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        raise SignatureError(f"malformed {HEADER} header: expected t=<seconds>,v1=<hex>")
    return timestamp, signatures


def check(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Raise SignatureError unless `header` signs `body` with `secret` within `tolerance`
    seconds of now (either way). Returns the signed timestamp (useful against replays)."""
    timestamp, signatures = parse(header)
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"signature timestamp is more than {tolerance:g} seconds off")
    expected = _digest(secret, timestamp, _bytes(body))
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("signature does not match")
    return timestamp


def verify(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when `header` is a valid, fresh signature of `body` with `secret`."""
    try:
        check(secret, header, body, tolerance, now)
    except SignatureError:
        return False
    return True
