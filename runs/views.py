import json
from datetime import UTC, datetime

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from accounts.access import requires
from accounts.roles import READ, RUN, may
from engine.errors import StateConflict
from engine.statuses import RunStatus, WaitingFor
from runs import lifecycle, run_page
from runs.models import Run, StepRun


@requires(READ)
def run_list(request):
    runs = Run.objects.select_related("workflow").order_by("-created_at")
    status = request.GET.get("status", "")
    if status in RunStatus.__members__.values():
        runs = runs.filter(status=status)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    context = {"page": page, "status": status, "statuses": [s.value for s in RunStatus]}
    return TemplateResponse(request, "runs/run_list.html", context)


@requires(READ)
def run_detail(request, run_id):
    run = get_object_or_404(Run.objects.select_related("workflow", "created_by"), pk=run_id)
    timeline = run_page.TimelinePage.load(run)
    last_seq = timeline.events[-1]["seq"] if timeline.events else 0
    context = {
        **run_page.state_context(run, can_act=may(request.user, RUN)),
        **timeline.context(),
        "stream_url": f"/ws/runs/{run.pk}/html?after={last_seq}",
        "canvas_boot": run_page.canvas_boot(run),
    }
    return TemplateResponse(request, "runs/run_detail.html", context)


@requires(READ)
def run_timeline(request, run_id):
    """The timeline entries before `?before=<seq>` (the page's "load earlier" button)."""
    run = get_object_or_404(Run, pk=run_id)
    before = request.GET.get("before", "")
    if not (before.isascii() and before.isdigit() and len(before) <= 18) or int(before) < 1:
        return HttpResponse("before must be a positive integer (a seq)", status=400)
    timeline = run_page.TimelinePage.load(run, min(int(before), run.last_seq + 1))
    context = {"run": run, **timeline.context()}
    return TemplateResponse(request, "runs/partials/_timeline_page.html", context)


def _acted(request, run_id, action) -> HttpResponse:
    """Do `action()`; htmx gets 204 (the stream shows the result) or 409 with the reason,
    a plain form is redirected back to the run page."""
    get_object_or_404(Run, pk=run_id)
    try:
        action()
    except StateConflict as error:
        if request.htmx:
            return HttpResponse(str(error), status=409, content_type="text/plain")
        messages.error(request, str(error))
    if request.htmx:
        return HttpResponse(status=204)
    return redirect("runs:detail", run_id)


@requires(RUN)
@require_POST
def cancel_run(request, run_id):
    return _acted(request, run_id, lambda: lifecycle.cancel(run_id, reason="cancelled"))


@requires(RUN)
@require_POST
def retry_run(request, run_id):
    return _acted(request, run_id, lambda: lifecycle.retry(run_id))


@requires(RUN)
@require_POST
def decide(request, run_id):
    """Approve or reject a waiting approval, with an optional comment."""
    decision = request.POST.get("decision")
    step_id = request.POST.get("step_id", "")
    if decision not in ("approve", "reject") or not step_id:
        return HttpResponse("decision must be approve or reject, for a step_id", status=400)
    data = {"approved": decision == "approve", "comment": request.POST.get("comment", "")[:10_000]}
    return _acted(
        request,
        run_id,
        lambda: lifecycle.resume(run_id, step_id, data, decided_by=request.user.get_username()),
    )


def _resume_with_event(run_id, step_id: str, data) -> None:
    """Deliver `data` to a step waiting for an event, shaped as `runs.events` delivers a real
    event (what `wait_for_event` gives the context as the step's output)."""
    step = StepRun.objects.filter(run_id=run_id, step_id=step_id).order_by("-attempt").first()
    if step is None or step.waiting_for != WaitingFor.EVENT:
        raise StateConflict(f"step {step_id!r} is not waiting for an event")
    config = step.input if isinstance(step.input, dict) else {}
    received_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = {"name": config.get("event_name"), "data": data, "id": None}
    lifecycle.resume(run_id, step_id, {**event, "received_at": received_at})


@requires(RUN)
@require_POST
def resume_event(request, run_id):
    """Resume a step waiting for an event with the JSON data typed on the run page."""
    step_id = request.POST.get("step_id", "")
    text = request.POST.get("data", "").strip() or "null"
    try:
        data = json.loads(text)
    except ValueError as error:
        data, problem = None, f"the event data is not valid JSON: {error}"
    else:
        problem = "" if step_id else "a step_id is needed"
    if problem:
        if request.htmx:
            return HttpResponse(problem, status=400, content_type="text/plain")
        messages.error(request, problem)
        return redirect("runs:detail", run_id)
    return _acted(request, run_id, lambda: _resume_with_event(run_id, step_id, data))
