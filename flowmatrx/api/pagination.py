"""Keyset ("cursor") pagination: `{"items": [...], "next_cursor": "..." | null}`.

A cursor is the sort key of the last item sent (base64 of a small JSON list), so pages
stay stable while rows are added, and each page is one indexed query. Rows are ordered
newest first by (`created_at`, `id`) unless a view says otherwise.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flowmatrx.api.errors import Unprocessable

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_BIGINT = 2**63


def encode_cursor(obj: models.Model, fields: Sequence[str]) -> str:
    values = [obj._meta.get_field(name).value_to_string(obj) for name in fields]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor() -> Unprocessable:
    return Unprocessable(
        "invalid cursor: pass a next_cursor as it was given", loc=("query", "cursor")
    )


def decode_cursor(cursor: str, model: type[models.Model], fields: Sequence[str]) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None
    if not isinstance(values, list) or len(values) != len(fields):
        raise _bad_cursor()
    out = []
    for name, value in zip(fields, values, strict=True):
        field = model._meta.get_field(name)
        if not isinstance(value, str) or "\x00" in value:
            raise _bad_cursor()
        try:
            parsed = field.to_python(value)
        except (ValidationError, ValueError, OverflowError):
            raise _bad_cursor() from None
        if isinstance(field, models.DateTimeField):
            if parsed is None or timezone.is_naive(parsed):
                raise _bad_cursor()
            try:
                parsed = parsed.astimezone(UTC)
            except OverflowError:
                raise _bad_cursor() from None
        if isinstance(parsed, int) and not -_BIGINT <= parsed < _BIGINT:
            raise _bad_cursor()
        if parsed is None:
            raise _bad_cursor()
        out.append(parsed)
    return out


def paginate(
    queryset: models.QuerySet,
    *,
    limit: int,
    cursor: str | None,
    fields: Sequence[str] = ("created_at", "id"),
    descending: bool = True,
) -> tuple[list, str | None]:
    """(the page's rows, the cursor of the next page or None)."""
    queryset = queryset.order_by(*[f"-{f}" if descending else f for f in fields])
    if cursor:
        values = decode_cursor(cursor, queryset.model, fields)
        op = "lt" if descending else "gt"
        after = Q()
        for i, name in enumerate(fields):
            same = {fields[j]: values[j] for j in range(i)}
            after |= Q(**same, **{f"{name}__{op}": values[i]})
        queryset = queryset.filter(after)
    rows = list(queryset[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1], fields)
