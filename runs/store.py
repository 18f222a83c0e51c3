"""The engine's Store, implemented with the Django models (PostgreSQL or SQLite).

The ORM is synchronous, so each call runs in this store's own small thread pool (one
thread on SQLite, where there is one writer anyway); each thread keeps its connection.
Events are published to the channel layer after the transaction commits, on the caller's
event loop.
"""

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime

from django.db import connection, transaction
from django.db.models import JSONField, OuterRef, Subquery

from engine.errors import LostLease
from engine.statuses import RunStatus, StepStatus
from engine.store import Batch, CommitResult, RunState, StepRecord
from runs import composition, eventlog
from runs.models import Run, StepRun
from workflows.models import WorkflowState

STEP_FIELDS = {f.name for f in StepRun._meta.get_fields() if getattr(f, "concrete", False)}


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_LOAD_SQL = """
SELECT r.fence, r.status, r.input, r.context, r.max_concurrency, r.timeout_seconds,
       r.started_at, w.definition, clock_timestamp(), r.parent_run_id,
       (SELECT ws.data FROM workflows_workflowstate ws WHERE ws.lineage = w.lineage),
       (SELECT coalesce(json_agg(json_build_object(
                   'step_id', s.step_id, 'step_type', s.step_type, 'attempt', s.attempt,
                   'status', s.status, 'input', s.input, 'output', s.output, 'error', s.error,
                   'waiting_for', s.waiting_for, 'wake_at', s.wake_at,
                   'resume_data', s.resume_data, 'started_at', s.started_at)), '[]')
          FROM (SELECT DISTINCT ON (step_id) * FROM runs_steprun
                 WHERE run_id = r.id ORDER BY step_id, attempt DESC) s)
  FROM runs_run r JOIN workflows_workflow w ON w.id = r.workflow_id
 WHERE r.id = %s
"""
"""Run, definition, the database clock and the latest attempt of each step, at once."""


def _drop_broken_connection() -> None:
    """The store's threads keep their connection for good (a reconnect costs more than a
    whole step); only one that failed and no longer answers is closed, to reconnect.
    (Django's close_old_connections would close it on every call with CONN_MAX_AGE=0.)"""
    if connection.connection is not None and connection.errors_occurred:
        if not connection.is_usable():
            connection.close()
        connection.errors_occurred = False


_STATE_OF_RUN = Subquery(
    WorkflowState.objects.filter(lineage=OuterRef("workflow__lineage")).values("data")[:1],
    output_field=JSONField(),
)
"""The run's workflow state, read with the run (SQLite; PostgreSQL: in _LOAD_SQL)."""


class _Resumed(Exception):
    """A waiting step was resumed while the run was being parked: roll back."""


def _record(row: StepRun) -> StepRecord:
    return StepRecord(
        step_id=row.step_id,
        step_type=row.step_type,
        attempt=row.attempt,
        status=StepStatus(row.status),
        input=row.input,
        output=row.output,
        error=row.error,
        waiting_for=row.waiting_for,
        wake_at=row.wake_at,
        resume_data=row.resume_data,
        started_at=row.started_at,
    )


