"""/events: deliver an event (resumes the runs waiting for it, starts the workflows it
triggers) and list what was delivered."""

from django.http import HttpResponse
from ninja import Query, Router

from flowmatrx.api.auth import RUN, requires
from flowmatrx.api.idempotency import idempotent
from flowmatrx.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, paginate
from flowmatrx.api.resources import event_resource
from flowmatrx.api.schemas import (
    BODY_ERRORS,
    EventIn,
    EventOut,
    EventPage,
    IdempotencyKey,
    error_responses,
)
from runs.events import deliver_event
from runs.models import Event

router = Router(tags=["events"])


@router.post(
    "/events",
    response={201: EventOut, **error_responses(*BODY_ERRORS)},
    auth=requires(RUN),
)
def send_event(request, payload: EventIn, response: HttpResponse, key: IdempotencyKey = None):
    """Store the event, resume every run waiting for this name whose match holds, and start
    every published workflow with an event trigger for it. An `id` delivered before does
    nothing again: the answer repeats the first outcome with `duplicate: true`."""

    def create():
        event, _, _ = deliver_event(
            payload.name, payload.data, payload.id, created_by=request.auth.user
        )
        return event_resource(event)

    return idempotent(request, response, key, payload, create)


@router.get("/events", response={200: EventPage, **error_responses(422)})
def list_events(
    request,
    name: str | None = Query(None, max_length=200),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=500),
):
    """Delivered events, newest first."""
    queryset = Event.objects.select_related("created_by")
    if name:
        queryset = queryset.filter(name=name)
    rows, next_cursor = paginate(queryset, limit=limit, cursor=cursor, fields=("received_at", "id"))
    return {"items": [event_resource(e) for e in rows], "next_cursor": next_cursor}
