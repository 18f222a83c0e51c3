"""What steps that compose workflows need from the database (the store's `perform`):
starting child runs (invoke_workflow), delivering events (send_event), writing the
workflow's persistent state (set_state), and a finished child resuming its parent.

Exactly-once per (run, step, attempt): a child run carries the key
`invoke:<run>:<step>:<attempt>`, an emitted event the id `run:<run>:<step>:<attempt>`,
a state write a `state.updated` run event with the attempt; a step replayed after a crash
finds what it did the first time.

A waiting invoke (wait: true) never starts its child here: the store creates the child in
the same transaction that makes the parent's step durably wait for it
(`start_children`), so the child cannot end before its parent waits. The child's end
resumes the parent's step in the child's finishing transaction (`deliver_to_parent`,
locking the child first, then the parent; `lifecycle.cancel` takes them in that order too).
"""

import json
import logging
import uuid

from django.db import transaction

from engine.errors import InvalidDefinition, LostLease, NonRetryableError, StateConflict
from engine.events import NewEvent
from engine.registry import Suspend
from engine.statuses import (
    FINISHED_RUN_STATUSES,
    EventType,
    RunStatus,
    StepStatus,
    TriggerType,
    WaitingFor,
)
from engine.store import ChildStart, Performed
from runs import eventlog, lifecycle
from runs.models import Run, RunEvent, StepRun
from workflows.models import Workflow, WorkflowState

logger = logging.getLogger("runs")

MAX_DEPTH = 10
"""A child run at this depth (the top-level run is 0) may not invoke another workflow."""
MAX_STATE_BYTES = 64 * 1024
"""The workflow state is small: a cursor, a last-seen id, a few counters."""


def perform(run_id, fence, step_id, attempt, kind, request) -> tuple[Performed, list]:
    """(the step's answer, run events to publish after commit). See `engine.store.Store`."""
    if kind == "invoke_workflow":
        return invoke(run_id, fence, step_id, attempt, request), []
    if kind == "send_event":
        return send_event(run_id, step_id, attempt, request), []
    if kind == "set_state":
        return set_state(run_id, fence, step_id, attempt, request)
    raise NonRetryableError(f"unknown effect {kind!r}")


# -- invoke_workflow ---------------------------------------------------------------------------


def _child_key(run_id, step_id, attempt) -> str:
    return f"invoke:{run_id}:{step_id}:{attempt}"


def resolve_target(workflow_id: str, version: int | None) -> Workflow:
    """The published version to run: the pinned `version`, else the latest published one.
    `workflow_id` may be the id of any version of the workflow."""
    found = Workflow.objects.filter(pk=workflow_id).values_list("lineage", "name").first()
    if found is None:
        raise NonRetryableError(f"workflow {workflow_id} does not exist")
    lineage, name = found
    published = Workflow.objects.published().filter(lineage=lineage).order_by("-version")
    if version is not None:
        target = published.filter(version=version).first()
        if target is None:
            raise NonRetryableError(f"version {version} of workflow {name!r} is not published")
        return target
    target = published.first()
    if target is None:
        raise NonRetryableError(f"workflow {name!r} has no published version")
    return target


def check_chain(parent_run_id, target: Workflow) -> None:
    """Refuse an invocation by this run that would repeat a workflow already in the chain
    of runs that led here (A runs B runs A), or go deeper than MAX_DEPTH."""
    names, lineages = [], []
    run_id = parent_run_id
    while run_id is not None:
        row = (
            Run.objects.filter(pk=run_id)
            .values_list("parent_run_id", "workflow__lineage", "workflow__name")
            .first()
        )
        if row is None:
            break
        run_id, lineage, name = row
        lineages.append(lineage)
        names.append(name)
        if len(lineages) > MAX_DEPTH:
            break
    chain = " → ".join([*reversed(names), target.name])
    if target.lineage in lineages:
        raise NonRetryableError(f"invocation cycle refused: {chain}")
    if len(lineages) > MAX_DEPTH:
        raise NonRetryableError(f"invocations nest deeper than {MAX_DEPTH} levels: {chain}")


def invoke(run_id, fence, step_id, attempt, request: dict) -> Performed:
    key = _child_key(run_id, step_id, attempt)
    existing = Run.objects.filter(parent_run_id=run_id, idempotency_key=key).first()
    if existing is not None and not request["wait"]:
        return Performed(_started_output(existing))
    target = resolve_target(request["workflow_id"], request["version"])
    check_chain(run_id, target)
    if request["wait"]:
        child_id = str(existing.pk if existing is not None else uuid.uuid4())
        raise Suspend(
            WaitingFor.RUN,
            label=f"{target.name} v{target.version}",
            output={"child_run_id": child_id},
            child=ChildStart(child_id, step_id, attempt, str(target.pk), request["input"]),
        )
    with transaction.atomic():
        if not Run.objects.select_for_update().filter(pk=run_id, fence=fence).exists():
            raise LostLease()
        child = _start(target, request["input"], key, run_id, step_id, uuid.uuid4())
    return Performed(_started_output(child))


def _started_output(child: Run) -> dict:
    return {
        "child_run_id": str(child.pk),
        "workflow_id": str(child.workflow_id),
        "status": child.status,
    }


def _start(target: Workflow, input: dict, key: str, parent_id, step_id: str, child_id) -> Run:
    with transaction.atomic():
        return lifecycle.start_run(
            target,
            input,
            trigger_type=TriggerType.WORKFLOW,
            idempotency_key=key,
            run_id=child_id,
            parent_run_id=parent_id,
            parent_step_id=step_id,
        )


