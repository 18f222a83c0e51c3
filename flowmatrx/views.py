from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.template.response import TemplateResponse

from engine.statuses import RunStatus
from runs.models import Run
from workflows.models import Workflow


@login_required
def dashboard(request):
    runs = Run.objects.select_related("workflow")
    context = {
        "recent_runs": runs.order_by("-created_at")[:10],
        "failed_runs": runs.filter(status=RunStatus.FAILED).order_by("-created_at")[:5],
        "counts": Run.objects.status_counts(),
        "workflow_count": Workflow.objects.latest_versions().count(),
    }
    return TemplateResponse(request, "dashboard.html", context)


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})
