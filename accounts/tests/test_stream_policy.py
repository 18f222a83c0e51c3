"""Run streams (WebSockets) per role: every role may watch; credentials and scopes bound
it; the run page's stream shows the actions only to roles that may use them."""

import pytest
from channels.db import database_sync_to_async as sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import ApiKey
from accounts.users import set_active
from engine.statuses import RunStatus
from flowmatrx.asgi import application
from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def paused_run(workflow, alice):
    return Run.objects.create(workflow=workflow, status=RunStatus.PAUSED, created_by=alice)


@pytest.fixture
def cookie_of(client):
    def cookie(user):
        client.force_login(user)
        return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    return cookie


def connect(path, *headers):
    return WebsocketCommunicator(application, path, headers=[(b"host", b"testserver"), *headers])


async def first_message(communicator):
    """The first thing the server sends: a close code, or the text of a message."""
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output()
    if message["type"] == "websocket.close":
        await communicator.wait()
        return message.get("code")
    await communicator.disconnect()
    return message["text"]


@pytest.mark.parametrize("stream", ["", "/html"])
@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
async def test_every_role_may_watch_a_run(paused_run, cookie_of, users_by_role, role, stream):
    cookie = await sync_to_async(cookie_of)(users_by_role[role])
    text = await first_message(connect(f"/ws/runs/{paused_run.pk}{stream}", cookie))
    assert isinstance(text, str) and ("snapshot" in text or "run-header" in text)


async def test_anonymous_and_deactivated_users_are_refused(paused_run, cookie_of, bob):
    assert await first_message(connect(f"/ws/runs/{paused_run.pk}")) == 4401
    cookie = await sync_to_async(cookie_of)(bob)
    await sync_to_async(set_active)(bob, False)
    assert await first_message(connect(f"/ws/runs/{paused_run.pk}", cookie)) == 4401


@pytest.mark.parametrize(
    ("role", "scopes", "expected"),
    [
        ("viewer", ["read"], "snapshot"),
        ("admin", ["run", "manage"], 4403),
        ("member", ["run"], 4403),
    ],
)
async def test_a_key_needs_the_read_scope(paused_run, users_by_role, role, scopes, expected):
    key = (await sync_to_async(ApiKey.create)(users_by_role[role], "ws", scopes))[1]
    for path in (
        f"/ws/runs/{paused_run.pk}?token={key}",
        f"/ws/runs/{paused_run.pk}/html?token={key}",
    ):
        answer = await first_message(connect(path))
        assert isinstance(answer, str) if expected == "snapshot" else answer == expected


async def test_a_revoked_key_is_refused(paused_run, vera):
    key_row, key = await sync_to_async(ApiKey.create)(vera, "ws", ["read"])
    await sync_to_async(key_row.revoke)()
    assert await first_message(connect(f"/ws/runs/{paused_run.pk}?token={key}")) == 4401


async def test_the_page_stream_shows_actions_to_members_only(paused_run, cookie_of, bob, vera):
    async def page_fragments(user):
        cookie = await sync_to_async(cookie_of)(user)
        ws = connect(f"/ws/runs/{paused_run.pk}/html?after=0", cookie)
        connected, _ = await ws.connect()
        assert connected
        received = [await ws.receive_from() for _ in range(2)]
        await ws.disconnect()
        return "".join(received)

    assert "Cancel run" in await page_fragments(bob)
    viewer_html = await page_fragments(vera)
    assert 'id="run-actions"' in viewer_html and "Cancel run" not in viewer_html
