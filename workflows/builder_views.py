"""The builder's server-rendered pieces: the node config form and the template preview.

Contract with the canvas island (every endpoint: signed-in session, POST with the CSRF
token, form-encoded; an anonymous request is redirected to the login page):

``POST /workflows/<uuid>/builder/node-form`` (``workflows:node_form``)
    Fields ``node_id``, ``step_type``, ``node_data`` (JSON of the node's current
    ``data``; blank or left out for a new node: ``{}``), ``definition`` (JSON of the
    current, unsaved canvas definition; it must contain the node). Answers 200 with
    the HTML partial of the node's config form (``templates/workflows/builder/
    _node_form.html``, root ``div#node-config.node-config``), filled from ``node_data``,
    with the upstream reference picker and the template preview.

``POST /workflows/<uuid>/builder/node-form/save`` (``workflows:node_form_save``)
    The form's own submit (``hx-post``, ``hx-target`` its root, ``outerHTML``); it carries
    ``node_id``, ``step_type``, ``node_data`` and ``definition`` as hidden fields, and
    the config fields (``config__<key>``) and common fields (``label``, ``on_error``,
    ``max_attempts``, ``backoff_strategy``, ``backoff_base``, ``timeout_seconds``,
    ``join``). Invalid: 200, the partial again with the errors beside the fields.
    Valid: 200, the partial again with a "saved" note, and the header
    ``HX-Trigger: {"flowmatrx:node-saved": {"node_id": "<id>", "data": {...}}}`` where
    ``data`` is the node's whole new ``data`` (label, config, policy fields and any
    other keys it had). The workflow itself is not saved (the island saves the
    definition through the JSON API). A version that is not a draft answers 409.

``POST /workflows/<uuid>/builder/preview`` (``workflows:preview``)
    Fields ``template``, ``node_id``, and optionally ``kind`` (``template``, the default,
    or ``expression`` for a condition's expression). Answers 200 with an HTML fragment
    (``_preview.html``): what the template resolves to against the context of the most
    recent run of any version of the workflow (a run in which a step completed, else the
    latest run), or the engine's error message, or a note that there is no run yet.

The version diff the island draws is in the JSON API (flowmatrx/api/workflows.py):
``GET /api/v1/workflows/{workflow_id}/diff/{other_id}`` answers what changed from
version ``workflow_id`` to version ``other_id`` of one workflow (workflows/diff.py):
``{"workflow_id", "other_id", "from_version", "to_version", "nodes": {"added",
"removed", "changed", "moved"}, "edges": {"added", "removed", "changed"}, "settings",
"identical"}``; 404 when either id is unknown or they belong to different workflows.

Malformed input (missing fields, JSON that does not parse or is not an object) answers
400; an unknown step type, or a node id that is not in the definition, 422; both with a
small HTML fragment (``_request_error.html``) naming the problem. Nothing is stored.
"""

import json

from django import forms
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from accounts.access import requires
from accounts.roles import MANAGE, READ
from engine.expressions import ExpressionError, evaluate
from engine.graph import Graph
from engine.registry import registry
from engine.templates import MAX_SOURCE_BYTES, TemplateError, is_template, render
from workflows.config_form import NodeForm
from workflows.models import Workflow
from workflows.references import last_run, preview_context, reference_picker

PARTIALS = "workflows/builder"
MAX_PREVIEW_CHARS = 20_000


