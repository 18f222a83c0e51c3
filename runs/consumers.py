"""The live streams: the run streams of SPEC §5 (JSON at `/ws/runs/<id>`, HTML fragments for
the run page at `/ws/runs/<id>/html`) and the dashboard's (`/ws/dashboard`).

Both authenticate (session, `?token=` or `Authorization: Bearer`; 4401 when that fails,
4403 when the role or the key's scopes do not allow reading (accounts.roles), 4404 for an
unknown run), join the run's group *before* reading the database (through the process's
fan-out, `runs.fanout`), then send what the database holds and forward live events.
`last_seq` is the seq of the last event sent: a live event at or below it was already sent
from the database (dropped); one beyond `last_seq + 1` means a publish was lost, so the
missing events are read from the database first. Events are committed before they are
published, so the database always has them.
"""

import asyncio
import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.db import connection, transaction
from django.utils.html import escape, format_html, mark_safe

from accounts.models import ApiKey
from accounts.roles import may
from flowmatrx.api.auth import READ, RUN
from flowmatrx.api.resources import run_resource, step_run_resource
from runs import eventlog, run_page
from runs.dashboard import DashboardFeed, get_feed
from runs.fanout import Delivery, get_fanout
from runs.models import Run, RunEvent

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
INTERNAL_ERROR = 4500  # daphne (autobahn) only sends 1000 and 3000-4999

logger = logging.getLogger("runs")


# -- database boundaries (sync, wrapped) ----------------------------------------------------


def _token(scope) -> str | None:
    """The API key of `?token=` or of an `Authorization: Bearer` header, if any."""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


@database_sync_to_async
def authenticate(scope):
    """(user, may_read, may_act): the user behind this connection (None without valid
    credentials), whether their role (and their key's scopes, if a key is used) allow
    reading, and whether their role allows the run page's actions. A key that is given
    must be valid (it never falls back to the session), as in the API."""
    token = _token(scope)
    if token is not None:
        key = ApiKey.authenticate(token) if token else None
        if key is None:
            return None, False, False
        return key.user, key.has_scope(READ) and may(key.user, READ), may(key.user, RUN)
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None, False, False
    return user, may(user, READ), may(user, RUN)


@database_sync_to_async
def run_exists(run_id) -> bool:
    return Run.objects.filter(pk=run_id).exists()


@database_sync_to_async
def events_between(run_id, after: int, before: int | None = None) -> list[dict]:
    """Envelopes of the run's events with after < seq < before, in order."""
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after)
    if before is not None:
        events = events.filter(seq__lt=before)
    return [event.envelope() for event in events.order_by("seq")]


