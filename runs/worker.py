"""The engine worker: claims runs with leases and executes many of them at once.

One asyncio process. Each loop: claim as many runnable runs as there is room for, most
urgent first (on PostgreSQL one transaction: try-lock the concurrency buckets, then one
statement with `FOR UPDATE SKIP LOCKED`; the same under SQLite's write lock),
execute each in its own task, then sleep until a notification (LISTEN on PostgreSQL, an
in-process call in the embedded mode), the next timer on the database's clock, or the
poll interval. A heartbeat renews the leases and stops the executors whose run was taken
over or cancelled. SIGTERM stops claiming, lets running executors finish for a while, then
releases what is left so another worker continues at once.
"""

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from engine.errors import LostLease
from engine.events import NewEvent
from engine.executor import DEFAULT_PARK_AFTER_SECONDS, Executor
from engine.statuses import EventType, RunStatus
from runs import eventlog, wakeup
from runs.models import Run
from runs.store import DjangoStore
from triggers.schedules import fire_due, seconds_until_next_fire
from triggers.webhooks import prune_deliveries

logger = logging.getLogger("runs.worker")

HOUSEKEEPING_SECONDS = 60.0
"""How often a worker deletes what is no longer needed (webhook delivery keys)."""

CLAIMABLE = Q(status__in=[RunStatus.PENDING, RunStatus.RUNNING]) | Q(
    status=RunStatus.PAUSED, wake_at__isnull=False
)

_CLAIMABLE_SQL = """
      (status IN ('pending', 'running') OR (status = 'paused' AND wake_at IS NOT NULL))
      AND (wake_at IS NULL OR wake_at <= clock_timestamp())
      AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())"""

BUCKET_LOCKS = 0x464C4F57  # "FLOW": the key space of the per-bucket claim locks

PG_LOCK_BUCKETS = f"""
SELECT flow_key, pg_try_advisory_xact_lock({BUCKET_LOCKS}, hashtext(flow_key)) FROM (
    SELECT DISTINCT flow_key FROM runs_run
    WHERE concurrency_limit IS NOT NULL AND {_CLAIMABLE_SQL}
    OFFSET 0
) AS buckets
"""
"""Try to lock the bucket of every claimable concurrency-limited run: (bucket, locked?).
A bucket locked by another claimer is skipped (like a row under SKIP LOCKED), never
waited for. `OFFSET 0` keeps the lock function out of the inner scan."""

PG_CLAIM = f"""
WITH unlimited AS (
    SELECT id, priority, created_at FROM runs_run
    WHERE concurrency_limit IS NULL AND {_CLAIMABLE_SQL}
    ORDER BY priority DESC, created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
limited AS (
    SELECT id, flow_key, concurrency_limit, status, priority, created_at FROM runs_run
    WHERE concurrency_limit IS NOT NULL AND flow_key = ANY(%(buckets)s::text[])
      AND {_CLAIMABLE_SQL}
),
held AS (
    SELECT flow_key, count(*) AS n FROM runs_run
    WHERE concurrency_limit IS NOT NULL AND flow_key = ANY(%(buckets)s::text[])
      AND (status = 'running'
           OR (status IN ('pending', 'paused') AND lease_expires_at >= clock_timestamp()))
    GROUP BY flow_key
),
eligible AS (
    SELECT id, priority, created_at FROM (
        SELECT c.id, c.priority, c.created_at,
               c.status = 'running' AS holds_slot,
               row_number() OVER (PARTITION BY c.flow_key, c.status = 'running'
                                  ORDER BY c.priority DESC, c.created_at) AS place,
               c.concurrency_limit - COALESCE(h.n, 0) AS free
        FROM limited c LEFT JOIN held h ON h.flow_key = c.flow_key
    ) AS ranked
    WHERE holds_slot OR place <= free
),
candidates AS (
    SELECT id, priority, created_at FROM unlimited
    UNION ALL
    SELECT id, priority, created_at FROM eligible
),
chosen AS (
    SELECT id FROM candidates ORDER BY priority DESC, created_at LIMIT %(limit)s
)
UPDATE runs_run
SET lease_owner = %(owner)s,
    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s),
    fence = fence + 1
WHERE id IN (SELECT id FROM chosen)
  AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())
RETURNING id, fence, concurrency_limit IS NOT NULL,
          (SELECT count(*) FROM candidates) > %(limit)s
"""
"""Claim the `limit` most urgent runs (priority, then age) among the unlimited ones (row
locks, SKIP LOCKED) and the concurrency-limited ones of the buckets PG_LOCK_BUCKETS locked
in a *previous* statement of the same transaction, so this statement's snapshot sees every
claim committed in those buckets before. A limited run already `running` holds its slot (a
timer, a lost lease); a pending or paused one needs a free slot in its bucket
(runs/flowcontrol.py). Returns (id, fence, limited?, more candidates than claimed?)."""


