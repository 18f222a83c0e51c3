"""Run state changes made from outside the engine: start, cancel, resume, retry.

Each is one transaction that takes the run's row lock first (so it serializes with the
worker's checkpoints), writes its event through the event log, and wakes the workers.
They raise StateConflict (the API's 409) when the run is not in a state that allows it.
"""

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from engine.errors import StateConflict
from engine.events import NewEvent
from engine.statuses import EventType, RunStatus, StepStatus, TriggerType, WaitingFor
from runs import eventlog, flowcontrol, wakeup
from runs.models import Run, StepRun


def _locked(run_id) -> Run:
    return Run.objects.select_for_update().get(pk=run_id)


def _publish_after_commit(run_id, events) -> None:
    transaction.on_commit(lambda: async_to_sync(eventlog.publish)(run_id, events))


def start_run(
    workflow,
    input: dict | None = None,
    *,
    trigger_type: TriggerType = TriggerType.MANUAL,
    created_by=None,
    idempotency_key: str | None = None,
    max_concurrency: int | None = None,
    priority: int = 0,
    run_id=None,
    parent_run_id=None,
    parent_step_id: str = "",
) -> Run:
    """Create a pending run of exactly this workflow version and wake a worker.

    A child run of an invoke_workflow step gets its (pre-chosen) `run_id` and its parent's
    run and step ids. Raises InvalidDefinition for a draft with problems, StateConflict for
    an archived one."""
    workflow.check_runnable()
    settings = workflow.workflow_settings
    input = dict(input or {})
    fields = dict(
        workflow=workflow,
        trigger_type=trigger_type,
        input=input,
        context={"input": input},
        created_by=created_by,
        idempotency_key=idempotency_key,
        max_concurrency=max_concurrency or settings.get("max_concurrency") or 10,
        timeout_seconds=settings.get("timeout_seconds"),
        priority=priority,
    )
    if run_id is not None:
        fields.update(id=run_id, parent_run_id=parent_run_id, parent_step_id=parent_step_id)
    if flowcontrol.has_flow_control(settings):
        # Rate limit, throttle, debounce and priority are decided now, under per-key locks.
        with transaction.atomic():
            run, events = flowcontrol.admit(workflow, fields, settings, now=eventlog.db_now())
            wakeup.notify_in_process(str(run.pk))
            if run.status == RunStatus.CANCELLED:
                _publish_after_commit(run.pk, events)
            else:
                from runs.composition import deliver_to_parent

                for cancelled_id, cancelled_events in events:
                    wakeup.notify(f"cancel:{cancelled_id}")
                    _publish_after_commit(cancelled_id, cancelled_events)
                    deliver_to_parent(cancelled_id)  # a debounced child fails its step
            eventlog.announce_after_commit(run.pk)
        return run
    run = Run.objects.create(**fields)
    # One statement: on PostgreSQL the row's insert trigger NOTIFYs the workers.
    wakeup.notify_in_process(str(run.pk))
    eventlog.announce_after_commit(run.pk)
    return run


def cancel(run_id, reason: str = "cancelled", *, notify_parent: bool = True) -> Run:
    """Cancel at once: the run's owner loses its fence, its steps stop, nothing new starts.

    The child runs its invoke_workflow steps wait for are cancelled first, each locked
    before this run (the order a finishing child takes: child, then parent); children
    started with `wait: false` live on. A cancelled child fails its parent's waiting step
    (unless `notify_parent` is false: the parent is the one being cancelled)."""
    from runs import composition  # here: composition imports this module

    with transaction.atomic():
        for child_id in composition.awaited_children(run_id):
            try:
                cancel(child_id, f"parent run {run_id} cancelled", notify_parent=False)
            except StateConflict:
                pass  # finished meanwhile
        run = _locked(run_id)
        if RunStatus(run.status).is_finished:
            raise StateConflict(f"the run is already {run.status}")
        now = timezone.now()
        stopped = StepRun.objects.filter(
            run_id=run.pk, status__in=[StepStatus.RUNNING, StepStatus.WAITING, StepStatus.PENDING]
        )
        stopped_ids = sorted(set(stopped.values_list("step_id", flat=True)))
        stopped.update(status=StepStatus.CANCELLED, completed_at=now, wake_at=None)
        payload = {"status": RunStatus.CANCELLED, "reason": reason}
        if stopped_ids:
            payload["cancelled_step_ids"] = stopped_ids
        events = eventlog.append(
            run.pk,
            [NewEvent(EventType.RUN_CANCELLED, payload)],
            status=RunStatus.CANCELLED,
            completed_at=now,
            wake_at=None,
            fence=F("fence") + 1,
            lease_owner="",
            lease_expires_at=None,
        )
        wakeup.notify(f"cancel:{run.pk}")
        _publish_after_commit(run.pk, events)
        if notify_parent and run.parent_run_id:
            composition.deliver_to_parent(run.pk)
    run.refresh_from_db()
    return run