def start_children(parent_id, children: list[ChildStart]) -> None:
    """Create the child runs of steps that have just started waiting for them. Call in the
    transaction that writes those waits (the parent's row is locked by it). A child that
    cannot start, or is refused at once (a rate limit), resumes its step with the failure."""
    for child in children:
        key = _child_key(parent_id, child.step_id, child.attempt)
        if Run.objects.filter(pk=child.child_run_id).exists():
            continue
        try:
            target = Workflow.objects.get(pk=child.workflow_id)
            run = _start(target, child.input, key, parent_id, child.step_id, child.child_run_id)
        except (Workflow.DoesNotExist, StateConflict, InvalidDefinition) as exc:
            lifecycle.resume(
                parent_id,
                child.step_id,
                {"child_run_id": child.child_run_id, "status": "failed", "error": str(exc)},
                child_run_id=child.child_run_id,
            )
            continue
        if RunStatus(run.status).is_finished:
            deliver_to_parent(run.pk)


def awaited_children(run_id) -> list[str]:
    """The unfinished child runs that steps of this run wait for."""
    waits = StepRun.objects.filter(
        run_id=run_id, status=StepStatus.WAITING, waiting_for=WaitingFor.RUN
    ).values_list("output", flat=True)
    ids = [w["child_run_id"] for w in waits if isinstance(w, dict) and w.get("child_run_id")]
    unfinished = Run.objects.filter(pk__in=ids).exclude(status__in=list(FINISHED_RUN_STATUSES))
    return [str(pk) for pk in unfinished.values_list("pk", flat=True)]


def outcome(child: Run) -> dict:
    """What a finished child delivers to its parent's step (invoke_workflow `resume`)."""
    data = {"child_run_id": str(child.pk), "status": child.status, "error": child.error}
    if child.status == RunStatus.COMPLETED:
        data["context"] = child.context or {}
    return data


def deliver_to_parent(child_run_id) -> None:
    """Resume the parent's step with this finished child's outcome. Call in the
    transaction that finishes the child (its row locked): the parent's row is locked next.
    A parent that stopped waiting (cancelled, failed) is left alone."""
    child = (
        Run.objects.filter(pk=child_run_id)
        .only("pk", "status", "error", "context", "parent_run_id", "parent_step_id")
        .first()
    )
    if child is None or child.parent_run_id is None or not RunStatus(child.status).is_finished:
        return
    try:
        with transaction.atomic():
            lifecycle.resume(
                child.parent_run_id, child.parent_step_id, outcome(child), child_run_id=child.pk
            )
    except StateConflict as exc:
        logger.info("child run %s ended; parent not resumed: %s", child.pk, exc)


# -- send_event ----------------------------------------------------------------------------------


def send_event(run_id, step_id, attempt, request: dict) -> Performed:
    from runs.events import deliver_event  # here: runs.events imports lifecycle too

    event, resumed, started = deliver_event(
        request["name"], request.get("data"), event_id=f"run:{run_id}:{step_id}:{attempt}"
    )
    return Performed(
        {
            "event_id": event.public_id,
            "name": event.name,
            "resumed_run_ids": resumed,
            "started_run_ids": started,
        }
    )


# -- set_state -----------------------------------------------------------------------------------


def read_state(lineage) -> dict:
    data = WorkflowState.objects.filter(lineage=lineage).values_list("data", flat=True).first()
    return data if isinstance(data, dict) else {}


def _locked_state(lineage) -> WorkflowState:
    WorkflowState.objects.bulk_create([WorkflowState(lineage=lineage)], ignore_conflicts=True)
    return WorkflowState.objects.select_for_update().get(lineage=lineage)


def merge_state(current: dict, values: dict, increment: dict) -> tuple[dict, dict]:
    """(the new state, the written keys' new values). Raises NonRetryableError when a key
    to increment holds something other than a number, or the state grows too big."""
    state = {**current, **values}
    written = dict(values)
    for key, amount in increment.items():
        base = current.get(key, 0)
        if isinstance(base, bool) or not isinstance(base, int | float):
            raise NonRetryableError(f"state key {key!r} holds {base!r}, not a number to add to")
        state[key] = written[key] = base + amount
    size = len(json.dumps(state, default=str))
    if size > MAX_STATE_BYTES:
        raise NonRetryableError(
            f"the workflow state would be {size} bytes; it holds at most {MAX_STATE_BYTES}"
        )
    return state, written


def set_state(run_id, fence, step_id, attempt, request: dict) -> tuple[Performed, list]:
    """Merge the values into the workflow's state under its row lock and record a
    `state.updated` event, in one transaction (fenced: a worker that lost the run writes
    nothing)."""
    lineage = Run.objects.filter(pk=run_id).values_list("workflow__lineage", flat=True).get()
    with transaction.atomic():
        done = (
            RunEvent.objects.filter(
                run_id=run_id, step_id=step_id, event_type=EventType.STATE_UPDATED
            )
            .filter(payload__attempt=attempt)
            .values_list("payload", flat=True)
            .first()
        )
        if done is not None:  # this attempt wrote already (a replay after a crash)
            return Performed(dict(done.get("values") or {}), read_state(lineage)), []
        row = _locked_state(lineage)
        current = row.data if isinstance(row.data, dict) else {}
        state, written = merge_state(current, request["values"], request["increment"])
        row.data = state
        row.save(update_fields=["data", "updated_at"])
        payload = {
            "step_id": step_id,
            "attempt": attempt,
            "keys": sorted(written),
            "values": written,
        }
        events = eventlog.append(
            run_id, [NewEvent(EventType.STATE_UPDATED, payload, step_id)], expect_fence=fence
        )
    return Performed(written, state), events
