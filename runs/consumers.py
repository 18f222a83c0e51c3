"""The live run streams (SPEC §5): JSON at `/ws/runs/<id>`, HTML fragments for the run page
at `/ws/runs/<id>/html`.

Both authenticate (session, `?token=` or `Authorization: Bearer`; 4401 when that fails,
4403 when the role or the key's scopes do not allow reading (accounts.roles), 4404 for an
unknown run), join the run's group *before* reading the database, then send
what the database holds and forward live events. `last_seq` is the seq of the last event
sent: a live event at or below it was already sent from the database (dropped); one beyond
`last_seq + 1` means a publish was lost, so the missing events are read from the database
first. Events are committed before they are published, so the database always has them.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.db import connection, transaction
from django.utils.html import format_html, mark_safe

from accounts.models import ApiKey
from accounts.roles import may
from flowmatrx.api.auth import READ, RUN
from flowmatrx.api.resources import run_resource, step_run_resource
from runs import eventlog, run_page
from runs.models import Run, RunEvent

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404


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
def page_state(run_id, csrf_token: str, can_act: bool):
    run = run_page.load_run(run_id)
    fragments, steps = run_page.state_fragments(run, csrf_token=csrf_token, can_act=can_act)
    rows = {f"step-row-{step.pk}": step for step in steps}
    return fragments, rows


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
    """What both streams share: auth, the group, and the seq bookkeeping of the seam."""

    group: str | None = None
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
        self.group = eventlog.group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.start(_after(self.scope))

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_events(self, message):
        """A batch published by `eventlog.publish`: send what is new, filling any gap."""
        fresh = []
        for envelope in sorted(message["events"], key=lambda e: e["seq"]):
            seq = envelope["seq"]
            if seq <= self.last_seq:
                continue
            if seq > self.last_seq + 1:
                fresh.extend(await events_between(self.run_id, self.last_seq, seq))
            fresh.append(envelope)
            self.last_seq = seq
        if fresh:
            await self.send_events(fresh)

    async def start(self, after: int | None) -> None:
        raise NotImplementedError

    async def send_events(self, envelopes: list[dict]) -> None:
        raise NotImplementedError


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

    async def send_events(self, envelopes):
        for envelope in envelopes:
            await self.send_json({"type": "event", **envelope})

    async def receive_json(self, content, **kwargs):
        """Clients have nothing to say; whatever they send is ignored."""


class RunPageConsumer(_RunStream, AsyncWebsocketConsumer):
    """`/ws/runs/<id>/html?after=<seq>`: out-of-band fragments for the run page's htmx ws
    extension, rendered from the page's own partials.

    On connect: the timeline entries after `after` (the page asks with the last entry it
    shows, on every reconnect too), every state fragment and the whole step table. After
    that, per batch of events: their timeline entries, the fragments whose HTML changed,
    new step rows appended and changed ones swapped.

    Table parts travel in messages of their own: the browser parses a message as one
    fragment, and a `<tr>` or `<tbody>` after a `<section>` would be dropped by the parser.
    """

    async def start(self, after):
        self.sent: dict[str, str] = {}
        self.last_seq = after or 0
        missed = await events_between(self.run_id, self.last_seq)
        if missed:
            self.last_seq = missed[-1]["seq"]
        fragments, rows = await page_state(self.run_id, self._csrf_token(), self.can_act)
        self.sent.update(fragments)
        await self._send_all(
            await self._timeline(missed) + "".join(fragments.values()),
            await render_steps_body(list(rows.values())),
        )
        self.sent.update(zip(rows, await render_rows(list(rows.values()), ""), strict=True))

    async def send_events(self, envelopes):
        fragments, rows = await page_state(self.run_id, self._csrf_token(), self.can_act)
        changed_fragments = [html for key, html in fragments.items() if self.sent.get(key) != html]
        self.sent.update(fragments)
        inline = dict(zip(rows, await render_rows(list(rows.values()), ""), strict=True))
        new = [key for key in rows if key not in self.sent]
        changed = [key for key in rows if key in self.sent and self.sent[key] != inline[key]]
        self.sent.update(inline)
        appended = ""
        if new:
            appended = format_html(
                '<tbody hx-swap-oob="beforeend:#steps-body">{}</tbody>',
                mark_safe("".join(inline[key] for key in new)),
            )
        swapped = await render_rows([rows[key] for key in changed], "true")
        await self._send_all(
            await self._timeline(envelopes) + "".join(changed_fragments), appended, "".join(swapped)
        )

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

    def _csrf_token(self) -> str:
        """The browser's CSRF cookie, so forms rendered here post like the page's."""
        return self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, "")
