"""The builder in a real browser (Debian's Chromium through Playwright, against `manage.py
serve` with its in-process worker): build a 3-step workflow from the palette, configure it
through the node form, connect it, save, see and fix a validation error, publish, run, and
watch the run page's canvas follow the run live. Skipped when Chromium or Playwright is
missing, or the test database is in memory."""

import re

import pytest

from engine.statuses import RunStatus, WorkflowStatus
from engine.tests.http_servers import Reply
from runs import lifecycle
from runs.models import Run
from runs.tests import test_run_page_browser as run_page_browser
from runs.tests.conftest import edge
from runs.tests.conftest import node as step
from runs.tests.test_run_page_browser import CHROMIUM, off_loop, playwright_api
from workflows.models import Workflow

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
expect = playwright_api.expect

# The run page's browser fixtures: `manage.py serve` on the test database, a signed-in page.
server = run_page_browser.server
browser_page = run_page_browser.browser_page


@pytest.fixture
def private_networks_allowed(monkeypatch):
    """Let the server's HTTP steps reach the loopback test server (set before `server`
    starts, which passes its environment on)."""
    monkeypatch.setenv("FLOWMATRX_ALLOW_PRIVATE_NETWORKS", "1")


@pytest.fixture
def sample_functions(monkeypatch):
    """Functions the server's function_call steps (and the palette) offer."""
    monkeypatch.setenv("FLOWMATRX_FUNCTIONS", "engine.tests.sample_functions")


@pytest.fixture
def target(start):
    """The API the http_request step calls."""
    return start(lambda request: Reply(200, {"orders": 3}))


def re_word(word):
    """A class attribute that has `word` among its classes."""
    return re.compile(rf"(^|\s){re.escape(word)}(\s|$)")


def node(page, node_id):
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def drop(page, step_type, x, y):
    page.locator(f'.fm-palette-item[data-step-type="{step_type}"]').drag_to(
        page.locator(".fm-canvas .react-flow__pane"), target_position={"x": x, "y": y}
    )


def connect(page, source, target):
    page.locator(f'.react-flow__node[data-id="{source}"] .react-flow__handle.source').drag_to(
        page.locator(f'.react-flow__node[data-id="{target}"] .react-flow__handle.target')
    )


def configure(page, node_id, fields):
    """Select the node, fill its config form in the side panel and save it."""
    node(page, node_id).click()
    panel = page.locator("#node-panel")
    form = panel.locator("form")
    # Generous timeouts: the server renders the form while other tests load the machine.
    expect(form.locator('input[name="node_id"]')).to_have_value(node_id, timeout=15_000)
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.locator('[type="submit"]').first.click()
    expect(panel).to_contain_text("saved", ignore_case=True, timeout=15_000)


def saved_definition(workflow_id):
    return off_loop(Workflow.objects.get, pk=workflow_id).definition


