"""The live pages in a real browser (Debian's Chromium through Playwright): the run page
follows a run live, approves a waiting step, catches up after a dropped socket and pages
back through a long timeline; the dashboard shows a run started in another tab appear and
finish. Skipped when Chromium or Playwright is missing, or the test database is in memory."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction

from engine.events import NewEvent
from engine.statuses import EventType, RunStatus, WorkflowStatus
from engine.tests.http_servers import free_port
from runs import eventlog, lifecycle
from runs.models import Run
from runs.tests.conftest import edge, node
from runs.tests.test_worker import ROOT, _database_url
from workflows.models import Workflow

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@pytest.fixture
def server(transactional_db, tmp_path):
    """`manage.py serve` (daphne + the embedded worker, in-memory layer) on the test database."""
    if settings.DATABASES["default"]["NAME"].startswith("file:memory"):
        pytest.skip("needs a database file another process can open")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": "",
        "SECRET_KEY": settings.SECRET_KEY,
        "FLOWMATRX_VAR_DIR": str(tmp_path),
    }
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-migrate", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail((tmp_path / "serve.log").read_text())
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def chromium_context(base_url: str):
    """A fresh headless Chromium context on `base_url`. Enter it after the fixture's
    database work: Playwright's sync API runs an event loop in this thread."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(base_url=base_url)
        try:
            yield context
        finally:
            context.close()
            browser.close()


@pytest.fixture
def browser_page(server, client, bob):
    client.force_login(bob)
    with chromium_context(server) as context:
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server}]
        )
        yield context.new_page()


def off_loop(fn, *args, **kwargs):
    """Run a database call in a thread: Playwright's sync API keeps an event loop running in
    this one, and Django refuses sync queries there."""

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def fresh(run):
    return off_loop(Run.objects.get, pk=run.pk)


def timeline_seqs(page) -> list[int]:
    return [
        int(s)
        for s in page.eval_on_selector_all(
            "#timeline > li[data-seq]", "els => els.map(e => e.dataset.seq)"
        )
    ]


@pytest.fixture
def approval(make_run):
    return make_run(
        [
            node("ask", "wait_for_approval", {"prompt": "Ship it?"}),
            node("after", "transform", {"mapping": {"approved": "{{ ask.approved }}"}}),
        ],
        [edge("ask", "after")],
    )


@pytest.fixture
def approval_then_delays(make_run):
    return make_run(
        [
            node("ask", "wait_for_approval", {}),
            node("d1", "delay", {"seconds": 0.3}),
            node("d2", "delay", {"seconds": 0.3}),
        ],
        [edge("ask", "d1"), edge("d1", "d2")],
    )


def test_it_approves_in_the_browser_and_watches_the_run_finish(approval, browser_page):
    run = approval
    page = browser_page
    page.goto(f"/runs/{run.pk}/")
    expect = playwright_api.expect
    expect(page.locator("#run-live")).to_have_text("live")
    expect(page.get_by_role("button", name="Approve")).to_be_visible(timeout=15_000)
    page.fill("input[name=comment]", "looks good")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("[data-run-status]")).to_have_text("completed", timeout=15_000)
    expect(page.locator('tr[data-step-id="after"] .status')).to_have_text("completed")
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert timeline_seqs(page) == list(range(1, run.last_seq + 1))
    assert re.search(r"run\.completed", page.locator("#timeline").inner_text())


def test_a_dropped_socket_catches_up_after_reconnecting(approval_then_delays, browser_page):
    run = approval_then_delays
    page = browser_page
    page.goto(f"/runs/{run.pk}/")
    expect = playwright_api.expect
    expect(page.locator("#run-live")).to_have_text("live")
    expect(page.get_by_role("button", name="Approve")).to_be_visible(timeout=15_000)
    # Drop the socket as a network failure would (code 1006), and come back 2 s later.
    page.evaluate(
        """() => {
        htmx.config.wsReconnectDelay = () => 2000;
        const socket = htmx.find('#run-page')['htmx-internal-data'].webSocket.socket;
        const onclose = socket.onclose;
        socket.onclose = null;
        socket.close();
        onclose({code: 1006});
    }"""
    )
    expect(page.locator("#run-live")).to_have_text("reconnecting…")
    off_loop(lifecycle.resume, run.pk, "ask", {"approved": True}, decided_by="bob")
    expect(page.locator("[data-run-status]")).to_have_text("completed", timeout=15_000)
    expect(page.locator("#run-live")).to_have_text("live")
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert timeline_seqs(page) == list(range(1, run.last_seq + 1))
    expect(page.locator('tr[data-step-id="d2"] .status')).to_have_text("completed")


