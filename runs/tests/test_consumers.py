"""The live run streams: the JSON stream of SPEC §5 and the run page's HTML stream."""

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import transaction

from accounts.models import ApiKey
from engine.events import NewEvent
from engine.statuses import EventType, RunStatus
from flowmatrx.api.resources import run_resource, step_run_resource
from flowmatrx.asgi import application
from runs import eventlog, fanout, lifecycle
from runs.models import Run, RunEvent
from runs.tests.conftest import edge, node
from runs.tests.test_worker import ROOT, _database_url

pytestmark = pytest.mark.django_db(transaction=True)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY


@pytest.fixture
def finished(make_run, drive):
    """A completed two-step run (its events: run.started ... run.completed)."""
    run = make_run(
        [node("a", "transform", {"mapping": {"x": 1}}), node("b", "transform", {"mapping": {}})],
        [edge("a", "b")],
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    return run


@pytest.fixture
def session_cookie(client, bob):
    client.force_login(bob)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.fixture
def api_key(bob):
    return ApiKey.create(bob, name="stream")[1]


def connect(path, *headers):
    return WebsocketCommunicator(application, path, headers=[(b"host", b"testserver"), *headers])


def envelopes(run, after=0):
    return [e.envelope() for e in RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")]


def append(run, count):
    """Commit `count` context.updated events to the run's log (publishing is up to the test)."""
    with transaction.atomic():
        return eventlog.append(
            run.pk,
            [
                NewEvent(EventType.CONTEXT_UPDATED, {"step_id": "b", "keys": [i]}, step_id="b")
                for i in range(count)
            ],
        )


async def publish(run, events):
    await eventlog.publish(run.pk, events)


async def opened(communicator):
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def close_code(communicator):
    connected, _ = await communicator.connect()
    if not connected:
        return "refused"
    message = await communicator.receive_output()
    await communicator.wait()
    return message.get("code") if message["type"] == "websocket.close" else message


async def test_it_sends_a_snapshot_of_the_run_and_its_steps(finished, session_cookie):
    ws = await opened(connect(f"/ws/runs/{finished.pk}", session_cookie))
    snapshot = await ws.receive_json_from()
    run = await sync_to_async(Run.objects.select_related("workflow", "created_by").get)(
        pk=finished.pk
    )
    steps = await sync_to_async(lambda: list(run.steps.order_by("created_at", "id")))()
    assert snapshot == {
        "type": "snapshot",
        "run": run_resource(run),
        "steps": [step_run_resource(step) for step in steps],
        "last_seq": run.last_seq,
    }
    assert [s["step_id"] for s in snapshot["steps"]] == ["a", "b"]
    assert await ws.receive_nothing()
    await ws.disconnect()


async def test_it_catches_up_after_a_seq_from_the_database(finished, session_cookie):
    ws = await opened(connect(f"/ws/runs/{finished.pk}?after=2", session_cookie))
    assert (await ws.receive_json_from())["type"] == "snapshot"
    expected = await sync_to_async(envelopes)(finished, after=2)
    assert len(expected) >= 4
    received = [await ws.receive_json_from() for _ in expected]
    assert received == [{"type": "event", **e} for e in expected]
    assert received[-1]["event_type"] == "run.completed"
    assert await ws.receive_nothing()
    await ws.disconnect()


async def test_live_events_follow_in_order_with_no_duplicates_across_the_seam(
    finished, session_cookie
):
    ws = await opened(connect(f"/ws/runs/{finished.pk}?after=0", session_cookie))
    snapshot = await ws.receive_json_from()
    last = snapshot["last_seq"]
    seqs = [(await ws.receive_json_from())["seq"] for _ in range(last)]
    assert seqs == list(range(1, last + 1))

    # A batch overlapping what the catch-up sent: only the new event goes out.
    already = await sync_to_async(envelopes)(finished, after=last - 2)
    new = await sync_to_async(append)(finished, 1)
    await fanout.group_send(
        eventlog.group_name(finished.pk),
        {"events": [*already, eventlog.envelope(finished.pk, new[0])]},
    )
    event = await ws.receive_json_from()
    assert (event["type"], event["seq"], event["event_type"]) == (
        "event",
        last + 1,
        "context.updated",
    )
    # The same event published again is not sent twice.
    await publish(finished, new)
    assert await ws.receive_nothing()

    more = await sync_to_async(append)(finished, 2)
    await publish(finished, more)
    assert [(await ws.receive_json_from())["seq"] for _ in more] == [last + 2, last + 3]
    assert await ws.receive_nothing()
    await ws.disconnect()


async def test_a_lost_publish_is_filled_from_the_database(finished, session_cookie):
    ws = await opened(connect(f"/ws/runs/{finished.pk}", session_cookie))
    last = (await ws.receive_json_from())["last_seq"]
    await sync_to_async(append)(finished, 2)  # committed, but never published
    assert await ws.receive_nothing()
    later = await sync_to_async(append)(finished, 1)
    await publish(finished, later)
    received = [await ws.receive_json_from() for _ in range(3)]
    assert [e["seq"] for e in received] == [last + 1, last + 2, last + 3]
    assert [e["payload"]["keys"] for e in received] == [[0], [1], [0]]
    assert await ws.receive_nothing()
    await ws.disconnect()


async def test_events_published_by_a_run_reach_the_stream_live(make_run, drive, session_cookie):
    run = await sync_to_async(make_run)([node("ask", "wait_for_approval", {})])
    run = await sync_to_async(drive)(run)
    assert run.status == RunStatus.PAUSED
    ws = await opened(connect(f"/ws/runs/{run.pk}", session_cookie))
    last = (await ws.receive_json_from())["last_seq"]
    await sync_to_async(lifecycle.cancel)(run.pk)
    event = await ws.receive_json_from()
    assert (event["seq"], event["event_type"]) == (last + 1, "run.cancelled")
    await ws.disconnect()


async def test_a_connection_without_credentials_is_closed_with_4401(finished):
    assert await close_code(connect(f"/ws/runs/{finished.pk}")) == 4401


async def test_a_wrong_api_key_is_closed_with_4401_even_with_a_session(finished, session_cookie):
    path = f"/ws/runs/{finished.pk}?token=fmx_nope"
    assert await close_code(connect(path, session_cookie)) == 4401


async def test_an_api_key_is_accepted_in_the_query_or_the_header(finished, api_key):
    for ws in [
        connect(f"/ws/runs/{finished.pk}?token={api_key}"),
        connect(f"/ws/runs/{finished.pk}", (b"authorization", f"Bearer {api_key}".encode())),
    ]:
        await opened(ws)
        assert (await ws.receive_json_from())["type"] == "snapshot"
        await ws.disconnect()


async def test_an_unknown_run_is_closed_with_4404(session_cookie):
    path = "/ws/runs/00000000-0000-0000-0000-000000000000"
    assert await close_code(connect(path, session_cookie)) == 4404


async def test_a_foreign_origin_is_refused(finished, session_cookie):
    foreign = connect(f"/ws/runs/{finished.pk}", session_cookie, (b"origin", b"http://evil.test"))
    assert await close_code(foreign) == "refused"
    other_port = connect(
        f"/ws/runs/{finished.pk}", session_cookie, (b"origin", b"http://testserver:8080")
    )
    assert await close_code(other_port) == "refused"
    same = await opened(
        connect(f"/ws/runs/{finished.pk}", session_cookie, (b"origin", b"http://testserver"))
    )
    assert (await same.receive_json_from())["type"] == "snapshot"
    await same.disconnect()


async def test_many_viewers_of_a_run_share_one_membership_and_all_get_each_event(
    finished, session_cookie
):
    viewers = [await opened(connect(f"/ws/runs/{finished.pk}", session_cookie)) for _ in range(5)]
    lasts = [(await ws.receive_json_from())["last_seq"] for ws in viewers]
    layer = get_channel_layer()
    assert len(layer.groups[eventlog.group_name(finished.pk)]) == 1
    events = await sync_to_async(append)(finished, 2)
    await publish(finished, events)
    for ws, last in zip(viewers, lasts, strict=True):
        received = [await ws.receive_json_from() for _ in range(2)]
        assert [e["seq"] for e in received] == [last + 1, last + 2]
    for ws in viewers:
        await ws.disconnect()
    assert eventlog.group_name(finished.pk) not in layer.groups


# -- the run page's HTML stream ------------------------------------------------------------


async def test_the_page_stream_sends_the_state_and_the_missed_timeline(finished, session_cookie):
    ws = await opened(connect(f"/ws/runs/{finished.pk}/html?after=2", session_cookie))
    html = await ws.receive_from()
    for dom_id in ["run-header", "run-actions", "run-waterfall", "run-graph", "run-context"]:
        assert f'id="{dom_id}"' in html
    assert html.startswith('<ol hx-swap-oob="beforeend:#timeline">')
    assert 'id="event-2"' not in html and 'id="event-3"' in html
    assert f'id="event-{finished.last_seq}"' in html
    # Table parts come alone: the browser drops a <tbody> or <tr> that follows a <section>.
    table = await ws.receive_from()
    assert table.startswith('<tbody id="steps-body" hx-swap-oob="true">')
    assert table.count('class="step-row"') == 2
    assert await ws.receive_nothing()

    more = await sync_to_async(append)(finished, 1)
    await publish(finished, more)
    html = await ws.receive_from()
    assert f'id="event-{finished.last_seq + 1}"' in html
    assert 'id="run-header"' not in html  # unchanged fragments are not sent again
    await ws.disconnect()


async def test_the_page_stream_swaps_changed_steps_and_appends_new_ones(
    make_run, drive, session_cookie
):
    run = await sync_to_async(make_run)([node("ask", "wait_for_approval", {"prompt": "Ok?"})])
    run = await sync_to_async(drive)(run)
    ws = await opened(connect(f"/ws/runs/{run.pk}/html?after={run.last_seq}", session_cookie))
    html = await ws.receive_from()
    assert "Approve" in html and "Ok?" in html
    await ws.receive_from()  # the step table
    step = await sync_to_async(run.steps.get)()

    await sync_to_async(lifecycle.cancel)(run.pk)
    html = await ws.receive_from()
    assert 'id="run-actions"' in html and "Approve" not in html and "Cancel run" not in html
    rows = await ws.receive_from()
    row = f'<tr id="step-row-{step.pk}" class="step-row" data-step-id="ask" hx-swap-oob="true">'
    assert rows.startswith(row)
    assert "status-cancelled" in rows

    await sync_to_async(run.steps.create)(step_id="late", step_type="transform")
    more = await sync_to_async(append)(run, 1)
    await publish(run, more)
    html = await ws.receive_from()
    assert f'id="event-{more[0].seq}"' in html
    rows = await ws.receive_from()
    assert rows.startswith('<tbody hx-swap-oob="beforeend:#steps-body"><tr id="step-row-')
    assert 'data-step-id="late"' in rows
    assert await ws.receive_nothing()
    await ws.disconnect()


async def test_each_page_stream_gets_its_own_csrf_token_in_shared_fragments(
    make_run, drive, client, bob
):
    run = await sync_to_async(make_run)(
        [{"id": "ask", "type": "wait_for_approval", "data": {"config": {}}}]
    )
    run = await sync_to_async(drive)(run)
    await sync_to_async(client.force_login)(bob)
    session = client.cookies["sessionid"].value
    pages = []
    for token in ["tokenA" * 6, "tokenB" * 6]:
        cookie = (b"cookie", f"sessionid={session}; csrftoken={token}".encode())
        ws = await opened(connect(f"/ws/runs/{run.pk}/html?after={run.last_seq}", cookie))
        await ws.receive_from()
        await ws.receive_from()
        pages.append((token, ws))
    # A new approval form appears for both (rendered once): each with its own token.
    await sync_to_async(run.steps.filter(step_id="ask").update)(resume_data=None)
    more = await sync_to_async(append)(run, 1)
    await sync_to_async(run.steps.create)(
        step_id="ask2", step_type="wait_for_approval", status="waiting", waiting_for="approval"
    )
    await publish(run, more)
    for token, ws in pages:
        html = await ws.receive_from()
        assert 'id="run-actions"' in html
        forms = html.count('name="csrfmiddlewaretoken"')
        assert forms == 3  # approve "ask", approve "ask2", cancel
        assert html.count(f'value="{token}"') == forms
        assert "csrfplaceholder" not in html
        await ws.disconnect()


async def test_the_page_stream_needs_credentials(finished):
    assert await close_code(connect(f"/ws/runs/{finished.pk}/html?after=0")) == 4401


# -- across processes, through Redis ---------------------------------------------------------


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


REDIS = "redis://127.0.0.1:6379/4"


async def test_events_from_a_worker_process_reach_the_stream_through_redis(
    make_run, session_cookie, settings, tmp_path
):
    if not _redis_up():
        pytest.skip("needs Redis on 127.0.0.1:6379")
    if settings.DATABASES["default"]["NAME"].startswith("file:memory"):
        pytest.skip("needs a database file another process can open")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS]},
        }
    }
    run = await sync_to_async(make_run)(
        [node("wait", "delay", {"seconds": 0.5}), node("then", "transform", {"mapping": {}})],
        [edge("wait", "then")],
    )
    ws = await opened(connect(f"/ws/runs/{run.pk}", session_cookie))
    assert (await ws.receive_json_from())["last_seq"] == 0
    env = {
        **os.environ,
        "DATABASE_URL": await sync_to_async(_database_url)(),
        "REDIS_URL": REDIS,
        "FLOWMATRX_VAR_DIR": str(tmp_path),
    }
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--name", "stream-test"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        received = []
        while not received or received[-1]["event_type"] != "run.completed":
            received.append(await ws.receive_json_from(timeout=30))
        assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
        assert received[0]["event_type"] == "run.started"
    finally:
        worker.terminate()
        await asyncio.get_running_loop().run_in_executor(None, worker.wait, 20)
        await ws.disconnect()
        layer = get_channel_layer()
        if hasattr(layer, "close_pools"):
            await layer.close_pools()
