"""Inbound webhooks: `POST /hooks/<token>` starts a run of the workflow (SPEC §2, §7).

* The URL. Each workflow has one `WebhookEndpoint`, keyed by its lineage, so the token is
  the same for every version; it is 32 random bytes (`secrets.token_urlsafe`), the only
  thing that finds the endpoint (no API key, no session). The request runs the workflow's
  active version (its newest published one) when that version has a webhook trigger;
  otherwise — no published version, only drafts, archived, no webhook trigger — 404.
* The input: ``{"body", "headers", "query"}``. The body is parsed by its content type:
  JSON (``application/json``, ``*+json``), a form (``application/x-www-form-urlencoded``,
  to an object) or text (anything else); an empty body is null. Header names are
  lower-cased; ``Cookie`` and ``Authorization`` are left out. Repeated form or query keys
  give a list.
* Signature. With a trigger ``secret`` the request must carry
  ``X-FlowMatrx-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``
  (`engine.signing`), at most `SIGNATURE_TOLERANCE` seconds off: 401 otherwise.
* Replays: 409 when the same signature (the same timestamp and body) or the same
  ``X-Delivery-Id`` has been accepted before by this endpoint.
* ``X-Idempotency-Key``: a key seen before answers 200 with the first run's id and starts
  nothing (SPEC §7: the same key returns the same resource).
* Body size: at most `FLOWMATRX_WEBHOOK_MAX_BODY_BYTES` (1 MB): 413.

Deliveries are recorded in the transaction that starts the run, under a unique key per
endpoint: of two racing requests with the same signature, delivery id or idempotency key,
one starts a run and the other finds the key taken.

Deliveries are forgotten once they cannot matter (`prune_deliveries`, run by the workers):
a signature after twice the tolerance (its timestamp may be up to the tolerance ahead of
the clock, and it is refused as stale the tolerance after that), a delivery id or an
idempotency key after `FLOWMATRX_WEBHOOK_REPLAY_WINDOW` seconds (a day by default): a
sender repeating one after that starts a new run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from engine import signing
from engine.errors import InvalidDefinition, StateConflict
from engine.statuses import TriggerType
from runs import lifecycle
from triggers.models import DeliveryKind, WebhookDelivery, WebhookEndpoint
from triggers.sync import active_version, triggers_of

logger = logging.getLogger("triggers.webhooks")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_TOLERANCE = signing.DEFAULT_TOLERANCE
DELIVERY_ID_HEADER = "X-Delivery-Id"
IDEMPOTENCY_HEADER = "X-Idempotency-Key"
HIDDEN_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
MAX_KEY_LENGTH = 200


DEFAULT_REPLAY_WINDOW = 24 * 3600
PRUNE_BATCH = 1000


def max_body_bytes() -> int:
    return int(getattr(settings, "FLOWMATRX_WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def replay_window() -> float:
    """Seconds a delivery id or an idempotency key is remembered."""
    return float(getattr(settings, "FLOWMATRX_WEBHOOK_REPLAY_WINDOW", DEFAULT_REPLAY_WINDOW))


def prune_deliveries(now: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete the delivery rows that can no longer refuse a request (see the module
    docstring), `batch` rows per statement so no delete holds many locks for long.
    Returns how many were deleted."""
    horizons = [
        ([DeliveryKind.SIGNATURE], 2 * SIGNATURE_TOLERANCE),
        ([DeliveryKind.DELIVERY_ID, DeliveryKind.IDEMPOTENCY_KEY], replay_window()),
    ]
    deleted = 0
    for kinds, seconds in horizons:
        old = WebhookDelivery.objects.filter(
            kind__in=kinds, received_at__lt=now - timedelta(seconds=seconds)
        )
        while True:
            ids = list(old.order_by().values_list("pk", flat=True)[:batch])
            if ids:
                deleted += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
            if len(ids) < batch:
                break
    return deleted


# ------------------------------------------------------------------------ the URL


def endpoint_for(lineage) -> WebhookEndpoint:
    """The workflow's endpoint, made on first need."""
    endpoint, _ = WebhookEndpoint.objects.get_or_create(lineage=lineage)
    return endpoint


def webhook_path(token: str) -> str:
    return reverse("triggers:webhook", args=[token])


def webhook_url(workflow, request=None) -> str | None:
    """`/hooks/<token>` of this workflow (absolute with `request`) when this version
    defines a webhook trigger (a draft too, so its sender can be set up before
    publishing), else None. The token is the same for every version."""
    if not triggers_of(workflow, "webhook"):
        return None
    path = webhook_path(endpoint_for(workflow.lineage).token)
    return request.build_absolute_uri(path) if request is not None else path


# ----------------------------------------------------------------------- requests


class WebhookError(Exception):
    """A refused request: HTTP status, where (the error's `loc`) and why."""

    def __init__(self, status: int, loc: tuple[str, ...], msg: str):
        super().__init__(msg)
        self.status = status
        self.loc = loc
        self.msg = msg

    def as_dict(self) -> dict:
        return {"errors": [{"loc": list(self.loc), "msg": self.msg}]}


