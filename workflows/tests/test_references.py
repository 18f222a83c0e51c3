"""The reference picker's contents and the template preview against the last run."""

from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from engine.graph import Graph
from engine.statuses import RunStatus, StepStatus
from runs.models import Run, StepRun
from workflows.models import Workflow
from workflows.references import MAX_STEPS, last_run, preview_context, reference_picker

DEFINITION = {
    "nodes": [
        {"id": "fetch", "type": "http_request", "data": {"config": {"url": "https://x"}}},
        {
            "id": "slug",
            "type": "function_call",
            "data": {"label": "Slug", "config": {"function": "text.slugify", "args": {}}},
        },
        {"id": "shape", "type": "transform", "data": {"config": {"mapping": {"n-1": 1, "ok": 2}}}},
        {"id": "end", "type": "delay", "data": {"config": {"seconds": 0}}},
        {"id": "side", "type": "delay", "data": {"config": {"seconds": 0}}},
    ],
    "edges": [
        {"id": "e1", "source": "fetch", "target": "slug"},
        {"id": "e2", "source": "slug", "target": "shape"},
        {"id": "e3", "source": "shape", "target": "end"},
        {"id": "e4", "source": "side", "target": "fetch"},
    ],
}
GRAPH = Graph.from_definition(DEFINITION)


@pytest.fixture
def draft(alice):
    return Workflow.objects.create(
        name="Refs",
        definition=DEFINITION,
        input_schema={
            "type": "object",
            "properties": {"city": {"type": "string", "description": "Where"}},
        },
        created_by=alice,
    )


def finished_run(workflow, context, *, completed=True, **fields):
    run = Run.objects.create(
        workflow=workflow,
        status=RunStatus.COMPLETED,
        input=context.get("input", {}),
        context=context,
        **fields,
    )
    if completed:
        StepRun.objects.create(
            run=run,
            step_id="fetch",
            step_type="http_request",
            status=StepStatus.COMPLETED,
            output=context.get("fetch"),
        )
    return run


def paths(groups):
    return {group.root: [ref.path for ref in group.references] for group in groups}


def test_it_lists_the_input_and_each_upstream_step_in_execution_order(draft):
    groups = reference_picker(draft, GRAPH, "end").groups
    assert [g.root for g in groups] == ["input", "side", "fetch", "slug", "shape"]
    found = paths(groups)
    assert found["input"] == ["input", "input.city"]
    assert found["fetch"] == ["fetch"]  # nothing known before a run
    assert found["slug"] == ["slug", "slug.slug"]  # the function's output schema
    assert found["shape"] == ["shape", 'shape["n-1"]', "shape.ok"]  # the mapping keys
    assert groups[2].title == "fetch (HTTP request)" and groups[3].title == "Slug (Function)"
    assert groups[1].references[0].template == "{{ side }}"


def test_a_for_each_also_offers_the_item_and_its_index(draft):
    definition = {"nodes": [{"id": "loop", "type": "for_each", "data": {}}], "edges": []}
    groups = reference_picker(draft, Graph.from_definition(definition), "loop").groups
    assert paths(groups) == {"input": ["input", "input.city"], "item": ["item", "index"]}


def test_a_root_step_only_reads_the_input(draft):
    assert [g.root for g in reference_picker(draft, GRAPH, "side").groups] == ["input"]


def test_only_the_nearest_upstream_steps_are_listed(draft):
    count = MAX_STEPS + 5
    chain = {
        "nodes": [{"id": f"s{i}", "type": "delay", "data": {}} for i in range(count + 1)],
        "edges": [
            {"id": f"e{i}", "source": f"s{i - 1}", "target": f"s{i}"} for i in range(1, count + 1)
        ],
    }
    picker = reference_picker(draft, Graph.from_definition(chain), f"s{count}")
    assert picker.unlisted == 5
    assert [g.root for g in picker.groups[1:]] == [f"s{i}" for i in range(5, count)]


def test_fields_seen_in_the_last_run_are_listed(draft):
    context = {
        "input": {"city": "Oslo", "units": "metric"},
        "fetch": {"status_code": 200, "body": {"items": [1, 2], "next": None}},
    }
    run = finished_run(draft, context)
    groups = reference_picker(draft, GRAPH, "end", run).groups
    found = paths(groups)
    assert found["fetch"] == [
        "fetch",
        "fetch.status_code",
        "fetch.body",
        "fetch.body.items",
        "fetch.body.next",
    ]
    assert found["input"] == ["input", "input.city", "input.units"]
    hints = {ref.path: ref.hint for ref in groups[2].references}
    assert hints["fetch.body.items"] == "list of 2" and hints["fetch.status_code"] == "number"


