"""/workflows: drafts, versions, publishing, validation, duplicating, running."""

from django.db import transaction
from django.http import HttpResponse
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from ninja import Query, Router, Status
from referencing.exceptions import Unresolvable

from engine.statuses import WorkflowStatus
from flowmatrx.api.auth import MANAGE, RUN, requires
from flowmatrx.api.errors import Conflict, Unprocessable, definition_errors, error
from flowmatrx.api.idempotency import idempotent
from flowmatrx.api.lookups import get_or_404
from flowmatrx.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, paginate
from flowmatrx.api.resources import run_resource, workflow_resource
from flowmatrx.api.schemas import (
    BODY_ERRORS,
    DiffOut,
    DuplicateIn,
    IdempotencyKey,
    RunCreateIn,
    RunOut,
    ValidationOut,
    WorkflowCreateIn,
    WorkflowOut,
    WorkflowPage,
    WorkflowStateOut,
    WorkflowUpdateIn,
    error_responses,
)
from runs import lifecycle
from runs.composition import read_state
from runs.models import Run
from triggers.redaction import MissingSecret, keep_secrets
from workflows.diff import diff_definitions
from workflows.models import Workflow

router = Router(tags=["workflows"])

workflows = Workflow.objects.select_related("created_by")


def _load(workflow_id: str, *, for_update: bool = False) -> Workflow:
    return get_or_404(workflows, workflow_id, "workflow", "workflow_id", for_update=for_update)


def _with_secrets(definition: dict, stored: dict | None) -> dict:
    """The definition sent, with redacted webhook secrets standing for the stored ones."""
    try:
        return keep_secrets(definition, stored)
    except MissingSecret as exc:
        raise Unprocessable(str(exc), loc=("body", "definition", *exc.loc)) from None


def _only_drafts(workflow: Workflow, doing: str) -> None:
    if not workflow.is_draft:
        raise Conflict(
            f"version {workflow.version} is {workflow.status} and cannot be {doing}; "
            f"POST /api/v1/workflows/{workflow.id}/new_version to get a new draft, and "
            "edit that"
        )


@router.get("/workflows", response={200: WorkflowPage, **error_responses(422)})
def list_workflows(
    request,
    status: WorkflowStatus | None = None,
    q: str | None = Query(None, max_length=200, description="Part of the name."),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=500),
):
    """The latest version of each workflow, newest first."""
    queryset = workflows.latest_versions()
    if status is not None:
        queryset = queryset.filter(status=status)
    if q and q.strip():
        queryset = queryset.filter(name__icontains=q.strip())
    rows, next_cursor = paginate(queryset, limit=limit, cursor=cursor)
    items = [workflow_resource(w, with_errors=False, request=request) for w in rows]
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/workflows",
    response={201: WorkflowOut, **error_responses(*BODY_ERRORS)},
    auth=requires(MANAGE),
)
def create_workflow(
    request, payload: WorkflowCreateIn, response: HttpResponse, key: IdempotencyKey = None
):
    """A new draft (version 1). An invalid definition is saved, its problems are in `errors`."""

    def create():
        workflow = Workflow.objects.create(
            name=payload.name,
            description=payload.description,
            definition=_with_secrets(payload.definition.document(), None),
            input_schema=payload.input_schema,
            created_by=request.auth.user,
        )
        return workflow_resource(workflow, request=request)

    return idempotent(request, response, key, payload, create)


@router.get("/workflows/{workflow_id}", response={200: WorkflowOut, **error_responses(404)})
def get_workflow(request, workflow_id: str):
    return workflow_resource(_load(workflow_id), request=request)


@router.put(
    "/workflows/{workflow_id}",
    response={200: WorkflowOut, **error_responses(404, 409, *BODY_ERRORS)},
    auth=requires(MANAGE),
)
def update_workflow(request, workflow_id: str, payload: WorkflowUpdateIn):
    """Edit a draft (fields left out keep their value). A published version answers 409:
    make a new draft with `POST /workflows/{id}/new_version`. A webhook secret sent as the
    redacted placeholder keeps the stored secret."""
    changes = payload.model_dump(exclude_unset=True)
    with transaction.atomic():
        workflow = _load(workflow_id, for_update=True)
        _only_drafts(workflow, "edited")
        if "definition" in changes:
            changes["definition"] = _with_secrets(
                payload.definition.document(), workflow.definition
            )
        for field, value in changes.items():
            setattr(workflow, field, value)
        workflow.save()
    return workflow_resource(workflow, request=request)


@router.delete(
    "/workflows/{workflow_id}",
    response={204: None, **error_responses(404, 409)},
    auth=requires(MANAGE),
)
def delete_workflow(request, workflow_id: str):
    """Delete a draft, with its test runs. Published versions are archived instead."""
    with transaction.atomic():
        workflow = _load(workflow_id, for_update=True)
        _only_drafts(workflow, "deleted")
        Run.objects.filter(workflow=workflow).purge()
        workflow.delete()
    return Status(204, None)


@router.post(
    "/workflows/{workflow_id}/publish",
    response={200: WorkflowOut, **error_responses(404, 409, 422)},
    auth=requires(MANAGE),
)
def publish_workflow(request, workflow_id: str):
    """Validate the draft and freeze it as its version (422 lists every problem)."""
    with transaction.atomic():
        workflow = _load(workflow_id, for_update=True).publish()
    return workflow_resource(workflow, request=request)


