"""Delivering an event: store it, resume the runs waiting for it, start the workflows it
triggers (SPEC §2 triggers, §3 durable waits, §7 `POST /api/v1/events`).

One transaction: the event row is inserted first, so its unique `event_id` makes a second
delivery of the same id (even a concurrent one) wait, then find the first and do nothing.
"""

import logging
from datetime import UTC

from django.db import IntegrityError, connection, transaction

from engine.errors import InvalidDefinition, StateConflict
from engine.expressions import ExpressionError, compile_expression
from engine.statuses import RunStatus, StepStatus, TriggerType, WaitingFor
from runs import lifecycle
from runs.models import Event, StepRun
from workflows.models import Workflow

logger = logging.getLogger("runs")

WAIT_STEP_TYPE = "wait_for_event"


def deliver_event(
    name: str, data=None, event_id: str | None = None, *, created_by=None
) -> tuple[Event, list[str], list[str]]:
    """Store the event and act on it; returns (event, resumed run ids, started run ids).

    An `event_id` seen before does nothing twice: the stored event comes back with
    `event.duplicate = True` and the first delivery's run ids.
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = Event.objects.create(
                    name=name, data=data, event_id=event_id or None, created_by=created_by
                )
        except IntegrityError:
            if not event_id:
                raise
            event = Event.objects.get(event_id=event_id)
            event.duplicate = True
            return event, list(event.resumed_run_ids), list(event.started_run_ids)
        seen = event_view(event)
        resumed = resume_waiting_runs(event, seen)
        started = start_triggered_runs(event, seen, created_by=created_by)
        event.resumed_run_ids, event.started_run_ids = resumed, started
        event.save(update_fields=["resumed_run_ids", "started_run_ids"])
    return event, resumed, started


def event_view(event: Event) -> dict:
    """What expressions see as `event`, and what a triggered run gets as `input.event`."""
    return {"name": event.name, "data": event.data, "id": event.public_id}


def _holds(source, names: dict, what: str) -> bool:
    """Whether an optional match/filter expression holds; a broken one never does."""
    if source is None or (isinstance(source, str) and not source.strip()):
        return True
    try:
        return bool(compile_expression(source).evaluate(names))
    except ExpressionError as exc:
        logger.info("%s does not match: %s", what, exc)
        return False


def resume_waiting_runs(event: Event, seen: dict) -> list[str]:
    """Resume every run with a `wait_for_event` step waiting for this name whose match holds
    (over the run's context plus `event`)."""
    waiting = (
        StepRun.objects.filter(
            step_type=WAIT_STEP_TYPE,
            status=StepStatus.WAITING,
            waiting_for=WaitingFor.EVENT,
            resume_data__isnull=True,
            input__event_name=event.name,
            run__status__in=[RunStatus.PAUSED, RunStatus.RUNNING],
        )
        .select_related("run")
        .order_by("run__created_at", "run_id", "step_id", "-attempt")
    )
    resume_data = {
        **seen,
        "received_at": event.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    resumed: list[str] = []
    done: set[tuple] = set()
    for step in waiting:
        if (step.run_id, step.step_id) in done:
            continue  # an older attempt of a step already handled
        done.add((step.run_id, step.step_id))
        config = step.input if isinstance(step.input, dict) else {}
        names = {**(step.run.context or {}), "event": seen}
        where = f"step {step.step_id!r} of run {step.run_id}"
        if not _holds(config.get("match"), names, where):
            continue
        try:
            lifecycle.resume(step.run_id, step.step_id, resume_data)
        except StateConflict as exc:  # resumed or cancelled meanwhile
            logger.info("event %s not delivered to %s: %s", event.pk, where, exc)
            continue
        if str(step.run_id) not in resumed:
            resumed.append(str(step.run_id))
    return resumed


def _triggered_candidates(name: str):
    published = Workflow.objects.published()
    if connection.vendor == "postgresql":
        # jsonb containment uses the row's definition without loading every workflow
        return published.filter(
            definition__settings__triggers__contains=[{"type": "event", "event": name}]
        )
    return published.filter(definition__settings__triggers__isnull=False)


def triggering_workflows(name: str) -> list[Workflow]:
    """The newest published version of each workflow with an event trigger for `name`."""
    newest: dict = {}
    for workflow in _triggered_candidates(name).order_by("lineage", "-version"):
        newest.setdefault(workflow.lineage, workflow)
    return list(newest.values())


def _event_triggers(workflow: Workflow, name: str) -> list[dict]:
    triggers = workflow.workflow_settings.get("triggers")
    if not isinstance(triggers, list):
        return []
    return [
        t
        for t in triggers
        if isinstance(t, dict) and t.get("type") == "event" and t.get("event") == name
    ]


def start_triggered_runs(event: Event, seen: dict, *, created_by=None) -> list[str]:
    """Start one run of each published workflow with a matching event trigger."""
    started: list[str] = []
    for workflow in triggering_workflows(event.name):
        triggers = _event_triggers(workflow, event.name)
        where = f"the event trigger of {workflow}"
        if not any(_holds(t.get("filter"), {"event": seen}, where) for t in triggers):
            continue
        try:
            with transaction.atomic():
                run = lifecycle.start_run(
                    workflow,
                    {"event": seen},
                    trigger_type=TriggerType.EVENT,
                    created_by=created_by,
                )
        except (StateConflict, InvalidDefinition) as exc:
            logger.warning("event %s did not start %s: %s", event.pk, workflow, exc)
            continue
        started.append(str(run.pk))
    return started
