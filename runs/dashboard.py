"""The dashboard's data and fragments, shared by the page and its live stream, and the
process-local feed that keeps the dashboards of this process current.

Each fragment is one partial under `templates/dashboard/`, keyed by its DOM id. The page
renders them inline; the stream (`runs.consumers.DashboardConsumer`) sends them out of band
when they changed. A change is announced on the `eventlog.DASHBOARD_GROUP` group (a run
created, or an event that changes a run's status or waits for an approval); the feed reads
and renders the dashboard once for all the connections of the process, at most once per
`DashboardFeed.interval` seconds however many changes arrive meanwhile.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from engine.statuses import RunStatus, StepStatus, WaitingFor
from runs import eventlog
from runs.fanout import Delivery, Fanout, get_fanout
from runs.models import Run, StepRun
from workflows.models import Workflow

logger = logging.getLogger("runs")

PARTIALS = {
    "dashboard-counts": "dashboard/_counts.html",
    "dashboard-approvals": "dashboard/_approvals.html",
    "dashboard-recent": "dashboard/_recent_runs.html",
    "dashboard-failures": "dashboard/_failures.html",
}


def waiting_approvals(limit: int = 20):
    """Steps of live runs waiting for an approval nobody has given yet, oldest first."""
    return (
        StepRun.objects.filter(
            status=StepStatus.WAITING,
            waiting_for=WaitingFor.APPROVAL,
            resume_data__isnull=True,
            run__status__in=[RunStatus.PAUSED, RunStatus.RUNNING],
        )
        .select_related("run__workflow")
        .order_by("started_at", "created_at")[:limit]
    )


def context() -> dict:
    runs = Run.objects.select_related("workflow")
    return {
        "recent_runs": runs.order_by("-created_at")[:10],
        "failed_runs": runs.filter(status=RunStatus.FAILED).order_by("-created_at")[:5],
        "approvals": waiting_approvals(),
        "counts": Run.objects.status_counts(),
        "workflow_count": Workflow.objects.latest_versions().count(),
    }


def fragments() -> dict[str, str]:
    """Every fragment, out of band, keyed by DOM id."""
    data = {**context(), "oob": "true"}
    return {dom_id: render_to_string(name, data) for dom_id, name in PARTIALS.items()}


Connection = Callable[[dict[str, str]], Awaitable[None]]


class DashboardFeed:
    """The dashboard connections of this process (in one event loop): each is called with
    the fragments after each refresh. The first change (or new connection) after a quiet
    spell refreshes at once; those within `interval` of a refresh are folded into one more,
    after it."""

    interval = 0.25

    def __init__(self, fanout: Fanout):
        self.fanout = fanout
        self.connections: list[Connection] = []
        self._membership = asyncio.Lock()
        self._dirty = False
        self._refreshing: asyncio.Task | None = None
        self._last = float("-inf")

    async def join(self, connection: Connection) -> None:
        async with self._membership:
            if not self.connections:
                await self.fanout.subscribe(eventlog.DASHBOARD_GROUP, self._changed)
            self.connections.append(connection)
        # Its first refresh comes from the feed too: renders stay in order, and a crowd of
        # connections (a server restart) costs one render, not one each.
        self._changed()

    async def leave(self, connection: Connection) -> None:
        async with self._membership:
            if connection not in self.connections:
                return
            self.connections.remove(connection)
            if self.connections:
                return
            await self.fanout.unsubscribe(eventlog.DASHBOARD_GROUP, self._changed)
            if self._refreshing is not None:
                self._refreshing.cancel()
                await asyncio.gather(self._refreshing, return_exceptions=True)
                self._refreshing = None

    def _changed(self, delivery: Delivery | None = None) -> None:
        self._dirty = True
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._dirty:
                wait = self._last + self.interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._dirty = False
                self._last = loop.time()
                try:
                    current = await render_fragments()
                except Exception:
                    logger.exception("dashboard: rendering the fragments failed")
                    continue
                for connection in list(self.connections):
                    try:
                        await connection(current)
                    except Exception:
                        logger.exception("dashboard: sending a refresh failed")
        finally:
            self._refreshing = None


render_fragments = database_sync_to_async(fragments)

_feeds: WeakKeyDictionary = WeakKeyDictionary()


def get_feed() -> DashboardFeed:
    """The feed of the default channel layer's fan-out in the running event loop."""
    fanout = get_fanout()
    feed = _feeds.get(fanout)
    if feed is None:
        feed = _feeds[fanout] = DashboardFeed(fanout)
    return feed
