"""`X-Idempotency-Key` on creating endpoints (workflows, duplicate, new_version, run, events).

Scope: the user and the endpoint (method + route). The same key with the same request
(path and body) returns the first response — same status, same body, with the header
`Idempotent-Replayed: true` — and creates nothing; with a different request it answers
422. Only successful responses are kept: a refused request leaves no record, so it can be
corrected and sent again with its key.

Races: the record is inserted before the resource is created, in the same transaction.
A concurrent request with the same key blocks on the unique index until the first one
commits, then finds its record and replays it (or, if the first rolled back, proceeds).
"""

import hashlib
import json
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from ninja import Status
from pydantic import BaseModel

from accounts.models import IdempotencyRecord
from flowmatrx.api.errors import Unprocessable

REPLAYED_HEADER = "Idempotent-Replayed"


def request_hash(request: HttpRequest, payload: BaseModel | None) -> str:
    body = payload.model_dump(mode="json") if payload is not None else None
    text = json.dumps({"path": request.path, "body": body}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def idempotent(
    request: HttpRequest,
    response: HttpResponse,
    key: str | None,
    payload: BaseModel | None,
    create: Callable[[], dict],
    status: int = 201,
) -> Status:
    """Answer `status` with `create()` (a JSON-ready body) once per key; replay that answer
    for the same key afterwards."""
    if key is None:
        with transaction.atomic():
            return Status(status, create())
    user = request.auth.user
    scope = f"{request.method} {request.resolver_match.route}"[:100]
    digest = request_hash(request, payload)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=user,
                    scope=scope,
                    key=key,
                    request_hash=digest,
                    response_status=0,
                    response_body=None,
                )
        except IntegrityError:
            record = None
        if record is None:
            first = IdempotencyRecord.objects.get(user=user, scope=scope, key=key)
            if first.request_hash != digest:
                raise Unprocessable(
                    "this X-Idempotency-Key was already used with a different request",
                    loc=("header", "X-Idempotency-Key"),
                )
            response[REPLAYED_HEADER] = "true"
            return Status(first.response_status, first.response_body)
        body = create()
        record.response_status, record.response_body = status, body
        record.save(update_fields=["response_status", "response_body"])
        return Status(status, body)