@dataclass
class Accepted:
    run_id: str
    created: bool
    """False when an idempotency key seen before answered with the first run."""


def _plain(multi: dict[str, list[str]]) -> dict:
    return {key: values[0] if len(values) == 1 else values for key, values in multi.items()}


def _media_type(content_type: str) -> tuple[str, str]:
    media, _, params = (content_type or "").partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip().strip('"')
    return media.strip().lower(), charset


def _text(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def parse_body(raw: bytes, content_type: str):
    """The body as the run sees it: JSON value, form object or text (null when empty)."""
    if not raw.strip():
        return None
    media, charset = _media_type(content_type)
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(_text(raw, charset))
        except ValueError as exc:
            raise WebhookError(400, ("body",), f"the body is not valid JSON: {exc}") from None
    if media == "application/x-www-form-urlencoded":
        return _plain(parse_qs(_text(raw, charset), keep_blank_values=True))
    return _text(raw, charset)


def visible_headers(request) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in request.headers.items()
        if name.lower() not in HIDDEN_HEADERS
    }


def read_body(request) -> bytes:
    """The raw body, refusing more than the limit (413) before reading it when the
    sender declares its length, and while reading otherwise."""
    limit = max_body_bytes()
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.strip().isdigit() and int(declared) > limit:
        raise WebhookError(413, ("body",), f"the body is larger than {limit} bytes")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise WebhookError(413, ("body",), f"the body is larger than {limit} bytes")
    return raw


def _key(value: str) -> str:
    value = value.strip()
    if len(value) <= MAX_KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def check_signature(secret: str, header: str | None, raw: bytes, now: float | None = None) -> str:
    """The canonical signature (the replay key) of a valid, fresh signature; 401 else."""
    loc = ("header", signing.HEADER)
    if not header:
        raise WebhookError(401, loc, f"this webhook needs a {signing.HEADER} header")
    try:
        timestamp = signing.check(secret, header, raw, SIGNATURE_TOLERANCE, now)
    except signing.SignatureError as exc:
        raise WebhookError(401, loc, str(exc)) from None
    # the header may carry extra v1 entries: the key is the one that matched, canonical
    return signing.sign(secret, raw, timestamp)


def _record(endpoint: WebhookEndpoint, kind: str, key: str) -> WebhookDelivery | None:
    """Insert the delivery key; None when this endpoint had it already."""
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(endpoint=endpoint, kind=kind, key=key)
    except IntegrityError:
        return None


def handle(token: str, request) -> Accepted:
    """Check the request and start the run. Raises WebhookError when refusing it."""
    endpoint = WebhookEndpoint.objects.filter(token=token).first()
    workflow = active_version(endpoint.lineage) if endpoint is not None else None
    hooks = triggers_of(workflow, "webhook")
    if not hooks:
        raise WebhookError(
            404, ("path", "token"), "no published workflow with a webhook trigger has this URL"
        )
    raw = read_body(request)
    secret = hooks[0][1].get("secret")
    signature = None
    if isinstance(secret, str) and secret:
        signature = check_signature(secret, request.headers.get(signing.HEADER), raw)
    run_input = {
        "body": parse_body(raw, request.META.get("CONTENT_TYPE", "")),
        "headers": visible_headers(request),
        "query": _plain(dict(request.GET.lists())),
    }
    idempotency_key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    delivery_id = (request.headers.get(DELIVERY_ID_HEADER) or "").strip()

    with transaction.atomic():
        recorded = []
        if idempotency_key:
            row = _record(endpoint, DeliveryKind.IDEMPOTENCY_KEY, _key(idempotency_key))
            if row is None:
                first = WebhookDelivery.objects.get(
                    endpoint=endpoint, kind=DeliveryKind.IDEMPOTENCY_KEY, key=_key(idempotency_key)
                )
                if first.run_id is None:  # its run was deleted since
                    raise WebhookError(
                        409,
                        ("header", IDEMPOTENCY_HEADER),
                        "this idempotency key was used before; its run no longer exists",
                    )
                return Accepted(str(first.run_id), created=False)
            recorded.append(row)
        if delivery_id:
            row = _record(endpoint, DeliveryKind.DELIVERY_ID, _key(delivery_id))
            if row is None:
                raise WebhookError(
                    409,
                    ("header", DELIVERY_ID_HEADER),
                    "this delivery id was received before: replay refused",
                )
            recorded.append(row)
        if signature is not None:
            row = _record(endpoint, DeliveryKind.SIGNATURE, _key(signature))
            if row is None:
                raise WebhookError(
                    409,
                    ("header", signing.HEADER),
                    "this signature was received before: replay refused",
                )
            recorded.append(row)
        try:
            run = lifecycle.start_run(
                workflow,
                run_input,
                trigger_type=TriggerType.WEBHOOK,
                idempotency_key=idempotency_key[:255] or None,
            )
        except (StateConflict, InvalidDefinition) as exc:  # archived meanwhile
            raise WebhookError(404, ("path", "token"), str(exc)) from None
        if recorded:
            WebhookDelivery.objects.filter(pk__in=[row.pk for row in recorded]).update(run=run)
    return Accepted(str(run.pk), created=True)
