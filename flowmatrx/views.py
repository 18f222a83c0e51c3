from django.db import connection
from django.http import JsonResponse
from django.template.response import TemplateResponse

from accounts.access import public, requires
from accounts.roles import READ
from engine.statuses import RunStatus, StepStatus, WaitingFor
from runs.models import Run, StepRun
from workflows.models import Workflow


def waiting_approvals(limit: int = 20):
    """Steps of live runs waiting for an approval nobody has given yet, oldest first."""
    return (
        StepRun.objects.filter(
            status=StepStatus.WAITING,
            waiting_for=WaitingFor.APPROVAL,
            resume_data__isnull=True,
            run__status__in=[RunStatus.PAUSED, RunStatus.RUNNING],
        )
        .select_related("run__workflow")
        .order_by("started_at", "created_at")[:limit]
    )


@requires(READ)
def dashboard(request):
    runs = Run.objects.select_related("workflow")
    context = {
        "recent_runs": runs.order_by("-created_at")[:10],
        "failed_runs": runs.filter(status=RunStatus.FAILED).order_by("-created_at")[:5],
        "approvals": waiting_approvals(),
        "counts": Run.objects.status_counts(),
        "workflow_count": Workflow.objects.latest_versions().count(),
    }
    return TemplateResponse(request, "dashboard.html", context)


@public("a load balancer's liveness probe; it shows nothing private")
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})
