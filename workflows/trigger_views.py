"""The workflow page's trigger and flow-control editor (`templates/workflows/partials/
_triggers_editor.html`): open a trigger form, save or remove a trigger, save the
flow-control settings, preview a schedule's fire times.

Edits go to a draft (`triggers.editing`). With htmx, a saved edit answers the re-rendered
Triggers section (retargeted onto `#triggers`), a refused one the form again with its
errors beside the fields (200, so htmx swaps it); without htmx, a saved edit redirects to
the workflow page and a refused one renders the page with the form open (400).
"""

from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from accounts.access import requires
from accounts.roles import MANAGE
from engine.errors import StateConflict
from runs import eventlog
from triggers.editing import (
    TRIGGER_TYPES,
    EditRefused,
    EditResult,
    edit_target,
    remove_trigger,
    save_flow_control,
    save_trigger,
)
from triggers.forms import FlowControlForm, trigger_form
from workflows import views
from workflows.models import Workflow
from workflows.triggers_panel import preview, triggers_panel

TRIGGER_FORM = "workflows/partials/_trigger_form.html"
FLOW_FORM = "workflows/partials/_flow_control_form.html"


def _kind_and_index(params) -> tuple[str, int | None]:
    kind = params.get("kind", "")
    if kind not in TRIGGER_TYPES:
        raise Http404("unknown trigger type")
    raw = params.get("index", "")
    if raw in ("", None):
        return kind, None
    try:
        return kind, int(raw)
    except ValueError:
        raise Http404("bad trigger index") from None


def _current(workflow: Workflow, kind: str, index: int | None) -> dict | None:
    """The trigger being edited, from the version edits go to (None: a new one)."""
    if index is None:
        return None
    triggers = edit_target(workflow).workflow_settings.get("triggers")
    if not isinstance(triggers, list) or not 0 <= index < len(triggers):
        raise Http404("no such trigger")
    trigger = triggers[index]
    if not isinstance(trigger, dict) or trigger.get("type") != kind:
        raise Http404("no such trigger")
    return trigger


def _form_context(workflow: Workflow, form, index: int | None) -> dict:
    """What `_trigger_form.html` needs: a schedule form shows its next fire times, a webhook
    form whether a secret is set (never the secret)."""
    context = {"form": form, "index": index}
    if form.kind == "webhook" and index is not None:
        current = _current(workflow, "webhook", index)
        context["secret_set"] = bool(current and current.get("secret"))
    if form.kind == "schedule":
        cron, timezone = form["cron"].value() or "", form["timezone"].value() or "UTC"
        if cron.strip():
            context["fire_times"], context["preview_error"] = preview(
                cron, timezone.strip(), eventlog.db_now()
            )
    return context


def _saved_message(result: EditResult, what: str) -> str:
    where = f"draft v{result.draft.version}"
    if result.created:
        where = f"a new {where}"
    return f"{what} saved to {where}. Publish it to activate."


def _section(request, workflow: Workflow, *, saved: str = "", error: str = ""):
    """The Triggers section after a saved edit (htmx), or the page again (no htmx)."""
    if not request.htmx:
        return redirect("workflows:detail", workflow.pk)
    workflow.refresh_from_db()  # the edit went through another instance of a draft
    panel = triggers_panel(workflow, request)
    panel.editor.saved, panel.editor.error = saved, error
    context = {"workflow": workflow, "triggers": panel}
    response = TemplateResponse(request, "workflows/partials/_triggers.html", context)
    return reswap(retarget(response, "#triggers"), "outerHTML")


def _refused(request, workflow: Workflow, template: str, context: dict, open_form):
    """The form again with its errors: alone for htmx, in the page (400) without."""
    if request.htmx:
        return TemplateResponse(request, template, {"workflow": workflow, **context})
    response = views.workflow_detail(request, workflow.pk)
    editor = response.context_data["triggers"].editor
    open_form(editor)
    response.status_code = 400
    return response


@requires(MANAGE)
@require_GET
def trigger_form_view(request, workflow_id):
    """A blank (`?kind=`) or filled (`?kind=&index=`) trigger form."""
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    kind, index = _kind_and_index(request.GET)
    form = trigger_form(kind, _current(workflow, kind, index))
    if request.htmx:
        context = {"workflow": workflow, **_form_context(workflow, form, index)}
        return TemplateResponse(request, TRIGGER_FORM, context)
    response = views.workflow_detail(request, workflow.pk)
    response.context_data["triggers"].editor.open = _form_context(workflow, form, index)
    return response


@requires(MANAGE)
@require_POST
def save_trigger_view(request, workflow_id):
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    kind, index = _kind_and_index(request.POST)
    form = trigger_form(kind, data=request.POST)
    error = ""
    if form.is_valid():
        try:
            result = save_trigger(workflow, kind, form.trigger, index, created_by=request.user)
        except EditRefused as refused:
            form.add_problems(refused.problems)
        except StateConflict as conflict:
            error = str(conflict)
        else:
            noun = {"webhook": "Webhook", "schedule": "Schedule", "event": "Event"}[kind]
            return _section(request, workflow, saved=_saved_message(result, f"{noun} trigger"))
    if error:
        form.add_error(None, error)

    context = _form_context(workflow, form, index)

    def open_form(editor):
        editor.open = context

    return _refused(request, workflow, TRIGGER_FORM, context, open_form)


@requires(MANAGE)
@require_POST
def remove_trigger_view(request, workflow_id):
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    kind, index = _kind_and_index(request.POST)
    if index is None:
        raise Http404("which trigger?")
    try:
        result = remove_trigger(workflow, kind, index, created_by=request.user)
    except StateConflict as conflict:
        return _section(request, workflow, error=str(conflict))
    return _section(request, workflow, saved=_saved_message(result, "Removal"))


@requires(MANAGE)
@require_POST
def save_flow_control_view(request, workflow_id):
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    form = FlowControlForm(request.POST)
    if form.is_valid():
        try:
            result = save_flow_control(workflow, form.rules(), created_by=request.user)
        except EditRefused as refused:
            form.add_problems(refused.problems)
        else:
            return _section(request, workflow, saved=_saved_message(result, "Flow control"))

    def open_form(editor):
        editor.flow_form = form

    return _refused(request, workflow, FLOW_FORM, {"flow_form": form}, open_form)


@requires(MANAGE)
@require_GET
def schedule_preview_view(request, workflow_id):
    """The next fire times of the cron and time zone being typed (`schedule-cron`,
    `schedule-timezone`)."""
    get_object_or_404(Workflow, pk=workflow_id)
    cron = request.GET.get("schedule-cron", "")
    timezone = request.GET.get("schedule-timezone", "").strip() or "UTC"
    fire_times, error = preview(cron, timezone, eventlog.db_now())
    context = {"fire_times": fire_times, "preview_error": error}
    return TemplateResponse(request, "workflows/partials/_schedule_preview.html", context)
