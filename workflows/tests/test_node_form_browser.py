"""The node config form in a real browser (Debian's Chromium through Playwright), loaded
the way the canvas island loads it (htmx POST of the node into a panel): a reference is
inserted at the cursor, a template is previewed against the last run, and saving fires
`flowmatrx:node-saved` on the body with the node's new data. Skipped when Chromium or
Playwright is missing, or the test database is in memory."""

import json

import pytest

from engine.statuses import RunStatus, StepStatus
from runs.models import Run, StepRun
from runs.tests.test_run_page_browser import CHROMIUM, browser_page, off_loop, server  # noqa: F401
from workflows.models import Workflow

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")

DEFINITION = {
    "nodes": [
        {"id": "start", "type": "transform", "data": {"config": {"mapping": {"n": 1}}}},
        {"id": "fetch", "type": "http_request", "data": {"config": {"url": "https://x"}}},
    ],
    "edges": [{"id": "e1", "source": "start", "target": "fetch"}],
}


@pytest.fixture
def draft(server, alice):  # noqa: F811  (pytest fixtures, imported)
    """Made before the browser starts: Django refuses queries in Playwright's event loop."""
    workflow = Workflow.objects.create(
        name="Browser form",
        definition=DEFINITION,
        input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        created_by=alice,
    )
    run = Run.objects.create(
        workflow=workflow,
        status=RunStatus.COMPLETED,
        input={"city": "Oslo"},
        context={"input": {"city": "Oslo"}, "start": {"n": 1}},
    )
    StepRun.objects.create(
        run=run, step_id="start", step_type="transform", status=StepStatus.COMPLETED
    )
    return workflow


LOAD_FORM = """([url, fields]) => {
  const panel = document.createElement("div");
  panel.id = "panel";
  document.querySelector("main").prepend(panel);
  window.savedNodes = [];
  document.body.addEventListener("flowmatrx:node-saved", (event) => {
    window.savedNodes.push({node_id: event.detail.node_id, data: event.detail.data});
  });
  return htmx.ajax("POST", url, {target: "#panel", values: fields});
}"""


def test_it_inserts_references_previews_and_saves(draft, browser_page):  # noqa: F811
    workflow = draft
    page = browser_page
    page.goto(f"/workflows/{workflow.pk}/")
    node = DEFINITION["nodes"][1]
    fields = {
        "node_id": "fetch",
        "step_type": "http_request",
        "node_data": json.dumps(node["data"]),
        "definition": json.dumps(DEFINITION),
    }
    page.evaluate(LOAD_FORM, [f"/workflows/{workflow.pk}/builder/node-form", fields])
    url_field = page.locator("#panel [name=config__url]")
    url_field.wait_for()

    url_field.fill("https://example.com/?q=")
    url_field.evaluate("el => el.setSelectionRange(el.value.length, el.value.length)")
    page.click('#panel [data-fm-ref="{{ input.city }}"]')
    assert url_field.input_value() == "https://example.com/?q={{ input.city }}"

    page.click("#panel [data-fm-preview]")
    page.locator("#panel .preview-value").wait_for()
    assert page.inner_text("#panel .preview-value") == "https://example.com/?q=Oslo"

    page.fill("#panel [name=config__headers]", "{broken")
    page.click("#panel .save-node")
    page.locator("#id_config__headers-errors").wait_for()
    assert page.evaluate("window.savedNodes") == []

    page.fill("#panel [name=config__headers]", '{"Accept": "application/json"}')
    page.fill("#panel [name=max_attempts]", "3")
    page.click("#panel .save-node")
    page.locator("#panel .saved-note").wait_for()
    assert page.evaluate("window.savedNodes") == [
        {
            "node_id": "fetch",
            "data": {
                "config": {
                    "url": "https://example.com/?q={{ input.city }}",
                    "headers": {"Accept": "application/json"},
                },
                "max_attempts": 3,
            },
        }
    ]
    assert off_loop(Workflow.objects.get, pk=workflow.pk).definition == DEFINITION


def test_an_expression_field_gets_bare_references(draft, browser_page):  # noqa: F811
    page = browser_page
    page.goto(f"/workflows/{draft.pk}/")
    definition = json.loads(json.dumps(DEFINITION))
    definition["nodes"].append({"id": "check", "type": "condition", "data": {}})
    definition["edges"].append({"id": "e2", "source": "start", "target": "check"})
    fields = {
        "node_id": "check",
        "step_type": "condition",
        "node_data": "{}",
        "definition": json.dumps(definition),
    }
    page.evaluate(LOAD_FORM, [f"/workflows/{draft.pk}/builder/node-form", fields])
    expression = page.locator("#panel [name=config__expression]")
    expression.wait_for()
    expression.click()
    page.click('#panel [data-fm-ref="{{ start.n }}"]')
    page.keyboard.type(" == 1")
    assert expression.input_value() == "start.n == 1"
    page.click("#panel [data-fm-preview]")
    page.locator("#panel .preview-value").wait_for()
    assert page.inner_text("#panel .preview-value") == "true"
