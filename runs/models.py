"""Runs, step runs (one row per attempt) and the append-only run event log."""

import uuid

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count, Q
from django.utils import timezone

from engine.statuses import EventType, RunStatus, StepStatus, TriggerType, WaitingFor


class AppendOnlyError(Exception):
    """Run events are append-only: they cannot be changed or deleted."""


class RunQuerySet(models.QuerySet):
    def status_counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in RunStatus}
        for row in self.values("status").annotate(n=Count("id")).order_by():
            counts[row["status"]] = row["n"]
        return counts

    def purge(self) -> int:
        """Delete these runs with their steps and events (retention, deleting a draft)."""
        run_ids = list(self.values_list("id", flat=True))
        with transaction.atomic():
            RunEvent.objects.purge_for_runs(run_ids)
            StepRun.objects.filter(run_id__in=run_ids).delete()
            deleted, _ = Run.objects.filter(id__in=run_ids).delete()
        return deleted


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(
        "workflows.Workflow", on_delete=models.PROTECT, related_name="runs"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices(), default=RunStatus.PENDING)
    trigger_type = models.CharField(
        max_length=16, choices=TriggerType.choices(), default=TriggerType.MANUAL
    )
    input = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    max_concurrency = models.PositiveIntegerField(default=10)
    timeout_seconds = models.FloatField(null=True, blank=True)
    priority = models.IntegerField(default=0)

    # Composition (runs/composition.py): a run started by another run's invoke_workflow
    # step points at that run and step; its end resumes the step.
    parent_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )
    parent_step_id = models.CharField(max_length=200, blank=True, default="")

    # Flow control (runs/flowcontrol.py). `flow_key` is the concurrency bucket
    # ("<lineage>:<rendered key>") and `concurrency_limit` its limit (null: unlimited);
    # `flow` records the keys and times the start-side rules decided with.
    flow_key = models.CharField(max_length=300, blank=True, default="")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    flow = models.JSONField(null=True, blank=True)

    # Claiming and fencing (SPEC §8). A worker owns a run while lease_expires_at is in the
    # future; every claim bumps `fence`, and every write by the owner checks it.
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    fence = models.BigIntegerField(default=0)
    wake_at = models.DateTimeField(
        null=True, blank=True, help_text="A running run with a delay or backoff sleeps until this."
    )
    # The last event sequence number handed out; events are numbered by bumping it in
    # the same transaction as the event insert, so seq is gapless by construction.
    last_seq = models.PositiveIntegerField(default=0)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "wake_at"], name="run_status_wake"),
            models.Index(fields=["workflow", "-created_at"], name="run_workflow_created"),
            models.Index(fields=["-created_at"], name="run_created"),
            models.Index(fields=["status", "-priority", "created_at"], name="run_claim_order"),
            models.Index(
                fields=["flow_key", "status"],
                name="run_flow_bucket",
                condition=Q(concurrency_limit__isnull=False),
            ),
            models.Index(
                fields=["idempotency_key"],
                name="run_idempotency_key",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return RunStatus(self.status).is_finished

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.completed_at or timezone.now()
        return int((end - self.started_at).total_seconds() * 1000)


class StepRun(models.Model):
    """One attempt of one step of a run. Attempts are numbered 1, 2, ... and never reused."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=200)
    step_type = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=StepStatus.choices(), default=StepStatus.PENDING
    )
    input = models.JSONField(null=True, blank=True, help_text="The resolved config.")
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    waiting_for = models.CharField(max_length=16, choices=WaitingFor.choices(), blank=True)
    wake_at = models.DateTimeField(null=True, blank=True)
    resume_data = models.JSONField(
        null=True, blank=True, help_text="An approval or event delivered to this waiting step."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step_id", "attempt"], name="steprun_attempt_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["waiting_for"],
                name="steprun_waiting",
                condition=Q(status="waiting"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.step_id} #{self.attempt} ({self.status})"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return int((self.completed_at - self.started_at).total_seconds() * 1000)


class RunEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(AppendOnlyError.__doc__)

    def delete(self):
        raise AppendOnlyError(AppendOnlyError.__doc__)

    def purge_for_runs(self, run_ids) -> None:
        """The one sanctioned deletion: a whole run's log, together with the run."""
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL flowmatrx.purge_events = 'on'")
            models.QuerySet.delete(self.model.objects.filter(run_id__in=list(run_ids)))


class RunEvent(models.Model):
    """An append-only record of one state transition; `seq` is per run, from 1, gapless.

    On PostgreSQL a trigger (migration 0002) refuses UPDATE and DELETE; the model and its
    queryset refuse them everywhere.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    event_type = models.CharField(max_length=32, choices=EventType.choices())
    step_id = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = RunEventQuerySet.as_manager()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_seq_unique")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(AppendOnlyError.__doc__)
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(AppendOnlyError.__doc__)

    def envelope(self) -> dict:
        """The SPEC §5 wire shape of this event."""
        return {
            "seq": self.seq,
            "event_type": self.event_type,
            "run_id": str(self.run_id),
            "step_id": self.step_id or None,
            "timestamp": self.created_at.isoformat().replace("+00:00", "Z"),
            "payload": self.payload,
        }


class Event(models.Model):
    """An event delivered to `POST /api/v1/events` (or by a step), kept with what it did.

    `event_id` is the sender's id: a second delivery with an id seen before changes nothing
    and answers with the first delivery's outcome (`resumed_run_ids`, `started_run_ids`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, db_index=True)
    data = models.JSONField(null=True, blank=True)
    event_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    received_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sent_events",
    )
    resumed_run_ids = models.JSONField(default=list, blank=True)
    started_run_ids = models.JSONField(default=list, blank=True)

    duplicate = False
    """Set (not stored) by `runs.events.deliver_event` when the id had been seen before."""

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["-received_at", "-id"], name="event_received")]

    def __str__(self) -> str:
        return f"{self.name} ({self.event_id or self.id})"

    @property
    def public_id(self) -> str:
        """The id a waiting step and a triggered run see: the sender's, else ours."""
        return self.event_id or str(self.id)
