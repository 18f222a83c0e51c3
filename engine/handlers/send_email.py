"""send_email: send a message through Django's configured email backend.

Addresses are checked before anything is sent. The Message-ID is made here, so the output
can name it; the step's idempotency key goes out as an `X-Flowmatrx-Idempotency-Key`
header, so a receiving system can drop a copy sent again after a crash (at-least-once).
"""

import asyncio
import smtplib
from email.utils import formataddr, getaddresses

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.core.validators import validate_email

from engine.errors import NonRetryableError, StepError
from engine.registry import step_type

MAX_RECIPIENTS = 100

_ADDRESSES = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ],
}

SCHEMA = {
    "type": "object",
    "required": ["to", "subject"],
    "properties": {
        "to": {
            **_ADDRESSES,
            "description": "Recipient(s): an address, a list, or a "
            "comma-separated string; 'Name <a@example.com>' works too.",
        },
        "cc": {**_ADDRESSES, "description": "Copy recipient(s)."},
        "bcc": {**_ADDRESSES, "description": "Blind-copy recipient(s)."},
        "subject": {"type": "string", "description": "Subject line."},
        "body": {"type": "string", "default": "", "description": "Plain-text body."},
        "html": {"type": "string", "description": "Optional HTML version of the body."},
        "from": {"type": "string", "description": "Sender (DEFAULT_FROM_EMAIL)."},
        "reply_to": {**_ADDRESSES, "description": "Reply-To address(es)."},
    },
    "additionalProperties": False,
}


def _addresses(config: dict, key: str, *, required: bool = False) -> list[str]:
    """The field's addresses as 'Name <addr>' strings; NonRetryableError when invalid."""
    value = config.get(key)
    if value is None or value == "" or value == []:
        if required:
            raise NonRetryableError(f"send_email needs '{key}', at least one address")
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise NonRetryableError(f"send_email: '{key}' must be an address or a list of them")
    out = []
    for item in items:
        if "\n" in item or "\r" in item:
            raise NonRetryableError(f"send_email: '{key}' has a line break in {item!r}")
        pairs = [pair for pair in getaddresses([item]) if any(pair)]  # "a@x.org, " is fine
        for name, address in pairs or [("", item)]:
            try:
                validate_email(address)
            except ValidationError:
                raise NonRetryableError(
                    f"send_email: '{key}' has an invalid address: {item!r}"
                ) from None
            out.append(formataddr((name, address)))
    return out


def _bare(address: str) -> str:
    return getaddresses([address])[0][1]


def _text(config: dict, key: str, default: str = "") -> str:
    value = config.get(key)
    if value is None and key == "subject":
        raise NonRetryableError("send_email needs 'subject'")
    if value is None:
        return default
    if not isinstance(value, str):
        raise NonRetryableError(f"send_email: '{key}' must be text, not {type(value).__name__}")
    if key == "subject" and ("\n" in value or "\r" in value):
        raise NonRetryableError("send_email: 'subject' must be one line")
    return value


def _message(config: dict, context) -> EmailMultiAlternatives:
    to, cc, bcc = (_addresses(config, k, required=k == "to") for k in ("to", "cc", "bcc"))
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise NonRetryableError(f"send_email: at most {MAX_RECIPIENTS} recipients per message")
    sender = _addresses({"from": config.get("from") or settings.DEFAULT_FROM_EMAIL}, "from")
    if len(sender) != 1:
        raise NonRetryableError("send_email: 'from' must be one address")
    domain = _bare(sender[0]).rpartition("@")[2]
    headers = {"Message-ID": make_msgid(domain=domain)}
    run = context.get("run")
    if isinstance(run, dict) and run.get("idempotency_key"):
        headers["X-Flowmatrx-Idempotency-Key"] = str(run["idempotency_key"])
    message = EmailMultiAlternatives(
        subject=_text(config, "subject"),
        body=_text(config, "body"),
        from_email=sender[0],
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=_addresses(config, "reply_to"),
        headers=headers,
    )
    html = _text(config, "html")
    if html:
        message.attach_alternative(html, "text/html")
    return message


def _send(message: EmailMultiAlternatives) -> None:
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient; 4xx means "try later"
        refused = ", ".join(sorted(exc.recipients))
        temporary = all(400 <= code < 500 for code, _ in exc.recipients.values())
        raise StepError(
            f"send_email: the mail server refused {refused}", retryable=temporary
        ) from exc
    except smtplib.SMTPResponseException as exc:  # a 4xx reply is temporary, 5xx is not
        error = exc.smtp_error
        error = error.decode(errors="replace") if isinstance(error, bytes) else error
        raise StepError(
            f"send_email: the mail server said {exc.smtp_code} {error}",
            retryable=400 <= exc.smtp_code < 500,
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused connection, timeout, hang-up
        raise StepError(
            f"send_email: cannot reach the mail server: {exc or type(exc).__name__}",
            retryable=True,
        ) from exc


@step_type(
    name="send_email",
    config_schema=SCHEMA,
    label="Send email",
    category="Communication",
    description="Send an email (text and optional HTML) with the server's mail settings.",
    icon="mail",
)
async def execute(config, context):
    message = _message(config, context)
    await asyncio.to_thread(_send, message)
    return {
        "sent_to": [_bare(a) for a in message.recipients()],
        "message_id": message.extra_headers["Message-ID"],
    }
