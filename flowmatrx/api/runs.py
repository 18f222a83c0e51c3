"""/runs: list, detail, steps, events, and the state changes a person or program makes
(resume, cancel, retry)."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from django.utils import timezone
from ninja import Query, Router, Status
from pydantic import ValidationError

from engine.statuses import RunStatus, StepStatus, TriggerType, WaitingFor
from flowmatrx.api.auth import RUN, requires
from flowmatrx.api.errors import Unprocessable, error
from flowmatrx.api.lookups import get_or_404
from flowmatrx.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, paginate
from flowmatrx.api.resources import run_event_resource, run_resource, step_run_resource
from flowmatrx.api.schemas import (
    BODY_ERRORS,
    ApprovalData,
    ResumeIn,
    RunEventPage,
    RunOut,
    RunPage,
    StepRunPage,
    error_responses,
)
from runs import lifecycle
from runs.models import Run, StepRun
from workflows.models import Workflow

router = Router(tags=["runs"])

runs = Run.objects.select_related("workflow", "created_by")
MAX_EVENTS_LIMIT = 1000
MAX_SEQ = 2**31 - 1
DATE_HELP = "ISO 8601; without an offset it is UTC."


def _load(run_id: str) -> Run:
    return get_or_404(runs, run_id, "run", "run_id")


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        if timezone.is_naive(value):
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Unprocessable("date out of range", loc=("query", name)) from None


@router.get("/runs", response={200: RunPage, **error_responses(422)})
def list_runs(
    request,
    workflow_id: Annotated[
        UUID | None,
        Query(
            description="Any version's id: runs of every version of that workflow "
            "(add workflow_version to keep one version)."
        ),
    ] = None,
    workflow_version: int | None = Query(None, ge=1, le=2**31 - 1),
    status: RunStatus | None = None,
    trigger_type: TriggerType | None = None,
    created_after: Annotated[datetime | None, Query(description=DATE_HELP)] = None,
    created_before: Annotated[datetime | None, Query(description=DATE_HELP)] = None,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=500),
):
    """Runs, newest first."""
    queryset = runs.all()
    if workflow_id is not None:
        lineage = Workflow.objects.filter(pk=workflow_id).values("lineage")
        queryset = queryset.filter(workflow__lineage__in=lineage)
    if workflow_version is not None:
        queryset = queryset.filter(workflow__version=workflow_version)
    if status is not None:
        queryset = queryset.filter(status=status)
    if trigger_type is not None:
        queryset = queryset.filter(trigger_type=trigger_type)
    if after := _utc(created_after, "created_after"):
        queryset = queryset.filter(created_at__gt=after)
    if before := _utc(created_before, "created_before"):
        queryset = queryset.filter(created_at__lt=before)
    rows, next_cursor = paginate(queryset, limit=limit, cursor=cursor)
    return {"items": [run_resource(r) for r in rows], "next_cursor": next_cursor}


@router.get("/runs/{run_id}", response={200: RunOut, **error_responses(404)})
def get_run(request, run_id: str):
    return run_resource(_load(run_id))


@router.get("/runs/{run_id}/steps", response={200: StepRunPage, **error_responses(404, 422)})
def list_steps(
    request,
    run_id: str,
    limit: int = Query(MAX_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=500),
):
    """Every attempt of every step, in the order they were started."""
    run = _load(run_id)
    rows, next_cursor = paginate(
        StepRun.objects.filter(run=run),
        limit=limit,
        cursor=cursor,
        fields=("id",),
        descending=False,
    )
    return {"items": [step_run_resource(s) for s in rows], "next_cursor": next_cursor}


@router.get("/runs/{run_id}/events", response={200: RunEventPage, **error_responses(404, 422)})
def list_run_events(
    request,
    run_id: str,
    after: int = Query(0, ge=0, le=MAX_SEQ, description="Only events with a larger seq."),
    cursor: str | None = Query(None, max_length=20, description="A next_cursor (same as after)."),
    limit: int = Query(MAX_EVENTS_LIMIT, ge=1, le=MAX_EVENTS_LIMIT),
):
    """The run's event log in seq order (SPEC §5). `next_cursor` is the last seq sent: pass
    it as `cursor` (or `after`) for the next page."""
    run = _load(run_id)
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > MAX_SEQ:
            raise Unprocessable(
                "invalid cursor: pass a next_cursor as it was given", loc=("query", "cursor")
            )
        after = max(after, int(cursor))
    rows = list(run.events.filter(seq__gt=after).order_by("seq")[: limit + 1])
    next_cursor = str(rows[limit - 1].seq) if len(rows) > limit else None
    return {"items": [run_event_resource(e) for e in rows[:limit]], "next_cursor": next_cursor}


def _check_approval(run: Run, payload: ResumeIn) -> None:
    """A malformed decision is refused here, not turned into a failed step later."""
    step = (
        StepRun.objects.filter(run=run, step_id=payload.step_id, status=StepStatus.WAITING)
        .order_by("-attempt")
        .first()
    )
    if step is None or step.waiting_for != WaitingFor.APPROVAL:
        return
    try:
        ApprovalData.model_validate(payload.data)
    except ValidationError as exc:
        errors = [error(["body", "data", *e["loc"]], e["msg"]) for e in exc.errors()]
        raise Unprocessable(
            "an approval needs {'approved': bool, 'comment'?}", errors=errors
        ) from None


@router.post(
    "/runs/{run_id}/resume",
    response={202: RunOut, **error_responses(404, 409, *BODY_ERRORS)},
    auth=requires(RUN),
)
def resume_run(request, run_id: str, payload: ResumeIn):
    """Deliver an approval decision or an event to a waiting step (409 when the step is not
    waiting for one). The approver is the caller."""
    run = _load(run_id)
    _check_approval(run, payload)
    lifecycle.resume(run.pk, payload.step_id, payload.data, decided_by=request.auth.username)
    return Status(202, run_resource(_load(run_id)))


@router.post(
    "/runs/{run_id}/cancel",
    response={202: RunOut, **error_responses(404, 409)},
    auth=requires(RUN),
)
def cancel_run(request, run_id: str):
    """Cancel at once (409 when the run has already finished)."""
    run = _load(run_id)
    lifecycle.cancel(run.pk, reason=f"cancelled by {request.auth.username}")
    return Status(202, run_resource(_load(run_id)))


@router.post(
    "/runs/{run_id}/retry",
    response={202: RunOut, **error_responses(404, 409)},
    auth=requires(RUN),
)
def retry_run(request, run_id: str):
    """Retry a failed run from its failed steps; completed steps keep their output (409
    unless the run failed)."""
    run = _load(run_id)
    lifecycle.retry(run.pk)
    return Status(202, run_resource(_load(run_id)))