@router.post(
    "/workflows/{workflow_id}/validate",
    response={200: ValidationOut, **error_responses(404)},
)
def validate_workflow(request, workflow_id: str):
    """Every problem of this version's definition, tied to node and edge ids."""
    errors = definition_errors(_load(workflow_id).validate())
    return {"valid": not errors, "errors": errors}


@router.post(
    "/workflows/{workflow_id}/duplicate",
    response={201: WorkflowOut, **error_responses(404, *BODY_ERRORS)},
    auth=requires(MANAGE),
)
def duplicate_workflow(
    request,
    workflow_id: str,
    response: HttpResponse,
    payload: DuplicateIn = None,
    key: IdempotencyKey = None,
):
    """A new workflow (own history, version 1, a draft) with this version's definition."""
    workflow = _load(workflow_id)

    def create():
        name = payload.name if payload is not None else None
        copy = workflow.duplicate(created_by=request.auth.user, name=name)
        return workflow_resource(copy, request=request)

    return idempotent(request, response, key, payload, create)


@router.post(
    "/workflows/{workflow_id}/new_version",
    response={201: WorkflowOut, **error_responses(404, 409, 422)},
    auth=requires(MANAGE),
)
def new_version(request, workflow_id: str, response: HttpResponse, key: IdempotencyKey = None):
    """A new draft, version N+1, copied from this version: how a published workflow is
    edited. 409 when the workflow already has a draft."""
    workflow = _load(workflow_id)

    def create():
        return workflow_resource(
            workflow.new_version(created_by=request.auth.user), request=request
        )

    return idempotent(request, response, key, None, create)


@router.post(
    "/workflows/{workflow_id}/archive",
    response={200: WorkflowOut, **error_responses(404, 409)},
    auth=requires(MANAGE),
)
def archive_workflow(request, workflow_id: str):
    """Stop a published version's triggers; its runs stay."""
    with transaction.atomic():
        workflow = _load(workflow_id, for_update=True).archive()
    return workflow_resource(workflow, request=request)


@router.get(
    "/workflows/{workflow_id}/versions",
    response={200: WorkflowPage, **error_responses(404)},
)
def list_versions(request, workflow_id: str):
    """Every version of this workflow, newest first."""
    workflow = _load(workflow_id)
    versions = workflows.versions_of(workflow.lineage)
    return {
        "items": [workflow_resource(w, with_errors=False, request=request) for w in versions],
        "next_cursor": None,
    }


@router.get(
    "/workflows/{workflow_id}/diff/{other_id}",
    response={200: DiffOut, **error_responses(404)},
)
def diff_versions(request, workflow_id: str, other_id: str):
    """What changed from version `workflow_id` to version `other_id` of the same workflow:
    nodes and edges added, removed and changed (nodes only moved are listed apart), and
    the settings keys that differ. 404 when either is unknown or they are not versions of
    one workflow."""
    workflow = _load(workflow_id)
    other = get_or_404(
        workflows.filter(lineage=workflow.lineage), other_id, "version of this workflow", "other_id"
    )
    diff = diff_definitions(workflow.definition, other.definition)
    return {
        "workflow_id": workflow.id,
        "other_id": other.id,
        "from_version": workflow.version,
        "to_version": other.version,
        **diff.as_dict(),
    }


@router.get(
    "/workflows/{workflow_id}/state",
    response={200: WorkflowStateOut, **error_responses(404)},
)
def get_state(request, workflow_id: str):
    """The workflow's persistent state (shared by all its versions), written by set_state
    steps and read in templates as {{ state.key }}."""
    workflow = _load(workflow_id)
    return {"lineage_id": workflow.lineage, "state": read_state(workflow.lineage)}


def _check_input(workflow: Workflow, data: dict) -> None:
    if not workflow.input_schema:
        return
    try:
        validator = Draft202012Validator(workflow.input_schema)
        problems = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path])
        errors = [error(["body", "input", *e.absolute_path], e.message) for e in problems]
    except (SchemaError, Unresolvable, RecursionError) as exc:
        raise Unprocessable(
            f"the workflow's input_schema cannot be used: {exc}", loc=("input_schema",)
        ) from None
    if errors:
        raise Unprocessable("the input does not match the workflow's input_schema", errors=errors)


@router.post(
    "/workflows/{workflow_id}/run",
    response={201: RunOut, **error_responses(404, 409, *BODY_ERRORS)},
    auth=requires(RUN),
)
def run_workflow(
    request,
    workflow_id: str,
    payload: RunCreateIn,
    response: HttpResponse,
    key: IdempotencyKey = None,
):
    """Start a run of exactly this version (a valid draft runs too, for testing). The input
    must satisfy the workflow's input_schema; a definition with problems answers 422, an
    archived version 409."""
    workflow = _load(workflow_id)
    _check_input(workflow, payload.input)

    def create():
        run = lifecycle.start_run(
            workflow,
            payload.input,
            trigger_type=request.auth.trigger_type,
            created_by=request.auth.user,
            idempotency_key=key,
            max_concurrency=payload.max_concurrency,
        )
        run = Run.objects.select_related("workflow", "created_by").get(pk=run.pk)
        return run_resource(run)

    return idempotent(request, response, key, payload, create)
