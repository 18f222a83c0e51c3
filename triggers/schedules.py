"""Cron schedules: fire times in a time zone, and firing due schedules exactly once.

Fire times. A cron expression describes wall-clock times in the schedule's zone (5 fields,
or 6 with seconds first; `engine.validation.cron_error` says what is accepted). croniter
walks the zone's naive wall clock and each match is turned into UTC; daylight saving time
is handled the way Vixie cron handles it:

* a wall time that does not exist (the hour skipped in spring): a *fixed-time* job
  (seconds, minute and hour are all specific values, e.g. ``0 2 * * *``) runs when the
  clock jumps, at the same offset into the new time (02:30 → 03:30); a *frequent* job (a
  ``*`` in its seconds, minute or hour field, e.g. ``*/15 * * * *``) simply has no tick
  there: it keeps its real-time rhythm;
* a wall time that happens twice (the hour repeated in autumn): a fixed-time job runs
  once (the first time); a frequent job runs in both.

Firing (`fire_due`), called by every worker's loop. Due rows are claimed with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (under SQLite's single writer, where
transactions take the write lock at BEGIN, the same statement is serialized anyway); in
the same transaction the run is started and `next_fire_at` advanced, with a
compare-and-set on the old value. A worker that finds the row locked skips it, and one that
reads it after the commit sees the new `next_fire_at`: each tick fires exactly once
however many workers race.

Missed ticks (the server was down, or the schedule's worker fell behind):

* ``catch_up: false`` (skip missed, the default): the latest missed tick fires once if it
  is at most `GRACE_SECONDS` old (a worker that was merely late, or a restart that took
  a few seconds, loses nothing); anything older is skipped. Either way the schedule then
  continues from the next tick in the future.
* ``catch_up: true`` (run once to catch up): one run fires for the latest missed tick,
  however old (its input says ``"catch_up": true``), then the schedule continues from
  the next tick in the future. Never one run per missed tick.

Times are the database's clock (`runs.eventlog.db_now`), the same for every worker.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter
from django.db import connection, transaction

from engine.errors import InvalidDefinition, StateConflict
from engine.statuses import TriggerType
from runs import eventlog, lifecycle
from triggers.models import Schedule

logger = logging.getLogger("triggers.schedules")

GRACE_SECONDS = 60.0
"""A skip-missed schedule still fires a tick this late (a slow worker, a quick restart)."""

BATCH = 50
"""Schedules claimed in one transaction."""
MAX_BATCHES = 20
"""Batches in one `fire_due` call (the worker calls it again at once when more are due)."""

_CATCH_UP_WINDOWS = (
    timedelta(seconds=GRACE_SECONDS),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=366 * 8),
    timedelta(days=366 * 60),
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def _is_frequent(cron: str) -> bool:
    """A ``*`` in the seconds, minute or hour field (``*/5`` too): the job follows real
    time across DST changes instead of a fixed wall-clock time."""
    fields = cron.split()
    if len(fields) == 1:  # an alias: @hourly is frequent, the rest fixed-time
        return cron.strip().lower() == "@hourly"
    clock = fields[:3] if len(fields) == 6 else fields[:2]
    return any(field.startswith("*") for field in clock)


def _instants(naive: datetime, zone: ZoneInfo, frequent: bool) -> list[datetime]:
    """The UTC instants a matching wall time stands for (see the module docstring)."""
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first < second:  # repeated wall time (autumn): fold 0 happens first
        return [first, second] if frequent else [first]
    # skipped wall time (spring): fold 0 uses the offset from before the jump, which
    # lands it just as far past the jump
    return [] if frequent else [first]


def iter_fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The fire times (aware, UTC) strictly after `after`, in order, without end."""
    zone = _zone(timezone)
    frequent = _is_frequent(cron)
    after = after.astimezone(UTC)
    local = after.astimezone(zone)
    start = local.replace(tzinfo=None)
    # The second occurrence of a repeated wall time comes after `after` though its wall
    # time is earlier: start that much earlier (`after` filters the rest).
    overlap = (local.replace(fold=0).utcoffset() - local.replace(fold=1).utcoffset()) or timedelta(
        0
    )
    if overlap > timedelta(0):
        start -= overlap
    walk = croniter(cron.strip(), start, second_at_beginning=True)
    pending: list[datetime] = []  # found, not yet known to be the next in order
    last = after
    while True:
        naive = walk.get_next(datetime)
        found = _instants(naive, zone, frequent)
        for moment in found:
            heapq.heappush(pending, moment)
        # Instants of later wall times are never before the fold-0 instant of this one,
        # so everything up to it is final.
        bound = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        while pending and pending[0] <= bound:
            moment = heapq.heappop(pending)
            if moment > last:
                last = moment
                yield moment


def next_fire_time(cron: str, timezone: str, after: datetime) -> datetime:
    return next(iter_fire_times(cron, timezone, after))


