"""The builder page: the canvas island (static/canvas, a committed esbuild bundle) mounted in
a server-rendered page, with its boot data; and "New workflow", which makes a draft and
opens it there.

The island talks to the JSON API (/api/v1, session auth + X-CSRFToken) and loads the node
config form from `workflows:node_form` (workflows/builder_views.py) into `#node-panel`.
"""

from django import forms
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.access import requires
from accounts.roles import MANAGE, READ, may
from triggers.redaction import redact_definition
from workflows.models import Workflow
from workflows.run_form import RunForm

PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
"""Stands for a workflow id in the URL templates the island fills in (other versions)."""


class NewWorkflowForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    description = forms.CharField(max_length=10_000, required=False, strip=True)


def boot_data(workflow: Workflow, request) -> dict:
    """What the island needs: the definition, the version, the URLs it calls, the CSRF
    token (the `json_script` payload of the builder page). A webhook trigger's secret is
    redacted (saving the placeholder back keeps it); `can_edit` is false for a role that
    may not edit workflows (the island is then read-only)."""
    api = reverse("api-v1:get_workflow", args=[workflow.pk])
    return {
        "mode": "builder",
        "workflow": {
            "id": str(workflow.pk),
            "lineage_id": str(workflow.lineage),
            "name": workflow.name,
            "version": workflow.version,
            "status": workflow.status,
        },
        "definition": redact_definition(workflow.definition or {}),
        "can_edit": may(request.user, MANAGE),
        "csrf_token": get_token(request),
        "urls": {
            "workflow": api,
            "validate": reverse("api-v1:validate_workflow", args=[workflow.pk]),
            "publish": reverse("api-v1:publish_workflow", args=[workflow.pk]),
            "new_version": reverse("api-v1:new_version", args=[workflow.pk]),
            "duplicate": reverse("api-v1:duplicate_workflow", args=[workflow.pk]),
            "versions": reverse("api-v1:list_versions", args=[workflow.pk]),
            # from another version (the placeholder) to this one: what this version changed
            "diff_template": f"{reverse('api-v1:get_workflow', args=[PLACEHOLDER_ID])}"
            f"/diff/{workflow.pk}",
            "catalog_steps": reverse("api-v1:list_step_types"),
            "catalog_functions": reverse("api-v1:list_functions"),
            "node_form": reverse("workflows:node_form", args=[workflow.pk]),
            "workflow_template": reverse("api-v1:get_workflow", args=[PLACEHOLDER_ID]),
            "builder_template": reverse("workflows:builder", args=[PLACEHOLDER_ID]),
        },
    }


@requires(READ)
def builder(request, workflow_id):
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    context = {
        "workflow": workflow,
        "boot": boot_data(workflow, request),
        "run_form": RunForm(workflow.input_schema),
    }
    return TemplateResponse(request, "workflows/builder.html", context)


@requires(MANAGE)
@require_POST
def new_workflow(request):
    """Create an empty draft named by the form and open it in the builder; a bad name
    shows the workflow list again with the error."""
    form = NewWorkflowForm(request.POST)
    if form.is_valid():
        workflow = Workflow.objects.create(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            created_by=request.user,
        )
        return redirect("workflows:builder", workflow.pk)
    workflows = Workflow.objects.latest_versions().order_by("name")
    context = {"workflows": workflows, "q": "", "new_form": form}
    return TemplateResponse(request, "workflows/workflow_list.html", context, status=400)
