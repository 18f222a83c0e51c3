from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from runs import eventlog, flowcontrol
from workflows.models import Workflow


@login_required
def workflow_list(request):
    query = request.GET.get("q", "").strip()
    workflows = Workflow.objects.latest_versions().order_by("name")
    if query:
        workflows = workflows.filter(name__icontains=query)
    return TemplateResponse(
        request, "workflows/workflow_list.html", {"workflows": workflows, "q": query}
    )


@login_required
def workflow_detail(request, workflow_id):
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    context = {
        "workflow": workflow,
        "versions": Workflow.objects.versions_of(workflow.lineage),
        "runs": workflow.runs.order_by("-created_at")[:20],
        "flow_control": flowcontrol.overview(workflow, eventlog.db_now()),
        "has_flow_control": flowcontrol.has_flow_control(workflow.workflow_settings),
    }
    return TemplateResponse(request, "workflows/workflow_detail.html", context)