def next_fire_times(
    cron: str, timezone: str = "UTC", after: datetime | None = None, count: int = 5
) -> list[datetime]:
    """The next `count` fire times after `after` (now by default), in UTC: the preview
    the workflow page shows. Raises ValueError (croniter's errors) for a bad expression."""
    after = after or datetime.now(UTC)
    times = iter_fire_times(cron, timezone, after)
    return [next(times) for _ in range(max(0, count))]


def latest_fire_time(
    cron: str, timezone: str, now: datetime, not_before: datetime
) -> datetime | None:
    """The latest fire time in [not_before, now], or None when there is none.

    Looks back through growing windows so an every-second schedule that missed a month
    does not walk millions of ticks."""
    for window in _CATCH_UP_WINDOWS:
        start = max(not_before, now - window)
        latest = None
        for moment in iter_fire_times(cron, timezone, start - timedelta(microseconds=1)):
            if moment > now:
                break
            latest = moment
        if latest is not None or start == not_before:
            return latest
    return None


# --------------------------------------------------------------------------- firing


def _claim_due(now: datetime) -> list[Schedule]:
    due = Schedule.objects.filter(enabled=True, next_fire_at__lte=now).order_by("next_fire_at")
    if connection.vendor == "postgresql":
        due = due.select_for_update(skip_locked=True, of=("self",))
    return list(due.select_related("workflow")[:BATCH])


def _fire(schedule: Schedule, now: datetime) -> str | None:
    """Start the run this due schedule owes (if any) and advance it. In a transaction."""
    due_at = schedule.next_fire_at
    try:
        following = next_fire_time(schedule.cron, schedule.timezone, now)
        latest = latest_fire_time(schedule.cron, schedule.timezone, now, due_at)
    except (ValueError, KeyError) as exc:  # croniter / zoneinfo: validated on publish
        logger.warning("schedule %s: %s; disabled", schedule.pk, exc)
        Schedule.objects.filter(pk=schedule.pk).update(enabled=False, next_fire_at=None)
        return None
    late = latest is not None and (now - latest).total_seconds() > GRACE_SECONDS
    fire = latest is not None and (schedule.catch_up or not late)
    claimed = Schedule.objects.filter(pk=schedule.pk, next_fire_at=due_at).update(
        next_fire_at=following, **({"last_fired_at": now} if fire else {})
    )
    if not claimed or not fire:
        return None  # another worker advanced it first; or every missed tick is skipped
    marker = {"fired_at": iso(now), "scheduled_for": iso(latest)}
    if late:
        marker["catch_up"] = True
    run_input = {**(schedule.input or {}), "schedule": marker}
    try:
        with transaction.atomic():
            run = lifecycle.start_run(
                schedule.workflow,
                run_input,
                trigger_type=TriggerType.SCHEDULE,
                idempotency_key=f"schedule:{schedule.pk}:{marker['scheduled_for']}",
            )
    except (StateConflict, InvalidDefinition) as exc:
        logger.warning("schedule %s did not start %s: %s", schedule.pk, schedule.workflow, exc)
        return None
    except Exception:  # one broken schedule must not stop the others (its tick is spent)
        logger.exception("schedule %s: starting a run of %s failed", schedule.pk, schedule.workflow)
        return None
    Schedule.objects.filter(pk=schedule.pk).update(last_run=run)
    return str(run.pk)


def fire_due(now: datetime | None = None) -> list[str]:
    """Fire every due, enabled schedule once; returns the ids of the runs started.

    `now` defaults to the database's clock (tests pass their own)."""
    now = now or eventlog.db_now()
    started: list[str] = []
    for _ in range(MAX_BATCHES):
        with transaction.atomic():
            due = _claim_due(now)
            for schedule in due:
                run_id = _fire(schedule, now)
                if run_id is not None:
                    started.append(run_id)
        if len(due) < BATCH:
            break
    return started


def seconds_until_next_fire(default: float = 5.0) -> float:
    """Seconds until the earliest enabled schedule is due (database clock), at most
    `default`; 0 when one is due already."""
    upcoming = (
        Schedule.objects.filter(enabled=True, next_fire_at__isnull=False)
        .order_by("next_fire_at")
        .values_list("next_fire_at", flat=True)
        .first()
    )
    if upcoming is None:
        return default
    return max(0.0, min(default, (upcoming - eventlog.db_now()).total_seconds()))


def set_enabled(schedule: Schedule, enabled: bool, now: datetime | None = None) -> Schedule:
    """Enable or disable a schedule. Enabling starts again from the next future tick:
    the ticks missed while it was disabled never fire, whatever its catch-up policy."""
    fields = {"enabled": enabled}
    if enabled:
        fields["next_fire_at"] = next_fire_time(
            schedule.cron, schedule.timezone, now or eventlog.db_now()
        )
    Schedule.objects.filter(pk=schedule.pk).update(**fields)
    schedule.refresh_from_db()
    return schedule
