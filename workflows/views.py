from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from accounts.access import requires
from accounts.roles import MANAGE, READ, RUN
from engine.errors import InvalidDefinition, StateConflict
from engine.statuses import TriggerType
from runs import eventlog, flowcontrol, lifecycle
from runs.composition import read_state
from triggers.models import Schedule
from triggers.schedules import set_enabled
from triggers.sync import active_version
from workflows.models import Workflow
from workflows.run_form import RunForm
from workflows.triggers_panel import triggers_panel


@requires(READ)
def workflow_list(request):
    query = request.GET.get("q", "").strip()
    workflows = Workflow.objects.latest_versions().order_by("name")
    if query:
        workflows = workflows.filter(name__icontains=query)
    return TemplateResponse(
        request, "workflows/workflow_list.html", {"workflows": workflows, "q": query}
    )


@requires(READ)
def workflow_detail(request, workflow_id):
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    # Flow control is shown as the active version enforces it (buckets span all versions).
    flow_version = active_version(workflow.lineage) or workflow
    context = {
        "workflow": workflow,
        "versions": Workflow.objects.versions_of(workflow.lineage),
        "runs": workflow.runs.order_by("-created_at")[:20],
        "flow_control": flowcontrol.overview(flow_version, eventlog.db_now()),
        "flow_version": flow_version,
        "has_flow_control": flowcontrol.has_flow_control(flow_version.workflow_settings),
        "triggers": triggers_panel(workflow, request),
        "run_form": RunForm(workflow.input_schema),
        "state": read_state(workflow.lineage),
    }
    return TemplateResponse(request, "workflows/workflow_detail.html", context)


@requires(RUN)
@require_POST
def run_workflow(request, workflow_id):
    """The Run button: validate the input against the schema, start a manual run, and go to
    its page; on an error, the workflow page again with the errors beside the fields."""
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    form = RunForm(workflow.input_schema, request.POST)
    problems = []
    if form.is_valid():
        try:
            run = lifecycle.start_run(
                workflow, form.input, created_by=request.user, trigger_type=TriggerType.MANUAL
            )
        except InvalidDefinition as error:
            problems = error.problems
            form.add_error(None, str(error))
        except StateConflict as error:
            form.add_error(None, str(error))
        else:
            return redirect("runs:detail", run.pk)
    response = workflow_detail(request, workflow_id)
    response.context_data.update(run_form=form, run_problems=problems)
    response.status_code = 400
    return response


@requires(MANAGE)
@require_POST
def toggle_schedule(request, workflow_id, schedule_id):
    """Enable or disable one schedule of the workflow's active version (`enabled` is
    "true" or "false"); htmx gets the re-rendered Triggers section, a plain form goes back
    to the workflow page."""
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    schedule = get_object_or_404(Schedule, pk=schedule_id, workflow=workflow)
    set_enabled(schedule, request.POST.get("enabled", "").lower() in ("true", "1", "on"))
    if not request.htmx:
        return redirect("workflows:detail", workflow.pk)
    context = {"workflow": workflow, "triggers": triggers_panel(workflow, request)}
    return TemplateResponse(request, "workflows/partials/_triggers.html", context)