PG_CLAIM_AND_NEXT_WAKEUP = f"""
WITH claimed AS ({PG_CLAIM.strip()})
SELECT id, fence, limited, more, NULL::float8 FROM claimed AS c(id, fence, limited, more)
UNION ALL
SELECT NULL, NULL, NULL, NULL, EXTRACT(EPOCH FROM LEAST(
    (SELECT min(wake_at) FROM runs_run
      WHERE (status IN ('pending', 'running') OR (status = 'paused' AND wake_at IS NOT NULL))
        AND wake_at IS NOT NULL AND lease_expires_at IS NULL
        AND (concurrency_limit IS NULL OR wake_at > clock_timestamp())),
    (SELECT min(lease_expires_at) FROM runs_run
      WHERE (status IN ('pending', 'running') OR (status = 'paused' AND wake_at IS NOT NULL))
        AND lease_expires_at IS NOT NULL)
) - clock_timestamp())
"""
"""The claim and `next_wakeup_seconds` in one round trip. The second part reads the
snapshot from before the claim, so a due timer it just claimed can show as "now": the
worker then looks once more and finds nothing, which is harmless. A concurrency-limited run
whose time has come but that has no slot (a resumed or throttled one) is not a timer: the
worker that frees a slot wakes every worker (else the loop would spin on it)."""

RETRY_SECONDS = 0.05
"""How soon to look again after skipping a bucket another worker was claiming from: it may
have left free slots there (it stops at its own room)."""


def _pg_claim(cursor, sql: str, owner: str, limit: int, lease_seconds: float):
    """Lock the buckets, then claim (one transaction). (rows, a bucket was skipped)."""
    cursor.execute(PG_LOCK_BUCKETS)
    buckets = cursor.fetchall()
    mine = [key for key, locked in buckets if locked]
    cursor.execute(sql, {"owner": owner, "lease": lease_seconds, "limit": limit, "buckets": mine})
    return cursor.fetchall(), len(mine) < len(buckets)


def _claimed(rows, limited: set[str] | None) -> list[tuple[str, int]]:
    """[(run id, fence)] of the claim's rows; limited ones added to `limited`. When more
    runs were claimable than this worker took, wake the others: rows this claim locked but
    left were skipped by any claim that ran meanwhile."""
    claimed = []
    more = False
    for run_id, fence, is_limited, left_over, *_ in rows:
        if run_id is None:
            continue
        claimed.append((str(run_id), fence))
        more = more or left_over
        if is_limited and limited is not None:
            limited.add(str(run_id))
    if more:
        wakeup.notify("claimable")
    return claimed


def claim_and_next_wakeup(
    owner: str,
    limit: int,
    lease_seconds: float,
    default_wait: float,
    limited: set[str] | None = None,
) -> tuple[list[tuple[str, int]], float]:
    """(claimed runs, seconds until the next timer or lease expiry, at most default_wait).

    The ids of claimed concurrency-limited runs are added to `limited`."""
    if connection.vendor != "postgresql" or limit <= 0:
        claimed = claim_runs(owner, limit, lease_seconds, limited)
        return claimed, next_wakeup_seconds(default_wait)
    with transaction.atomic(), connection.cursor() as cursor:
        rows, skipped = _pg_claim(cursor, PG_CLAIM_AND_NEXT_WAKEUP, owner, limit, lease_seconds)
    claimed = _claimed(rows, limited)
    seconds = next((row[4] for row in rows if row[0] is None), None)
    wait = default_wait if seconds is None else max(0.0, min(default_wait, float(seconds)))
    if skipped and len(claimed) < limit:
        wait = min(wait, RETRY_SECONDS)
    return claimed, wait


