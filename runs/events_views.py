"""/events/: the events received (`POST /api/v1/events`, or sent by a step), newest first,
with the runs each one resumed and started."""

from __future__ import annotations

import uuid

from django.core.paginator import Paginator
from django.template.response import TemplateResponse

from accounts.access import requires
from accounts.roles import READ
from runs.models import Event, Run

PER_PAGE = 50


def _run_ids(values) -> list[uuid.UUID]:
    ids = []
    for value in values or []:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids


@requires(READ)
def event_list(request):
    events = Event.objects.select_related("created_by").order_by("-received_at", "-id")
    name = request.GET.get("name", "").strip()
    if name:
        events = events.filter(name=name)
    page = Paginator(events, PER_PAGE).get_page(request.GET.get("page"))
    wanted = {
        run_id
        for event in page.object_list
        for run_id in _run_ids(event.resumed_run_ids) + _run_ids(event.started_run_ids)
    }
    runs = Run.objects.select_related("workflow").in_bulk(wanted) if wanted else {}
    rows = [
        {
            "event": event,
            "resumed": [runs.get(i) or i for i in _run_ids(event.resumed_run_ids)],
            "started": [runs.get(i) or i for i in _run_ids(event.started_run_ids)],
        }
        for event in page.object_list
    ]
    context = {"page": page, "rows": rows, "name": name}
    return TemplateResponse(request, "runs/event_list.html", context)
