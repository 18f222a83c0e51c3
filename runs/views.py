from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from engine.statuses import RunStatus
from runs.models import Run


@login_required
def run_list(request):
    runs = Run.objects.select_related("workflow").order_by("-created_at")
    status = request.GET.get("status", "")
    if status in RunStatus.__members__.values():
        runs = runs.filter(status=status)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    context = {"page": page, "status": status, "statuses": [s.value for s in RunStatus]}
    return TemplateResponse(request, "runs/run_list.html", context)


@login_required
def run_detail(request, run_id):
    run = get_object_or_404(Run.objects.select_related("workflow"), pk=run_id)
    context = {
        "run": run,
        "steps": run.steps.order_by("created_at", "id"),
        "events": run.events.order_by("seq"),
    }
    return TemplateResponse(request, "runs/run_detail.html", context)