def _sqlite_claim_ids(now, limit: int) -> tuple[list, set]:
    """SQLite (writers are serialized): PG_CLAIM's choice, in Python. (ids, limited ids)."""
    runnable = (
        Run.objects.filter(CLAIMABLE)
        .filter(Q(wake_at__isnull=True) | Q(wake_at__lte=now))
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("-priority", "created_at")
    )
    candidates = list(
        runnable.filter(concurrency_limit__isnull=True).values_list("id", "priority", "created_at")[
            :limit
        ]
    )
    limited_candidates = list(
        runnable.filter(concurrency_limit__isnull=False).values_list(
            "id", "priority", "created_at", "flow_key", "concurrency_limit", "status"
        )
    )
    held: dict[str, int] = {}
    if limited_candidates:
        for flow_key in (
            Run.objects.filter(concurrency_limit__isnull=False)
            .filter(flow_key__in={c[3] for c in limited_candidates})
            .filter(
                Q(status=RunStatus.RUNNING)
                | Q(
                    status__in=[RunStatus.PENDING, RunStatus.PAUSED],
                    lease_expires_at__gte=now,
                )
            )
            .values_list("flow_key", flat=True)
        ):
            held[flow_key] = held.get(flow_key, 0) + 1
    limited_ids = set()
    for run_id, priority, created_at, flow_key, run_limit, status in limited_candidates:
        if status != RunStatus.RUNNING:
            if held.get(flow_key, 0) >= run_limit:
                continue
            held[flow_key] = held.get(flow_key, 0) + 1
        candidates.append((run_id, priority, created_at))
        limited_ids.add(run_id)
    candidates.sort(key=lambda c: (-c[1], c[2]))
    ids = [c[0] for c in candidates[:limit]]
    return ids, limited_ids.intersection(ids)


def claim_runs(
    owner: str, limit: int, lease_seconds: float, limited: set[str] | None = None
) -> list[tuple[str, int]]:
    """Claim up to `limit` runnable runs for `owner`, most urgent first (priority, then
    age), limited runs only into free slots of their bucket: [(run id, new fence)]. The
    ids of the claimed concurrency-limited runs are also added to `limited`."""
    if limit <= 0:
        return []
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            rows, _ = _pg_claim(cursor, PG_CLAIM, owner, limit, lease_seconds)
        return _claimed(rows, limited)
    now = timezone.now()
    with transaction.atomic():
        ids, limited_ids = _sqlite_claim_ids(now, limit)
        if limited is not None:
            limited.update(str(run_id) for run_id in limited_ids)
        Run.objects.filter(id__in=ids).update(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            fence=F("fence") + 1,
        )
        fences = dict(Run.objects.filter(id__in=ids).values_list("id", "fence"))
        return [(str(run_id), fences[run_id]) for run_id in ids]


def next_wakeup_seconds(default: float) -> float:
    """Seconds until the earliest timer or lease expiry (database clock), at most `default`."""
    now = eventlog.db_now()
    candidates = Run.objects.filter(CLAIMABLE)
    wake = (
        candidates.filter(wake_at__isnull=False, lease_expires_at__isnull=True)
        .filter(Q(concurrency_limit__isnull=True) | Q(wake_at__gt=now))
        .order_by("wake_at")
        .values_list("wake_at", flat=True)
        .first()
    )
    expiry = (
        candidates.filter(lease_expires_at__isnull=False)
        .order_by("lease_expires_at")
        .values_list("lease_expires_at", flat=True)
        .first()
    )
    times = [t for t in (wake, expiry) if t is not None]
    if not times:
        return default
    return max(0.0, min(default, (min(times) - now).total_seconds()))