def test_the_last_run_is_the_newest_with_a_completed_step_of_any_version(draft):
    assert last_run(draft) is None
    older = finished_run(draft, {"input": {}, "fetch": {"a": 1}})
    draft.publish()
    v2 = draft.new_version()
    assert last_run(v2) == older
    finished_run(v2, {"input": {"x": 1}}, completed=False)
    assert last_run(v2) == older  # no step completed in the newer one
    Run.objects.filter(workflow=draft).delete()
    assert last_run(v2).input == {"x": 1}


def test_the_preview_context_is_the_runs_context_with_run_metadata(draft):
    run = finished_run(draft, {"input": {"city": "Oslo"}, "fetch": {"a": 1}})
    context = preview_context(run, "end")
    assert context["fetch"] == {"a": 1} and context["input"] == {"city": "Oslo"}
    assert context["run"]["step_id"] == "end" and context["run"]["id"] == str(run.id)


# ------------------------------------------------------------------------- the view


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


def preview(client, workflow, template, node_id="end"):
    url = reverse("workflows:preview", args=[workflow.pk])
    response = client.post(url, {"template": template, "node_id": node_id})
    return response.status_code, unescape(response.content.decode())


def test_the_preview_renders_a_template_against_the_last_run(signed_in, draft):
    finished_run(draft, {"input": {"city": "Oslo"}, "fetch": {"body": {"items": [1, 2]}}})
    status, html = preview(signed_in, draft, "Weather in {{ input.city }}")
    assert status == 200 and "Resolves to (text)" in html and "Weather in Oslo" in html
    status, html = preview(signed_in, draft, "{{ fetch.body.items }}")
    assert "Resolves to (list)" in html and "[\n  1,\n  2\n]" in html
    status, html = preview(signed_in, draft, "{{ run.step_id }}")
    assert "Resolves to (text)" in html and ">end</pre>" in html


def test_the_preview_shows_the_engines_error(signed_in, draft):
    finished_run(draft, {"input": {}, "fetch": {"body": {}}})
    status, html = preview(signed_in, draft, "{{ fetch.body.missing }}")
    assert status == 200 and "This template fails against the last run" in html
    assert "fetch.body.missing" in html
    status, html = preview(signed_in, draft, "{{ fetch.body ")
    assert "template syntax error" in html


def test_an_expression_is_previewed_with_the_engines_evaluator(signed_in, draft):
    finished_run(draft, {"input": {"city": "Oslo"}, "fetch": {"status_code": 200}})
    url = reverse("workflows:preview", args=[draft.pk])
    fields = {"template": "fetch.status_code == 200", "node_id": "end", "kind": "expression"}
    html = unescape(signed_in.post(url, fields).content.decode())
    assert "Resolves to (boolean)" in html and ">true</pre>" in html
    fields["template"] = "fetch.status_code < 'x'"
    html = unescape(signed_in.post(url, fields).content.decode())
    assert "This expression fails against the last run" in html
    assert "cannot compare a number and a string" in html


def test_the_preview_without_a_run_says_so(signed_in, draft):
    status, html = preview(signed_in, draft, "{{ input.city }}")
    assert status == 200 and "No run of this workflow yet" in html


def test_text_without_template_tags_is_shown_as_written(signed_in, draft):
    url = reverse("workflows:preview", args=[draft.pk])
    response = signed_in.post(url, {"template": "plain <b>text</b>", "node_id": "end"})
    html = response.content.decode()
    assert response.status_code == 200 and "used as written" in html
    assert "plain &lt;b&gt;text&lt;/b&gt;" in html


def test_the_preview_escapes_what_it_shows(signed_in, draft):
    finished_run(draft, {"input": {"html": "<script>alert(1)</script>"}, "fetch": {}})
    url = reverse("workflows:preview", args=[draft.pk])
    response = signed_in.post(url, {"template": "{{ input.html }}", "node_id": "end"})
    assert "<script>alert(1)</script>" not in response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"template": "{{ x }}"},
        {"node_id": "end"},
        {"template": "{{ x }}", "node_id": "end", "kind": "python"},
    ],
)
def test_the_preview_needs_a_template_and_a_node_id(signed_in, draft, fields):
    url = reverse("workflows:preview", args=[draft.pk])
    assert signed_in.post(url, fields).status_code == 400


def test_the_preview_needs_a_signed_in_user_and_the_csrf_token(client, bob, draft):
    url = reverse("workflows:preview", args=[draft.pk])
    fields = {"template": "{{ input }}", "node_id": "end"}
    assert client.post(url, fields).status_code == 302
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(bob)
    assert checked.post(url, fields).status_code == 403
