"""Models as the JSON resources of SPEC §7 (plain, JSON-ready dicts: an idempotent replay
stores and returns exactly what the first response said)."""

from datetime import UTC, datetime

from flowmatrx.api.auth import may_start_runs
from flowmatrx.api.errors import definition_errors
from runs.models import Event, Run, RunEvent, StepRun
from triggers.redaction import redact_definition
from triggers.webhooks import webhook_url
from workflows.models import Workflow


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def workflow_resource(workflow: Workflow, *, with_errors: bool = True, request=None) -> dict:
    """`webhook_url` is absolute with `request`, null when this version has no webhook
    trigger or `request`'s caller may not start runs (the URL is a credential). A webhook
    trigger's secret reads as the redacted placeholder."""
    return {
        "id": str(workflow.id),
        "lineage_id": str(workflow.lineage),
        "name": workflow.name,
        "description": workflow.description,
        "version": workflow.version,
        "status": workflow.status,
        "definition": redact_definition(workflow.definition),
        "input_schema": workflow.input_schema,
        "created_by": _username(workflow.created_by),
        "created_at": iso(workflow.created_at),
        "updated_at": iso(workflow.updated_at),
        "published_at": iso(workflow.published_at),
        "errors": definition_errors(workflow.validate()) if with_errors else None,
        "webhook_url": webhook_url(workflow, request) if may_start_runs(request) else None,
    }


def run_resource(run: Run) -> dict:
    workflow = run.workflow
    return {
        "id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "workflow_version": workflow.version,
        "lineage_id": str(workflow.lineage),
        "workflow_name": workflow.name,
        "status": run.status,
        "trigger_type": run.trigger_type,
        "input": run.input,
        "context": run.context,
        "error": run.error,
        "idempotency_key": run.idempotency_key,
        "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
        "parent_step_id": run.parent_step_id or None,
        "max_concurrency": run.max_concurrency,
        "priority": run.priority,
        "created_by": _username(run.created_by),
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "duration_ms": run.duration_ms,
    }


def step_run_resource(step: StepRun) -> dict:
    return {
        "id": step.id,
        "run_id": str(step.run_id),
        "step_id": step.step_id,
        "step_type": step.step_type,
        "status": step.status,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "attempt": step.attempt,
        "waiting_for": step.waiting_for,
        "wake_at": iso(step.wake_at),
        "created_at": iso(step.created_at),
        "started_at": iso(step.started_at),
        "completed_at": iso(step.completed_at),
        "duration_ms": step.duration_ms,
    }


def run_event_resource(event: RunEvent) -> dict:
    return {
        "id": event.id,
        "run_id": str(event.run_id),
        "seq": event.seq,
        "event_type": event.event_type,
        "step_id": event.step_id or None,
        "payload": event.payload,
        "created_at": iso(event.created_at),
    }


def event_resource(event: Event) -> dict:
    return {
        "id": str(event.id),
        "name": event.name,
        "event_id": event.event_id,
        "data": event.data,
        "received_at": iso(event.received_at),
        "created_by": _username(event.created_by),
        "resumed_run_ids": list(event.resumed_run_ids or []),
        "started_run_ids": list(event.started_run_ids or []),
        "duplicate": event.duplicate,
    }