def renew_leases(owner: str, runs: dict[str, int], lease_seconds: float) -> set[str]:
    """Extend our leases; return the ids of runs we no longer own (taken over, cancelled)."""
    if not runs:
        return set()
    until = eventlog.db_now() + timedelta(seconds=lease_seconds)
    lost = set()
    with transaction.atomic():
        Run.objects.filter(id__in=list(runs), lease_owner=owner).update(lease_expires_at=until)
        current = dict(Run.objects.filter(id__in=list(runs)).values_list("id", "fence"))
    for run_id, fence in runs.items():
        if current.get(uuid.UUID(run_id)) != fence:
            lost.add(run_id)
    return lost


def release(run_id: str, fence: int) -> None:
    Run.objects.filter(pk=run_id, fence=fence).update(lease_owner="", lease_expires_at=None)


def fail_run(run_id: str, fence: int, error: str) -> list[NewEvent]:
    """An engine bug must not make a run spin forever: fail it, fenced."""
    now = timezone.now()
    from runs.composition import deliver_to_parent

    try:
        with transaction.atomic():
            events = eventlog.append(
                run_id,
                [NewEvent(EventType.RUN_FAILED, {"status": RunStatus.FAILED, "error": error})],
                expect_fence=fence,
                status=RunStatus.FAILED,
                error=error,
                completed_at=now,
                wake_at=None,
                lease_owner="",
                lease_expires_at=None,
            )
            deliver_to_parent(run_id)  # a child run's parent step fails with it
            return events
    except LostLease:
        return []


def housekeep() -> int:
    """One round of housekeeping: what it deleted."""
    return prune_deliveries(eventlog.db_now())