def _load(workflow_id) -> Workflow:
    # the stored definition is not needed (the canvas sends its own) and may be large
    return get_object_or_404(Workflow.objects.defer("definition"), pk=workflow_id)


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise forms.ValidationError(f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{what} must be a JSON object.")
    return value


class NodeRequest(forms.Form):
    """The node the form is about, as the island (or the form's hidden fields) sends it."""

    node_id = forms.CharField(max_length=200, strip=False)
    step_type = forms.CharField(max_length=64)
    node_data = forms.CharField(strip=False, required=False)
    definition = forms.CharField(strip=False)

    unknown = False
    """True when the request is well-formed but names an unknown step type or node (422)."""

    def clean_node_data(self):
        text = self.cleaned_data["node_data"]
        return _json_object(text, "node_data") if text.strip() else {}

    def clean_definition(self):
        definition = _json_object(self.cleaned_data["definition"], "definition")
        if not isinstance(definition.get("nodes"), list):
            raise forms.ValidationError("definition must have a 'nodes' list.")
        return definition

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if registry.get(cleaned["step_type"]) is None:
            self.unknown = True
            self.add_error("step_type", f"Unknown step type '{cleaned['step_type']}'.")
        ids = {n.get("id") for n in cleaned["definition"]["nodes"] if isinstance(n, dict)}
        if cleaned["node_id"] not in ids:
            self.unknown = True
            self.add_error("node_id", f"The definition has no node '{cleaned['node_id']}'.")
        return cleaned


def _refused(request, form: forms.Form, status: int) -> TemplateResponse:
    return TemplateResponse(
        request, f"{PARTIALS}/_request_error.html", {"form": form}, status=status
    )


def _node_request(request):
    """(NodeRequest, None) when the posted node is usable, else (None, error response)."""
    node_request = NodeRequest(request.POST)
    if node_request.is_valid():
        return node_request, None
    return None, _refused(request, node_request, 422 if node_request.unknown else 400)


def _render_form(request, workflow, form, definition, *, saved=False, status=200):
    node_id = form.node_id
    context = {
        "workflow": workflow,
        "form": form,
        "node_id": node_id,
        "step_type": form.step_type,
        "node_data_json": json.dumps(form.original, ensure_ascii=False),
        "definition_json": json.dumps(definition, ensure_ascii=False),
        "picker": reference_picker(workflow, form.graph, node_id, last_run(workflow)),
        "editable": workflow.is_draft,
        "saved": saved,
    }
    return TemplateResponse(request, f"{PARTIALS}/_node_form.html", context, status=status)


@requires(READ)
@require_POST
def node_form(request, workflow_id):
    workflow = _load(workflow_id)
    node_request, refused = _node_request(request)
    if refused:
        return refused
    data = node_request.cleaned_data
    graph = Graph.from_definition(data["definition"])
    step_type = registry.get(data["step_type"])
    form = NodeForm(step_type, data["node_data"], node_id=data["node_id"], graph=graph)
    form.check_stored()
    return _render_form(request, workflow, form, data["definition"])


def _with_node_data(definition: dict, node_id: str, node_data: dict) -> dict:
    nodes = [
        {**n, "data": node_data} if isinstance(n, dict) and n.get("id") == node_id else n
        for n in definition["nodes"]
    ]
    return {**definition, "nodes": nodes}


@requires(MANAGE)
@require_POST
def node_form_save(request, workflow_id):
    workflow = _load(workflow_id)
    node_request, refused = _node_request(request)
    if refused:
        return refused
    data = node_request.cleaned_data
    definition, node_id = data["definition"], data["node_id"]
    # only the node's data changes: its graph stays the same
    graph = Graph.from_definition(definition)
    step_type = registry.get(data["step_type"])
    form = NodeForm(step_type, data["node_data"], request.POST, node_id=node_id, graph=graph)
    if not workflow.is_draft:
        form.add_error(
            None,
            f"Version {workflow.version} is {workflow.status}: make a new draft to change it.",
        )
        return _render_form(request, workflow, form, definition, status=409)
    if not form.is_valid():
        return _render_form(request, workflow, form, definition)

    new_data = form.node_data_out
    fresh = NodeForm(step_type, new_data, node_id=node_id, graph=graph)
    fresh.check_stored()
    definition = _with_node_data(definition, node_id, new_data)
    response = _render_form(request, workflow, fresh, definition, saved=True)
    trigger = {"flowmatrx:node-saved": {"node_id": node_id, "data": new_data}}
    # ASCII JSON: a header value must not carry raw non-Latin-1 characters
    response["HX-Trigger"] = json.dumps(trigger, ensure_ascii=True)
    return response


class PreviewRequest(forms.Form):
    template = forms.CharField(strip=False, max_length=MAX_SOURCE_BYTES)
    node_id = forms.CharField(max_length=200, strip=False)
    kind = forms.ChoiceField(
        choices=[("template", "template"), ("expression", "expression")], required=False
    )


_KIND_NAMES = {"dict": "object", "bool": "boolean", "int": "number", "float": "number"}


def _shown(value) -> tuple[str, str]:
    """(text, kind) of a rendered value, for the preview."""
    if isinstance(value, str):
        text, kind = value, "text"
    else:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        kind = "null" if value is None else type(value).__name__
        kind = _KIND_NAMES.get(kind, kind)
    if len(text) > MAX_PREVIEW_CHARS:
        text = text[:MAX_PREVIEW_CHARS] + f"\n… ({len(text) - MAX_PREVIEW_CHARS:,} more)"
    return text, kind


@requires(READ)
@require_POST
def preview(request, workflow_id):
    workflow = _load(workflow_id)
    form = PreviewRequest(request.POST)
    if not form.is_valid():
        return _refused(request, form, 400)
    source, node_id = form.cleaned_data["template"], form.cleaned_data["node_id"]
    expression = form.cleaned_data["kind"] == "expression"
    if not expression and not is_template(source):
        text, _ = _shown(source)
        context = {"workflow": workflow, "is_template": False, "text": text}
        return TemplateResponse(request, f"{PARTIALS}/_preview.html", context)
    run = last_run(workflow)
    context = {"workflow": workflow, "run": run, "is_template": True, "expression": expression}
    if run is not None:
        names = preview_context(run, node_id)
        try:
            value = evaluate(source, names) if expression else render(source, names)
        except ExpressionError as error:
            context["error"] = str(error)
        except TemplateError as error:
            context["error"] = error.message
        else:
            context["text"], context["kind"] = _shown(value)
    return TemplateResponse(request, f"{PARTIALS}/_preview.html", context)