@database_sync_to_async
def snapshot(run_id) -> dict:
    """The run and its steps as the API shows them, read consistently (on PostgreSQL, from
    one repeatable-read snapshot), with the seq they are as of."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        run = Run.objects.select_related("workflow", "created_by").get(pk=run_id)
        steps = list(run.steps.order_by("created_at", "id"))
    return {
        "type": "snapshot",
        "run": run_resource(run),
        "steps": [step_run_resource(step) for step in steps],
        "last_seq": run.last_seq,
    }


@database_sync_to_async
def page_state(run_id, can_act: bool) -> run_page.PageState:
    return run_page.PageState.load(run_id, can_act=can_act)


render_timeline = database_sync_to_async(
    lambda envelopes: "".join(run_page.timeline_entry(e) for e in envelopes)
)
render_rows = database_sync_to_async(
    lambda steps, oob: [run_page.step_row(step, oob=oob) for step in steps]
)
render_steps_body = database_sync_to_async(run_page.steps_body)


def _after(scope) -> int | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("after")
    if values and values[0].isdigit():
        return int(values[0])
    return None


# -- consumers --------------------------------------------------------------------------------


class _RunStream:
    """What both streams share: auth, the subscription to the run's group (through the
    process's fan-out), and the seq bookkeeping of the seam.

    Deliveries wait in `inbox` until `start` has sent what the database holds; then `_pump`
    takes them in order, those that queued up meanwhile together."""

    group: str | None = None
    pump: asyncio.Task | None = None
    last_seq = 0
    can_act = False
    """Whether the user's role may use the run's actions (the page stream shows them)."""

    async def connect(self):
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        await self.accept()
        user, may_read, self.can_act = await authenticate(self.scope)
        if user is None or not may_read:
            await self.close(code=UNAUTHENTICATED if user is None else FORBIDDEN)
            return
        if not await run_exists(self.run_id):
            await self.close(code=NOT_FOUND)
            return
        # Join first: whatever is published from now on reaches us, and whatever was
        # committed before is read from the database below.
        self.inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self.fanout = get_fanout()
        self.group = eventlog.group_name(self.run_id)
        await self.fanout.subscribe(self.group, self.inbox.put_nowait)
        await self.start(_after(self.scope))
        self.pump = asyncio.ensure_future(self._pump())

    async def disconnect(self, code):
        if self.pump is not None:
            self.pump.cancel()
            await asyncio.gather(self.pump, return_exceptions=True)
        if self.group is not None:
            await self.fanout.unsubscribe(self.group, self.inbox.put_nowait)

    async def _pump(self) -> None:
        while True:
            deliveries = [await self.inbox.get()]
            while not self.inbox.empty():
                deliveries.append(self.inbox.get_nowait())
            try:
                fresh = await self._fresh(deliveries)
                if fresh:
                    await self.send_events(fresh, deliveries[-1])
            except Exception:
                logger.exception("run stream %s: sending events failed", self.run_id)
                await self.close(code=INTERNAL_ERROR)
                return

    async def _fresh(self, deliveries: list[Delivery]) -> list[dict]:
        """The published events not sent yet, in order, with any gap filled from the
        database (a publish that was lost)."""
        fresh = []
        for delivery in deliveries:
            events = delivery.once("sorted", lambda d=delivery: _sorted(d.message["events"]))
            for envelope in events:
                seq = envelope["seq"]
                if seq <= self.last_seq:
                    continue
                if seq > self.last_seq + 1:
                    fresh.extend(await events_between(self.run_id, self.last_seq, seq))
                fresh.append(envelope)
                self.last_seq = seq
        return fresh

    async def start(self, after: int | None) -> None:
        raise NotImplementedError

    async def send_events(self, envelopes: list[dict], delivery: Delivery) -> None:
        """Send `envelopes`; `delivery` (the latest of the batch) memoizes what other
        connections of this process can reuse."""
        raise NotImplementedError


def _sorted(envelopes: list[dict]) -> list[dict]:
    return sorted(envelopes, key=lambda e: e["seq"])


class RunStreamConsumer(_RunStream, AsyncJsonWebsocketConsumer):
    """`/ws/runs/<id>`: a snapshot, the events after `?after=` from the database, then
    each live event, as `{"type": "event", ...envelope}`, in seq order."""

    async def start(self, after):
        state = await snapshot(self.run_id)
        await self.send_json(state)
        self.last_seq = state["last_seq"]
        if after is not None:
            missed = await events_between(self.run_id, after)
            for envelope in missed:
                await self.send_json({"type": "event", **envelope})
            if missed:
                self.last_seq = max(self.last_seq, missed[-1]["seq"])

    async def send_events(self, envelopes, delivery):
        for envelope in envelopes:
            # An event's text never changes (the log is append-only): encode it once.
            text = delivery.once(("json", envelope["seq"]), lambda e=envelope: _event_json(e))
            await self.send(text_data=text)

    async def receive_json(self, content, **kwargs):
        """Clients have nothing to say; whatever they send is ignored."""


def _event_json(envelope: dict) -> str:
    return json.dumps({"type": "event", **envelope})


class RunPageConsumer(_RunStream, AsyncWebsocketConsumer):
    """`/ws/runs/<id>/html?after=<seq>`: out-of-band fragments for the run page's htmx ws
    extension, rendered from the page's own partials.

    On connect: the timeline entries after `after` (the page asks with the last entry it
    shows, on every reconnect too), every state fragment and the whole step table. After
    that, per batch of events: their timeline entries, the fragments whose HTML changed,
    new step rows appended and changed ones swapped. The state is read and rendered once
    per delivery for all the connections of the process; only the CSRF token in the forms
    is each connection's own.

    Table parts travel in messages of their own: the browser parses a message as one
    fragment, and a `<tr>` or `<tbody>` after a `<section>` would be dropped by the parser.
    """

    async def start(self, after):
        self.sent: dict[str, str] = {}
        self.last_seq = after or 0
        missed = await events_between(self.run_id, self.last_seq)
        if missed:
            self.last_seq = missed[-1]["seq"]
        state = await page_state(self.run_id, self.can_act)
        fragments = self._own(state.fragments)
        self.sent.update(fragments)
        await self._send_all(
            await self._timeline(missed) + "".join(fragments.values()),
            await render_steps_body(list(state.rows.values())),
        )
        self.sent.update(state.row_html)

    async def send_events(self, envelopes, delivery):
        state = await delivery.once_async(
            ("page-state", self.can_act), lambda: page_state(self.run_id, self.can_act)
        )
        fragments = self._own(state.fragments)
        changed_fragments = [html for key, html in fragments.items() if self.sent.get(key) != html]
        self.sent.update(fragments)
        inline = state.row_html
        new = [key for key in inline if key not in self.sent]
        changed = [key for key in inline if key in self.sent and self.sent[key] != inline[key]]
        self.sent.update(inline)
        appended = ""
        if new:
            appended = format_html(
                '<tbody hx-swap-oob="beforeend:#steps-body">{}</tbody>',
                mark_safe("".join(inline[key] for key in new)),
            )
        swapped = await delivery.once_async(
            ("rows-oob", tuple(changed)),
            lambda: render_rows([state.rows[key] for key in changed], "true"),
        )
        timeline = await delivery.once_async(
            ("timeline", tuple(e["seq"] for e in envelopes)), lambda: self._timeline(envelopes)
        )
        await self._send_all(timeline + "".join(changed_fragments), appended, "".join(swapped))

    async def receive(self, text_data=None, bytes_data=None):
        """The page sends nothing; ignore anything that arrives."""

    async def _send_all(self, *messages: str) -> None:
        for message in messages:
            if message:
                await self.send(text_data=message)

    async def _timeline(self, envelopes) -> str:
        if not envelopes:
            return ""
        entries = await render_timeline(envelopes)
        return format_html('<ol hx-swap-oob="beforeend:#timeline">{}</ol>', mark_safe(entries))

    def _own(self, fragments: dict[str, str]) -> dict[str, str]:
        """The fragments with this browser's CSRF cookie in their forms, so they post like
        the page's."""
        token = escape(self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, ""))
        return {
            key: html.replace(run_page.CSRF_PLACEHOLDER, token) for key, html in fragments.items()
        }


class DashboardConsumer(AsyncWebsocketConsumer):
    """`/ws/dashboard`: the dashboard's fragments, out of band, whenever they change.

    The process's `DashboardFeed` refreshes it: on connect (every fragment, so that what
    changed between the page's render and the connection is not lost), then after changes,
    at most once per `DashboardFeed.interval`; only fragments whose HTML changed are sent."""

    feed: DashboardFeed | None = None

    async def connect(self):
        await self.accept()
        user, may_read, _ = await authenticate(self.scope)
        if user is None:
            await self.close(code=UNAUTHENTICATED)
            return
        if not may_read:
            await self.close(code=FORBIDDEN)
            return
        self.sent: dict[str, str] = {}
        self.feed = get_feed()
        await self.feed.join(self.refresh)

    async def disconnect(self, code):
        if self.feed is not None:
            await self.feed.leave(self.refresh)

    async def refresh(self, fragments: dict[str, str]) -> None:
        changed = [html for key, html in fragments.items() if self.sent.get(key) != html]
        self.sent.update(fragments)
        if changed:
            await self.send(text_data="".join(changed))

    async def receive(self, text_data=None, bytes_data=None):
        """The page sends nothing; ignore anything that arrives."""