class Worker:
    def __init__(
        self,
        name: str,
        *,
        concurrency: int = 100,
        lease_seconds: float = 30.0,
        poll_seconds: float = 5.0,
        park_after_seconds: float = DEFAULT_PARK_AFTER_SECONDS,
        drain_seconds: float = 10.0,
    ):
        self.name = name
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.park_after_seconds = park_after_seconds
        self.drain_seconds = drain_seconds
        self.tasks: dict[str, asyncio.Task] = {}
        self.fences: dict[str, int] = {}
        self.limited: set[str] = set()  # claimed runs with a concurrency limit
        self.backlog = False
        """The last claim filled all the room it had: more runs may be waiting."""
        self.executors: dict[str, Executor] = {}
        self.stopping = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, name_suffix: str = "", **overrides) -> "Worker":
        name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        if name_suffix:
            name = f"{name}:{name_suffix}"
        options = {
            "lease_seconds": settings.FLOWMATRX_LEASE_SECONDS,
            # SQLite has no NOTIFY: workers in other processes only learn of new runs by
            # polling, which costs one local query.
            "poll_seconds": 5.0 if connection.vendor == "postgresql" else 0.25,
        }
        options.update(overrides)
        return cls(name, **options)

    # -- control ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming; running executors get `drain_seconds` to finish."""
        self.stopping = True
        if self._wake is not None:
            self._wake.set()

    def _on_message(self, message: str) -> None:
        kind, _, run_id = message.rpartition(":")
        if kind == "cancel" and run_id in self.tasks:
            self.tasks[run_id].cancel()
        elif kind == "resume" and run_id in self.executors:
            self.executors[run_id].poke()
        if self._wake is not None:
            self._wake.set()

    def _on_message_threadsafe(self, message: str) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_message, message)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.store = DjangoStore()
        wakeup.add_listener(self._on_message_threadsafe)
        background = [asyncio.ensure_future(self._heartbeat())]
        background.append(asyncio.ensure_future(self._schedules()))
        background.append(asyncio.ensure_future(self._housekeeping()))
        if connection.vendor == "postgresql":
            background.append(asyncio.ensure_future(self._listen()))
        logger.info("worker %s started", self.name)
        try:
            while not self.stopping:
                _, timeout = await self._claim()
                if self.stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.001))
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            wakeup.remove_listener(self._on_message_threadsafe)
            await self._drain()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(None, self.store.close)
            logger.info("worker %s stopped", self.name)

    async def run_once(self) -> int:
        """Claim what there is room for and start executing it. Returns how many."""
        claimed, _ = await self._claim()
        return claimed

    async def _claim(self) -> tuple[int, float]:
        """Claim and start what there is room for: (how many, seconds to the next timer)."""
        room = self.concurrency - len(self.tasks)
        claimed, wait = await self.store.call(
            claim_and_next_wakeup,
            self.name,
            room,
            self.lease_seconds,
            self.poll_seconds,
            self.limited,
        )
        for run_id, fence in claimed:
            self.fences[run_id] = fence
            self.tasks[run_id] = asyncio.ensure_future(self._execute(run_id, fence))
        # Fewer than `room` claimed means nothing else was claimable (rows locked by another
        # worker's claim are that worker's). A claim that filled its room may have left
        # runs behind (a backlog, which no notification announces): any run that ends then
        # wakes the loop to claim again.
        if room > 0:  # a full worker learned nothing about what waits
            self.backlog = len(claimed) >= room
        return len(claimed), wait

    async def _execute(self, run_id: str, fence: int) -> None:
        executor = Executor(self.store, run_id, fence, park_after_seconds=self.park_after_seconds)
        self.executors[run_id] = executor
        try:
            await executor.run()
        except LostLease:
            logger.info("run %s: lease lost or run cancelled; stopped", run_id)
        except asyncio.CancelledError:
            if self.stopping:
                await self.store.call(release, run_id, fence)
            raise
        except Exception as exc:
            logger.exception("run %s: the engine failed", run_id)
            events = await self.store.call(fail_run, run_id, fence, f"engine error: {exc}")
            await eventlog.publish(run_id, events)
        finally:
            self.tasks.pop(run_id, None)
            self.fences.pop(run_id, None)
            self.executors.pop(run_id, None)
            if run_id in self.limited:
                # Its concurrency slot may be free now: wake every worker to fill it.
                self.limited.discard(run_id)
                try:
                    await self.store.call(wakeup.notify, f"slot:{run_id}")
                except Exception:
                    logger.warning("waking the workers failed", exc_info=True)
            if self.backlog and self._wake is not None:
                self._wake.set()  # room again: claim what may have waited meanwhile

    async def _drain(self) -> None:
        if not self.tasks:
            return
        logger.info("worker %s: draining %d runs", self.name, len(self.tasks))
        _, pending = await asyncio.wait(list(self.tasks.values()), timeout=self.drain_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _heartbeat(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                lost = await self.store.call(
                    renew_leases, self.name, dict(self.fences), self.lease_seconds
                )
            except Exception:
                logger.warning("heartbeat failed", exc_info=True)
                continue
            for run_id in lost:
                task = self.tasks.get(run_id)
                if task is not None:
                    logger.info("run %s is no longer ours; stopping it", run_id)
                    task.cancel()

    async def _schedules(self) -> None:
        """Fire due cron schedules (each tick once across all workers), then sleep until
        the next one is due (at most 5 s: schedules may change meanwhile)."""
        while not self.stopping:
            wait = 5.0
            try:
                await self.store.call(fire_due)
                wait = await self.store.call(seconds_until_next_fire, 5.0)
            except Exception:
                logger.warning("firing schedules failed", exc_info=True)
            await asyncio.sleep(min(5.0, max(0.05, wait)))

    async def _housekeeping(self) -> None:
        """Prune old webhook delivery keys every HOUSEKEEPING_SECONDS (every worker does;
        they delete the same rows, so a second one finds little left)."""
        while not self.stopping:
            try:
                deleted = await self.store.call(housekeep)
                if deleted:
                    logger.info("pruned %d webhook delivery keys", deleted)
            except Exception:
                logger.warning("housekeeping failed", exc_info=True)
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                params = connection.get_connection_params()
                params.pop("cursor_factory", None)
                params.pop("context", None)
                async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {wakeup.CHANNEL}")
                    if self._wake is not None:
                        self._wake.set()  # anything sent while we were not listening
                    async for notify in conn.notifies():
                        self._on_message(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("LISTEN connection lost; retrying", exc_info=True)
                await asyncio.sleep(1)
