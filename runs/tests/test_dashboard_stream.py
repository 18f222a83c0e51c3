"""The dashboard's live stream: auth, the fragments on connect, refreshes when runs change
status (created, started, waiting, finished), and bursts folded into few refreshes."""

import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from engine.statuses import RunStatus
from flowmatrx.asgi import application
from runs import dashboard, eventlog, lifecycle
from runs.tests.conftest import edge, node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def session_cookie(client, bob):
    client.force_login(bob)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def connect(*headers):
    return WebsocketCommunicator(
        application, "/ws/dashboard", headers=[(b"host", b"testserver"), *headers]
    )


async def opened(*headers):
    ws = connect(*headers)
    connected, _ = await ws.connect()
    assert connected
    return ws


def sections(html: str) -> list[str]:
    return re.findall(r'<section[^>]* id="(dashboard-[a-z]+)" hx-swap-oob="true"', html)


def count(html: str, status: str) -> int:
    return int(re.search(rf"<strong>(\d+)</strong> {status}</a>", html).group(1))


async def test_it_sends_every_fragment_on_connect(session_cookie):
    ws = await opened(session_cookie)
    html = await ws.receive_from()
    assert sections(html) == [
        "dashboard-counts",
        "dashboard-approvals",
        "dashboard-recent",
        "dashboard-failures",
    ]
    assert "Nothing is waiting for an approval." in html
    assert await ws.receive_nothing()
    await ws.disconnect()


async def test_a_new_run_and_its_end_reach_the_dashboard(session_cookie, make_run, drive):
    ws = await opened(session_cookie)
    await ws.receive_from()
    run = await sync_to_async(make_run)([node("ask", "wait_for_approval", {"prompt": "Ok?"})])
    html = await ws.receive_from()
    assert sections(html) == ["dashboard-counts", "dashboard-recent"]  # nothing else changed
    assert count(html, "pending") == 1
    assert f'<tr id="run-{run.pk}">' in html and "status-pending" in html

    # The worker starts it and it waits for an approval (published by the store).
    await sync_to_async(drive)(run)
    html = ""
    while "Ok?" not in html:
        html = await ws.receive_from(timeout=5)
    assert "dashboard-approvals" in sections(html)
    assert count(html, "paused") == 1

    await sync_to_async(lifecycle.cancel)(run.pk)
    html = await ws.receive_from(timeout=5)
    assert count(html, "cancelled") == 1 and count(html, "paused") == 0
    assert "Nothing is waiting for an approval." in html
    await ws.disconnect()


async def test_a_failure_is_listed_among_the_failures(session_cookie, make_run, drive):
    ws = await opened(session_cookie)
    await ws.receive_from()
    run = await sync_to_async(make_run)(
        [node("a", "transform", {"mapping": {}}), node("boom", "test_crash", {})],
        [edge("a", "boom")],
    )
    await ws.receive_from()  # created
    assert (await sync_to_async(drive)(run)).status == RunStatus.FAILED
    html = ""
    while "dashboard-failures" not in sections(html):
        html = await ws.receive_from(timeout=5)
    failures = html[html.index('id="dashboard-failures"') :]
    assert f'<tr id="run-{run.pk}">' in failures and "status-failed" in failures
    await ws.disconnect()


async def test_a_burst_of_changes_is_folded_into_at_most_two_refreshes(session_cookie, workflow):
    ws = await opened(session_cookie)
    await ws.receive_from()
    runs = await sync_to_async(lambda: [lifecycle.start_run(workflow, {}) for _ in range(5)])()
    for _ in range(20):
        await eventlog.announce(runs[0].pk)
    refreshes = [await ws.receive_from()]
    while not await ws.receive_nothing(timeout=3 * dashboard.DashboardFeed.interval):
        refreshes.append(await ws.receive_from())
    assert 1 <= len(refreshes) <= 2
    assert count(refreshes[-1], "pending") == 5
    await ws.disconnect()


async def test_it_needs_credentials_and_the_same_origin(session_cookie):
    ws = connect()
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_output())["code"] == 4401
    await ws.wait()
    foreign = connect(session_cookie, (b"origin", b"http://evil.test"))
    connected, _ = await foreign.connect()
    assert not connected


def test_the_page_connects_to_the_stream_and_renders_the_same_partials(client, bob, workflow):
    client.force_login(bob)
    lifecycle.start_run(workflow, {})
    html = client.get("/").content.decode()
    assert 'ws-connect="/ws/dashboard"' in html and "/static/vendor/htmx-ext-ws.js" in html
    for dom_id, fragment in dashboard.fragments().items():
        inline = fragment.replace(' hx-swap-oob="true"', "")
        assert inline.strip() in html, dom_id
