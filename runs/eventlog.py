"""Appending to a run's event log, and publishing what was appended.

`append` is the one place that numbers events: it bumps `Run.last_seq` by the number of
events in the same statement that checks the caller's fence (when given), so the row lock
serializes writers and `seq` is gapless. Events reach the channel layer only after the
transaction commits (a lost publish costs a catch-up from the database, nothing more).
"""

import logging
from collections.abc import Sequence
from datetime import datetime

from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from engine.errors import LostLease
from engine.events import NewEvent
from engine.statuses import EventType
from runs import fanout
from runs.models import Run, RunEvent

logger = logging.getLogger("runs")


def group_name(run_id) -> str:
    return f"run_{run_id}"


# The dashboards follow this group: a run was created, changed status or waits for approval.
DASHBOARD_GROUP = "dashboard"
DASHBOARD_EVENTS = frozenset(
    {
        EventType.RUN_STARTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_PAUSED,
        EventType.RUN_RESUMED,
        EventType.RUN_CANCELLED,
        EventType.STEP_WAITING,
    }
)


def db_now() -> datetime:
    """The database's clock (PostgreSQL); on SQLite the database runs on this machine."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()


def append(
    run_id, events: Sequence[NewEvent], *, expect_fence: int | None = None, **run_fields
) -> list[NewEvent]:
    """Set `run_fields` on the run and append `events`, numbered. Call inside a transaction.

    With `expect_fence`, raises LostLease (writing nothing) when the run was claimed by another
    worker or cancelled since.
    """
    now = timezone.now()
    runs = Run.objects.filter(pk=run_id)
    if expect_fence is not None:
        runs = runs.filter(fence=expect_fence)
    updated = runs.update(last_seq=F("last_seq") + len(events), updated_at=now, **run_fields)
    if not updated:
        if expect_fence is not None:
            raise LostLease()
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    if not events:
        return []
    last_seq = Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).get()
    first = last_seq - len(events) + 1
    rows = []
    for offset, event in enumerate(events):
        event.seq = first + offset
        event.timestamp = now.isoformat().replace("+00:00", "Z")
        rows.append(
            RunEvent(
                run_id=run_id,
                seq=event.seq,
                event_type=event.event_type,
                step_id=event.step_id,
                payload=event.payload,
                created_at=now,
            )
        )
    RunEvent.objects.bulk_create(rows)
    return list(events)


def envelope(run_id, event: NewEvent) -> dict:
    return {
        "seq": event.seq,
        "event_type": str(event.event_type),
        "run_id": str(run_id),
        "step_id": event.step_id or None,
        "timestamp": event.timestamp,
        "payload": event.payload,
    }


async def publish(run_id, events: Sequence[NewEvent]) -> None:
    """Send committed events to the run's group, and tell the dashboards when they change
    a run's status; failures are logged, never raised."""
    if not events:
        return
    try:
        await fanout.group_send(
            group_name(run_id), {"events": [envelope(run_id, e) for e in events]}
        )
        if any(event.event_type in DASHBOARD_EVENTS for event in events):
            await announce(run_id)
    except Exception:
        logger.warning("could not publish %d events of run %s", len(events), run_id, exc_info=True)


async def announce(run_id) -> None:
    """Tell the dashboards that the run changed (in a way no event of its own shows, such
    as being created)."""
    await fanout.group_send(DASHBOARD_GROUP, {"run_id": str(run_id)})


def announce_after_commit(run_id) -> None:
    """`announce` once the current transaction commits (at once outside one); from
    synchronous code. Failures are logged, never raised."""

    def send():
        if not fanout.may_have_members(DASHBOARD_GROUP):
            return
        try:
            async_to_sync(announce)(run_id)
        except Exception:
            logger.warning("could not announce run %s", run_id, exc_info=True)

    transaction.on_commit(send)