def test_build_configure_validate_publish_run_and_watch_live(
    private_networks_allowed, target, browser_page
):
    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 950})
    page.goto("/workflows/")
    page.get_by_label("New workflow name").fill("Order report")
    page.get_by_role("button", name="New workflow").click()
    page.wait_for_url("**/builder")
    workflow_id = page.url.rstrip("/").split("/")[-2]
    expect(page.locator('.fm-palette-item[data-step-type="http_request"]')).to_be_visible()

    # Three steps dragged from the palette, each selected (its form opens) when dropped.
    drop(page, "http_request", 60, 140)
    expect(node(page, "http_request_1")).to_be_visible()
    configure(
        page,
        "http_request_1",
        {"label": "Fetch orders", "config__url": f"{target.url}/orders"},
    )
    expect(node(page, "http_request_1").locator(".fm-node-title")).to_have_text("Fetch orders")
    drop(page, "wait_for_approval", 380, 140)
    configure(page, "wait_for_approval_1", {"config__prompt": "Send the report?"})
    drop(page, "transform", 700, 140)
    expect(node(page, "transform_1")).to_be_visible()

    connect(page, "http_request_1", "wait_for_approval_1")
    connect(page, "wait_for_approval_1", "transform_1")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    expect(page.locator("#builder-canvas")).to_have_attribute("data-dirty", "true")

    # Saved with the transform's mapping missing: the node is outlined and listed.
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".fm-message")).to_contain_text("Saved, with 1 problem")
    expect(page.locator("#builder-canvas")).to_have_attribute("data-dirty", "false")
    expect(node(page, "transform_1").locator(".fm-node")).to_have_class(re_word("fm-invalid"))
    expect(node(page, "transform_1").locator(".fm-node-problem")).to_contain_text("mapping")
    problem = page.locator('.fm-problems li[data-node-id="transform_1"]')
    expect(problem).to_be_visible()
    definition = saved_definition(workflow_id)
    assert [n["id"] for n in definition["nodes"]] == [
        "http_request_1",
        "wait_for_approval_1",
        "transform_1",
    ]
    assert {(e["source"], e["target"]) for e in definition["edges"]} == {
        ("http_request_1", "wait_for_approval_1"),
        ("wait_for_approval_1", "transform_1"),
    }
    assert definition["nodes"][0]["data"]["config"]["url"] == f"{target.url}/orders"

    # Fixed through the form reached from the problem list; saved clean; published.
    problem.get_by_role("button").click()
    expect(node(page, "transform_1")).to_have_class(re_word("selected"))
    configure(
        page, "transform_1", {"config__mapping": '{"orders": "{{ http_request_1.body.orders }}"}'}
    )
    expect(page.locator("#builder-canvas")).to_have_attribute("data-dirty", "true")
    page.keyboard.press("Escape")
    page.locator(".fm-canvas .react-flow__pane").click(position={"x": 20, "y": 400})
    page.keyboard.press("Control+s")
    expect(page.locator(".fm-message")).to_have_text("Saved.")
    expect(page.locator(".fm-node.fm-invalid")).to_have_count(0)
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("[data-workflow-status]")).to_have_text("published")
    assert off_loop(Workflow.objects.get, pk=workflow_id).status == WorkflowStatus.PUBLISHED

    # Run from the dialog; the run page's canvas follows the run: the approval waits, is
    # approved on the page, and the rest of the run arrives live.
    page.get_by_role("button", name="Run…").click()
    page.locator("#run-dialog").get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url("**/runs/*/")
    canvas = page.locator("#run-canvas")
    expect(canvas.locator("[data-canvas-connection]")).to_have_text("live")

    def status(step_id):
        return canvas.locator(f'.react-flow__node[data-id="{step_id}"] [data-step-status]')

    expect(status("wait_for_approval_1")).to_have_text("waiting", timeout=15_000)
    expect(status("http_request_1")).to_have_text("completed")
    expect(status("transform_1")).to_have_text("pending")
    page.evaluate("() => { window.notReloaded = true; }")
    page.get_by_role("button", name="Approve").click()
    expect(status("wait_for_approval_1")).to_have_text("completed", timeout=15_000)
    expect(status("transform_1")).to_have_text("completed", timeout=15_000)
    expect(canvas.locator(".fm-run-canvas")).to_have_attribute(
        "data-canvas-run-status", "completed"
    )
    assert page.evaluate("() => window.notReloaded") is True
    run = off_loop(Run.objects.get, workflow_id=workflow_id)
    assert run.status == RunStatus.COMPLETED
    assert run.context["transform_1"] == {"orders": 3}
    assert [r.path for r in target.requests] == ["/orders"]
    assert run.context["http_request_1"]["body"] == {"orders": 3}


@pytest.fixture
def published_v1(transactional_db, alice):
    def step(node_id, x, mapping):
        return {
            "id": node_id,
            "type": "transform",
            "position": {"x": x, "y": 60},
            "data": {"label": node_id.upper(), "config": {"mapping": mapping}},
        }

    workflow = Workflow.objects.create(
        name="Pipeline",
        definition={
            "nodes": [step("a", 40, {"x": 1}), step("b", 320, {"y": 2})],
            "edges": [{"id": "a-b", "source": "a", "target": "b"}],
            "viewport": {"x": 0, "y": 0, "zoom": 1},
            "settings": {},
        },
        created_by=alice,
    )
    return workflow.publish()


def node_ids(page):
    return page.locator(".fm-canvas .react-flow__node").evaluate_all(
        "els => els.map(e => e.dataset.id)"
    )


