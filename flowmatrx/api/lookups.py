"""Loading a resource by the id in the path: a malformed id is as unknown as a missing one
(404, never a 422 or a crash)."""

import uuid

from django.db import models

from flowmatrx.api.errors import NotFound


def get_or_404(queryset: models.QuerySet, raw_id: str, what: str, loc: str, *, for_update=False):
    try:
        pk = uuid.UUID(str(raw_id))
    except ValueError:
        raise NotFound(f"no {what} with id {raw_id!r}", loc=("path", loc)) from None
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"no {what} with id {raw_id!r}", loc=("path", loc))
    return obj