@pytest.fixture
def greeting_with_delays(transactional_db, alice):
    return Workflow.objects.create(
        name="Greeting",
        definition={
            "nodes": [
                node("greet", "transform", {"mapping": {"text": "hi {{ input.name }}"}}),
                node("d1", "delay", {"seconds": 4}),
                node("shout", "transform", {"mapping": {"text": "{{ greet.text }}!"}}),
            ],
            "edges": [edge("greet", "d1"), edge("d1", "shout")],
            "settings": {},
        },
        input_schema={
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}},
        },
        status=WorkflowStatus.PUBLISHED,
        created_by=alice,
    )


def test_it_starts_a_run_from_the_workflow_page_and_watches_it_finish(
    greeting_with_delays, browser_page
):
    workflow = greeting_with_delays
    page = browser_page
    page.goto(f"/workflows/{workflow.pk}/")
    expect = playwright_api.expect
    page.fill("input[name=input-name]", "Ada")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]+/$"))
    expect(page.locator("#run-live")).to_have_text("live")
    # Anything set on this window is lost by a reload: it proves the page was live-updated.
    page.evaluate("() => { window.notReloaded = true; }")
    # The delay keeps the run going well past the page load, so the rest arrives live.
    assert page.locator('tr[data-step-id="shout"] .status').count() == 0 or (
        page.locator('tr[data-step-id="shout"] .status').inner_text() != "completed"
    )
    expect(page.locator('tr[data-step-id="shout"] .status')).to_have_text(
        "completed", timeout=15_000
    )
    expect(page.locator("[data-run-status]")).to_have_text("completed")
    for step_id in ("greet", "d1"):
        expect(page.locator(f'tr[data-step-id="{step_id}"] .status')).to_have_text("completed")
    assert page.evaluate("() => window.notReloaded") is True
    run = off_loop(Run.objects.get, workflow_id=workflow.pk)
    assert page.url.endswith(f"/runs/{run.pk}/")
    assert run.input == {"name": "Ada"}
    assert run.status == RunStatus.COMPLETED
    assert timeline_seqs(page) == list(range(1, run.last_seq + 1))


def test_a_run_appears_on_the_dashboard_and_finishes_there(greeting_with_delays, browser_page):
    workflow = greeting_with_delays
    dashboard = browser_page
    expect = playwright_api.expect
    dashboard.goto("/")
    expect(dashboard.locator("#dashboard-live")).to_have_text("live")
    expect(dashboard.locator("#dashboard-recent")).to_contain_text("No runs yet.")
    dashboard.evaluate("() => { window.notReloaded = true; }")

    other = dashboard.context.new_page()
    other.goto(f"/workflows/{workflow.pk}/")
    other.fill("input[name=input-name]", "Ada")
    other.get_by_role("button", name="Run", exact=True).click()
    other.wait_for_url(re.compile(r"/runs/[0-9a-f-]+/$"))
    run = off_loop(Run.objects.get, workflow_id=workflow.pk)

    row = dashboard.locator(f"#dashboard-recent tr#run-{run.pk}")
    expect(row).to_be_visible(timeout=15_000)
    # The run's delay step keeps it going well past its start: it is seen unfinished first.
    expect(row.locator(".status")).to_have_text(re.compile("pending|running"))
    expect(row.locator(".status")).to_have_text("completed", timeout=15_000)
    completed = dashboard.locator('#dashboard-counts [data-status="completed"] strong')
    expect(completed).to_have_text("1")
    assert dashboard.evaluate("() => window.notReloaded") is True


@pytest.fixture
def long_finished_run(transactional_db, alice):
    """A completed run with 250 events (nothing for the embedded worker to pick up)."""
    workflow = Workflow.objects.create(
        name="Long",
        definition={"nodes": [node("a", "transform", {"mapping": {}})], "edges": []},
        status=WorkflowStatus.PUBLISHED,
        created_by=alice,
    )
    run = Run.objects.create(workflow=workflow, status=RunStatus.COMPLETED, created_by=alice)
    with transaction.atomic():
        eventlog.append(
            run.pk,
            [
                NewEvent(EventType.CONTEXT_UPDATED, {"step_id": "a", "keys": [str(i)]}, "a")
                for i in range(250)
            ],
        )
    return run


def test_it_loads_earlier_events_of_a_long_timeline(long_finished_run, browser_page):
    page = browser_page
    page.goto(f"/runs/{long_finished_run.pk}/")
    expect = playwright_api.expect
    expect(page.locator("#run-live")).to_have_text("live")
    assert timeline_seqs(page) == list(range(51, 251))
    page.get_by_role("button", name="Load 50 earlier events").click()
    expect(page.locator("#timeline > li[data-seq]")).to_have_count(250)
    assert timeline_seqs(page) == list(range(1, 251))
    expect(page.locator("#timeline-earlier")).to_have_count(0)