def resume(
    run_id, step_id: str, data: dict, *, decided_by: str | None = None, child_run_id=None
) -> Run:
    """Deliver an approval decision or an event to a waiting step; with `child_run_id`, the
    outcome of that child run to the invoke_workflow step waiting for it (only so: a
    person cannot resume a step that waits for a run)."""
    with transaction.atomic():
        run = _locked(run_id)
        if run.status not in (RunStatus.PAUSED, RunStatus.RUNNING):
            raise StateConflict(f"the run is {run.status}, not paused")
        step = (
            StepRun.objects.filter(run_id=run.pk, step_id=step_id, status=StepStatus.WAITING)
            .exclude(waiting_for__in=[WaitingFor.DELAY, WaitingFor.BACKOFF])
            .order_by("-attempt")
            .first()
        )
        if step is None:
            raise StateConflict(f"step {step_id!r} is not waiting for an approval or an event")
        if step.resume_data is not None:
            raise StateConflict(f"step {step_id!r} has already been resumed")
        if (step.waiting_for == WaitingFor.RUN) != (child_run_id is not None):
            raise StateConflict(
                f"step {step_id!r} waits for its child run; it resumes when that run ends"
                if child_run_id is None
                else f"step {step_id!r} does not wait for a child run"
            )
        if child_run_id is not None and (step.output or {}).get("child_run_id") != str(
            child_run_id
        ):
            raise StateConflict(f"step {step_id!r} waits for another child run")
        data = dict(data)
        if step.waiting_for == WaitingFor.APPROVAL:
            data["decided_by"] = decided_by
        step.resume_data = data
        step.save(update_fields=["resume_data"])
        events = []
        if run.status == RunStatus.PAUSED and run.concurrency_limit is not None:
            # A limited run needs a free slot of its bucket to run again: it stays paused,
            # made claimable (wake_at), and the worker's limited claim picks it up when a
            # slot is free (runs/flowcontrol.py); the executor then marks it resumed.
            events = eventlog.append(
                run.pk,
                [
                    NewEvent(
                        EventType.RUN_PAUSED,
                        {
                            "status": RunStatus.PAUSED,
                            "resumed_step_id": step_id,
                            "reason": "resumed: waiting for a concurrency slot",
                        },
                    )
                ],
                wake_at=eventlog.db_now(),
            )
        elif run.status == RunStatus.PAUSED:
            events = eventlog.append(
                run.pk,
                [
                    NewEvent(
                        EventType.RUN_RESUMED,
                        {
                            "status": RunStatus.RUNNING,
                            "resumed_step_id": step_id,
                            "reason": "resumed",
                        },
                    )
                ],
                status=RunStatus.RUNNING,
                wake_at=None,
            )
        wakeup.notify(f"resume:{run.pk}")
        _publish_after_commit(run.pk, events)
        if not events:  # a running run: only the dashboard's approvals list changes
            eventlog.announce_after_commit(run.pk)
    run.refresh_from_db()
    return run


def retry(run_id) -> Run:
    """Retry from failed: reset the failed and interrupted steps and continue.

    Completed steps keep their outputs and never run again. Reset steps get a new attempt
    (numbers continue, never reused); steps after them had not run and start as usual.
    """
    with transaction.atomic():
        run = _locked(run_id)
        if run.status != RunStatus.FAILED:
            raise StateConflict(f"the run is {run.status}; only a failed run can be retried")
        latest = {}
        for row in StepRun.objects.filter(run_id=run.pk).order_by("step_id", "attempt"):
            latest[row.step_id] = row
        reset = [
            row
            for row in latest.values()
            if row.status in (StepStatus.FAILED, StepStatus.CANCELLED)
            and not (row.status == StepStatus.FAILED and "_error" in (row.output or {}))
        ]
        StepRun.objects.bulk_create(
            StepRun(
                run_id=run.pk,
                step_id=row.step_id,
                step_type=row.step_type,
                attempt=row.attempt + 1,
                status=StepStatus.PENDING,
            )
            for row in reset
        )
        context = dict(run.context or {})
        for row in reset:
            context.pop(row.step_id, None)
        first = reset[0].step_id if reset else None
        events = eventlog.append(
            run.pk,
            [
                NewEvent(
                    EventType.RUN_RESUMED,
                    {"status": RunStatus.RUNNING, "resumed_step_id": first, "reason": "retry"},
                )
            ],
            status=RunStatus.RUNNING,
            error="",
            completed_at=None,
            wake_at=None,
            context=context,
            fence=F("fence") + 1,
            lease_owner="",
            lease_expires_at=None,
        )
        wakeup.notify(str(run.pk))
        _publish_after_commit(run.pk, events)
    run.refresh_from_db()
    return run