class DjangoStore:
    def __init__(self, threads: int | None = None):
        if threads is None:
            threads = 1 if connection.vendor == "sqlite" else 4
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="flowmatrx-db")

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Close every pool thread's database connection, then the pool."""
        threads = self._pool._max_workers
        barrier = threading.Barrier(threads)

        def close_connection():
            connection.close()
            barrier.wait(timeout=10)  # holds this thread so each thread gets one call

        for future in [self._pool.submit(close_connection) for _ in range(threads)]:
            future.result()
        self._pool.shutdown(wait=True)

    # -- Store ----------------------------------------------------------------------------

    async def load(self, run_id, fence) -> RunState:
        return await self.call(self.load_sync, run_id, fence)

    async def commit(self, run_id, fence, batch: Batch) -> CommitResult:
        result = await self.call(self.commit_sync, run_id, fence, batch)
        await eventlog.publish(run_id, result.events)
        return result

    async def resumed_steps(self, run_id):
        return await self.call(self.resumed_steps_sync, run_id)

    async def perform(self, run_id, fence, step_id, attempt, kind, request):
        performed, events = await self.call(
            composition.perform, run_id, fence, step_id, attempt, kind, request
        )
        await eventlog.publish(run_id, events)
        return performed

    # -- synchronous implementations ----------------------------------------------------------

    def load_sync(self, run_id, fence) -> RunState:
        _drop_broken_connection()
        if connection.vendor == "postgresql":
            return self._load_postgresql(run_id, fence)
        run = (
            Run.objects.select_related("workflow")
            .only(
                "id",
                "fence",
                "status",
                "input",
                "context",
                "max_concurrency",
                "timeout_seconds",
                "started_at",
                "parent_run_id",
                "workflow__definition",
            )
            .annotate(workflow_state=_STATE_OF_RUN)
            .get(pk=run_id)
        )
        if run.fence != fence:
            raise LostLease()
        steps = {}
        for row in StepRun.objects.filter(run_id=run_id).order_by("step_id", "attempt"):
            steps[row.step_id] = _record(row)
        return RunState(
            run_id=str(run.id),
            fence=run.fence,
            status=RunStatus(run.status),
            definition=run.workflow.definition or {},
            input=run.input if isinstance(run.input, dict) else {},
            context=run.context if isinstance(run.context, dict) else {},
            max_concurrency=run.max_concurrency,
            timeout_seconds=run.timeout_seconds,
            started_at=run.started_at,
            now=eventlog.db_now(),
            steps=steps,
            state=run.workflow_state if isinstance(run.workflow_state, dict) else {},
            parent_run_id=str(run.parent_run_id) if run.parent_run_id else None,
        )

    @staticmethod
    def _load_postgresql(run_id, fence) -> RunState:
        """The same as the ORM path in one round trip, without building model instances."""
        with connection.cursor() as cursor:
            cursor.execute(_LOAD_SQL, [str(run_id)])
            row = cursor.fetchone()
        if row is None:
            raise Run.DoesNotExist(run_id)
        (found_fence, status, input_, context, max_concurrency, timeout_seconds, started_at,
         definition, now, parent_run_id, state, steps) = row  # fmt: skip
        if found_fence != fence:
            raise LostLease()
        records = {}
        for step in steps:  # json (not jsonb): psycopg has parsed it
            for key in ("wake_at", "started_at"):
                if step[key] is not None:
                    step[key] = datetime.fromisoformat(step[key])
            step["status"] = StepStatus(step["status"])
            records[step["step_id"]] = StepRecord(**step)
        input_ = json.loads(input_) if input_ else None
        context = json.loads(context) if context else None
        state = json.loads(state) if isinstance(state, str) else state
        return RunState(
            run_id=str(run_id),
            fence=found_fence,
            status=RunStatus(status),
            definition=json.loads(definition) if definition else {},
            input=input_ if isinstance(input_, dict) else {},
            context=context if isinstance(context, dict) else {},
            max_concurrency=max_concurrency,
            timeout_seconds=timeout_seconds,
            started_at=started_at,
            now=now,
            steps=records,
            state=state if isinstance(state, dict) else {},
            parent_run_id=str(parent_run_id) if parent_run_id else None,
        )

    def commit_sync(self, run_id, fence, batch: Batch) -> CommitResult:
        if connection.vendor == "postgresql":
            return self._commit_postgresql(run_id, fence, batch)
        try:
            with transaction.atomic():
                run_fields = dict(batch.run)
                if batch.context:
                    current = Run.objects.filter(pk=run_id).values_list("context", flat=True)
                    run_fields["context"] = {**(current.first() or {}), **batch.context}
                if batch.release:
                    run_fields.update(lease_owner="", lease_expires_at=None)
                events = eventlog.append(run_id, batch.events, expect_fence=fence, **run_fields)
                if batch.unless_resumed and self._has_resumes(run_id):
                    raise _Resumed()
                self._write_steps(run_id, batch)
                self._compose(run_id, batch)
        except _Resumed:
            return CommitResult(events=[], resumed=True)
        return CommitResult(events=events)

    @staticmethod
    def _compose(run_id, batch: Batch) -> None:
        """In the checkpoint's transaction: start the child runs its steps now wait for,
        and resume the parent's step when this (child) run ends."""
        if batch.children:
            composition.start_children(run_id, batch.children)
        if batch.notify_parent:
            composition.deliver_to_parent(run_id)

    @classmethod
    def _commit_postgresql(cls, run_id, fence, batch: Batch) -> CommitResult:
        """The same as the ORM path, in one round trip (the function of migration 0004,
        taking the context as a patch since 0006_checkpoint_context_patch)."""
        payload = {
            "run": batch.run,
            "release": batch.release,
            "unless_resumed": batch.unless_resumed,
            "events": [
                {"event_type": e.event_type, "step_id": e.step_id, "payload": e.payload}
                for e in batch.events
            ],
            "steps": [
                {"step_id": w.step_id, "attempt": w.attempt, "insert": w.insert, "fields": w.fields}
                for w in batch.step_writes()
            ],
        }
        if batch.context:
            payload["context_patch"] = batch.context
        composes = bool(batch.children or batch.notify_parent)
        with transaction.atomic(durable=False) if composes else nullcontext():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT * FROM flowmatrx_checkpoint(%s::uuid, %s, %s::jsonb)",
                    [str(run_id), fence, json.dumps(payload, default=_json_default)],
                )
                last_seq, at = cursor.fetchone()
            if last_seq == -1:
                raise LostLease()
            if last_seq == -2:
                return CommitResult(events=[], resumed=True)
            if composes:  # the function holds the run's row lock until this commits
                cls._compose(run_id, batch)
        events = batch.events
        timestamp = at.isoformat().replace("+00:00", "Z")
        first = last_seq - len(events) + 1
        for offset, event in enumerate(events):
            event.seq = first + offset
            event.timestamp = timestamp
        return CommitResult(events=list(events))

    def _write_steps(self, run_id, batch: Batch) -> None:
        inserts = []
        for write in batch.step_writes():
            fields = {k: v for k, v in write.fields.items() if k in STEP_FIELDS}
            if write.insert:
                inserts.append(
                    StepRun(run_id=run_id, step_id=write.step_id, attempt=write.attempt, **fields)
                )
                continue
            if inserts:  # keep the order of writes to one row
                StepRun.objects.bulk_create(inserts)
                inserts = []
            StepRun.objects.filter(
                run_id=run_id, step_id=write.step_id, attempt=write.attempt
            ).update(**fields)
        if inserts:
            StepRun.objects.bulk_create(inserts)

    @staticmethod
    def _has_resumes(run_id) -> bool:
        return StepRun.objects.filter(
            run_id=run_id, status=StepStatus.WAITING, resume_data__isnull=False
        ).exists()

    def resumed_steps_sync(self, run_id) -> list[StepRecord]:
        rows = StepRun.objects.filter(
            run_id=run_id, status=StepStatus.WAITING, resume_data__isnull=False
        )
        return [_record(row) for row in rows]