def test_edit_a_published_workflow_as_a_new_draft_and_compare_the_versions(
    sample_functions, published_v1, browser_page
):
    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 950})
    page.goto(f"/workflows/{published_v1.pk}/builder")
    expect(page.locator("[data-workflow-status]")).to_have_text("published")
    expect(page.locator(".fm-builder")).to_have_attribute("data-locked", "true")
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    node(page, "a").click()
    page.keyboard.press("Delete")
    assert node_ids(page) == ["a", "b"]

    page.get_by_role("button", name="Edit as new draft").click()
    page.wait_for_url(lambda url: str(published_v1.pk) not in url)
    draft = off_loop(Workflow.objects.get, lineage=published_v1.lineage, version=2)
    assert page.url.endswith(f"/workflows/{draft.pk}/builder")
    expect(page.locator("[data-workflow-status]")).to_have_text("draft")
    expect(page.get_by_label("Version", exact=True)).to_have_value(str(draft.pk))

    # Delete, undo, redo.
    node(page, "a").click()
    page.keyboard.press("Delete")
    assert node_ids(page) == ["b"]
    expect(page.locator(".react-flow__edge")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(page.locator(".fm-canvas .react-flow__node")).to_have_count(2)
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    page.keyboard.press("Control+y")
    expect(page.locator(".fm-canvas .react-flow__node")).to_have_count(1)

    # Copy and paste a node (a fresh id, the same data), multi-select with Ctrl+A.
    node(page, "b").click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(node(page, "b_1")).to_be_visible()
    page.keyboard.press("Control+a")
    expect(page.locator(".fm-canvas .react-flow__node.selected")).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(page.locator(".fm-canvas .react-flow__node")).to_have_count(1)

    # A registered function from the palette is a function_call node with its name set.
    page.get_by_label("Search steps").fill("double")
    expect(page.locator(".fm-palette-item")).to_have_count(1)
    page.locator('.fm-palette-item[data-function="tests.sample.double"]').drag_to(
        page.locator(".fm-canvas .react-flow__pane"), target_position={"x": 520, "y": 420}
    )
    function_node = node(page, "tests_sample_double_1")
    expect(function_node.locator(".fm-node-meta")).to_contain_text("function_call")
    expect(page.locator('#node-panel [name="config__function"]')).to_have_value(
        "tests.sample.double"
    )
    page.locator("#node-panel").click()
    function_node.click()
    page.keyboard.press("Delete")
    expect(function_node).to_have_count(0)
    page.get_by_label("Search steps").fill("")

    # A condition whose branches carry sourceHandle "true" / "false".
    drop(page, "condition", 520, 300)
    drop(page, "delay", 820, 200)
    drop(page, "transform", 820, 420)
    configure(page, "condition_1", {"config__expression": "input.go == true"})
    configure(page, "delay_1", {"config__seconds": "0"})
    configure(page, "transform_1", {"config__mapping": '{"z": 3}'})
    connect(page, "b", "condition_1")
    for handle, target_id in (("true", "delay_1"), ("false", "transform_1")):
        branch = node(page, "condition_1").locator(f'.react-flow__handle[data-handleid="{handle}"]')
        branch.drag_to(node(page, target_id).locator(".react-flow__handle.target"))
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    configure(page, "b", {"label": "Bee"})
    page.get_by_role("button", name="Auto-layout").click()
    page.keyboard.press("Control+s")
    expect(page.locator(".fm-message")).to_have_text("Saved.")
    edges = {
        (e["source"], e["target"], e.get("sourceHandle"))
        for e in off_loop(Workflow.objects.get, pk=draft.pk).definition["edges"]
    }
    assert edges == {
        ("b", "condition_1", None),
        ("condition_1", "delay_1", "true"),
        ("condition_1", "transform_1", "false"),
    }

    # Compared with v1: what the draft added, changed and removed, drawn on the canvas.
    page.get_by_label("Compare with", exact=True).select_option(str(published_v1.pk))
    expect(page.locator(".fm-message")).to_contain_text("Compared with version 1")
    expect(node(page, "condition_1").locator(".fm-node")).to_have_class(re_word("fm-diff-added"))
    changed = node(page, "b").locator(".fm-node")
    expect(changed).to_have_class(re_word("fm-diff-changed"))
    expect(changed.locator(".fm-node-diffnote")).to_contain_text("label")
    expect(node(page, "a").locator(".fm-node")).to_have_class(re_word("fm-diff-removed"))
    expect(page.locator(".fm-builder")).to_have_attribute("data-locked", "true")
    page.get_by_role("button", name="Close the comparison").click()
    expect(node(page, "a")).to_have_count(0)
    expect(page.locator(".fm-builder")).to_have_attribute("data-locked", "false")
    expect(page.locator("#builder-canvas")).to_have_attribute("data-dirty", "false")
    assert [n["id"] for n in off_loop(Workflow.objects.get, pk=draft.pk).definition["nodes"]] == [
        "b",
        "condition_1",
        "delay_1",
        "transform_1",
    ]

    # Duplicate: a new workflow, opened in the builder.
    page.get_by_role("button", name="Duplicate").click()
    page.wait_for_url(lambda url: str(draft.pk) not in url and url.endswith("/builder"))
    copy = off_loop(Workflow.objects.get, name="Pipeline (copy)")
    assert page.url.endswith(f"/workflows/{copy.pk}/builder")
    assert (
        copy.lineage != draft.lineage
        and copy.definition == off_loop(Workflow.objects.get, pk=draft.pk).definition
    )

    # Unsaved changes: marked, and leaving the page asks first.
    expect(page.locator("#builder-canvas")).to_have_attribute("data-dirty", "false")
    drop(page, "delay", 300, 480)
    expect(page.locator("#builder-canvas")).to_have_attribute("data-dirty", "true")
    expect(page.locator(".fm-save-state")).to_have_text("Unsaved changes")
    assert page.title().startswith("● ")
    with page.expect_event("dialog") as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.dismiss()
    expect(page.locator("#builder-canvas")).to_be_visible()


@pytest.fixture
def flaky_target(start):
    """Answers 503 twice, then 200 on /flaky; 404 anywhere else."""
    calls = []

    def app(request):
        if request.path != "/flaky":
            return Reply(404, {"error": "no such thing"})
        calls.append(request.path)
        return Reply(503, "busy") if len(calls) <= 2 else Reply(200, {"ok": True})

    return start(app)


@pytest.fixture
def branching_run(transactional_db, alice, flaky_target):
    """ask (approval) -> flaky (2 retries) -> cond (false) -> yes (skipped) / no; and
    lost (404, on_error continue: failed, the run goes on)."""
    retry = {"max_attempts": 3, "backoff_base": 0}
    workflow = Workflow.objects.create(
        name="Branches",
        definition={
            "nodes": [
                step("ask", "wait_for_approval", {}),
                step("flaky", "http_request", {"url": f"{flaky_target.url}/flaky"}, **retry),
                step("lost", "http_request", {"url": f"{flaky_target.url}/x"}, on_error="continue"),
                step("cond", "condition", {"expression": "flaky.status_code == 404"}),
                step("yes", "transform", {"mapping": {"branch": "yes"}}),
                step("no", "transform", {"mapping": {"branch": "no"}}),
            ],
            "edges": [
                edge("ask", "flaky"),
                edge("ask", "lost"),
                edge("flaky", "cond"),
                edge("cond", "yes", "true"),
                edge("cond", "no", "false"),
            ],
            "settings": {},
        },
        created_by=alice,
    ).publish()
    return lifecycle.start_run(workflow, {}, created_by=alice)


def test_the_run_canvas_shows_statuses_retries_and_branches_live(
    private_networks_allowed, branching_run, browser_page
):
    page = browser_page
    # Keep every socket the page opens, so the test can drop the canvas's JSON stream.
    page.add_init_script(
        """(() => {
        const Native = window.WebSocket;
        window.openedSockets = [];
        window.WebSocket = function (url, protocols) {
            const socket = new Native(url, protocols);
            window.openedSockets.push(socket);
            return socket;
        };
        window.WebSocket.prototype = Native.prototype;
        Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
    })()"""
    )
    page.goto(f"/runs/{branching_run.pk}/")
    canvas = page.locator("#run-canvas")
    connection = canvas.locator("[data-canvas-connection]")
    expect(connection).to_have_text("live")
    expect(page.locator(".canvas-fallback")).to_be_hidden()

    def status(step_id):
        return canvas.locator(f'.react-flow__node[data-id="{step_id}"] [data-step-status]')

    expect(status("ask")).to_have_text("waiting", timeout=15_000)
    expect(status("flaky")).to_have_text("pending")
    last_seq = off_loop(Run.objects.get, pk=branching_run.pk).last_seq

    # The stream drops; the run goes on meanwhile; the canvas reconnects with ?after=.
    page.evaluate(
        """() => window.openedSockets
            .filter(s => !s.url.includes("/html") && s.readyState === 1)
            .forEach(s => s.close())"""
    )
    expect(connection).to_have_text("reconnecting…")
    off_loop(lifecycle.resume, branching_run.pk, "ask", {"approved": True}, decided_by="bob")
    expect(connection).to_have_text("live", timeout=15_000)
    json_streams = page.evaluate(
        "() => window.openedSockets.map(s => s.url).filter(u => !u.includes('/html'))"
    )
    after = re.search(rf"/ws/runs/{branching_run.pk}\?after=(\d+)$", json_streams[-1])
    assert after and 0 < int(after.group(1)) <= last_seq, json_streams
    expect(status("no")).to_have_text("completed", timeout=15_000)
    expect(status("ask")).to_have_text("completed")
    expect(status("flaky")).to_have_text("completed")
    retries = canvas.locator('.react-flow__node[data-id="flaky"] .fm-badge-retry')
    expect(retries).to_have_text("retry 2")
    expect(status("cond")).to_have_text("completed")
    expect(status("yes")).to_have_text("skipped")
    expect(status("lost")).to_have_text("failed")
    expect(canvas.locator('.react-flow__node[data-id="lost"] .fm-node')).to_have_class(
        re_word("fm-status-failed")
    )
    expect(canvas.locator(".fm-run-canvas")).to_have_attribute(
        "data-canvas-run-status", "completed"
    )
    assert off_loop(Run.objects.get, pk=branching_run.pk).status == RunStatus.COMPLETED
    # The same statuses from a fresh snapshot (a reload), not only from live events.
    page.reload()
    expect(status("yes")).to_have_text("skipped")
    expect(canvas.locator('.react-flow__node[data-id="flaky"] .fm-badge-retry')).to_have_text(
        "retry 2"
    )
