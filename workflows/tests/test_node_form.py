"""The builder's node config form endpoints: the form for a node of the unsaved canvas,
its save (errors beside fields, or the node's new data in HX-Trigger), the reference
picker, and refusals of bad input."""

import json
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from engine.statuses import WorkflowStatus
from workflows.models import Workflow

DEFINITION = {
    "nodes": [
        {
            "id": "fetch",
            "type": "http_request",
            "position": {"x": 0, "y": 0},
            "data": {"label": "Fetch", "config": {"url": "https://example.com/items"}},
        },
        {
            "id": "shape",
            "type": "transform",
            "position": {"x": 0, "y": 100},
            "data": {"config": {"mapping": {"first": "{{ fetch.body }}"}}},
        },
        {
            "id": "notify",
            "type": "webhook",
            "position": {"x": 0, "y": 200},
            "data": {"config": {"url": "https://example.com/hook", "secret": "s3cret"}},
        },
        {"id": "loose", "type": "delay", "position": {"x": 300, "y": 0}, "data": {}},
    ],
    "edges": [
        {"id": "e1", "source": "fetch", "target": "shape"},
        {"id": "e2", "source": "shape", "target": "notify"},
    ],
}


@pytest.fixture
def draft(alice):
    return Workflow.objects.create(
        name="Builder",
        definition=DEFINITION,
        input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        created_by=alice,
    )


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


def node(node_id, definition=DEFINITION):
    return next(n for n in definition["nodes"] if n["id"] == node_id)


def request_fields(node_id, definition=DEFINITION, **overrides):
    found = node(node_id, definition)
    fields = {
        "node_id": node_id,
        "step_type": found["type"],
        "node_data": json.dumps(found["data"]),
        "definition": json.dumps(definition),
    }
    fields.update(overrides)
    return fields


def open_form(client, workflow, node_id, definition=DEFINITION):
    url = reverse("workflows:node_form", args=[workflow.pk])
    fields = request_fields(node_id, definition)
    return client.post(url, fields, headers={"HX-Request": "true"})


def save(client, workflow, node_id, values, definition=DEFINITION):
    url = reverse("workflows:node_form_save", args=[workflow.pk])
    fields = {**request_fields(node_id, definition), **values}
    return client.post(url, fields, headers={"HX-Request": "true"})


def saved_data(response):
    return json.loads(response["HX-Trigger"])["flowmatrx:node-saved"]


HTTP_VALUES = {
    "config__url": "https://example.com/items",
    "config__method": '"GET"',
    "config__headers": "",
    "config__query": "",
    "config__body": "",
    "config__timeout_seconds": "30",
    "config__idempotency_header": "",
    "config__follow_redirects": "on",
    "config__max_response_bytes": "10485760",
    "label": "Fetch",
    "on_error": '"fail"',
    "max_attempts": "1",
    "backoff_strategy": '"fixed"',
    "backoff_base": "2.0",
    "timeout_seconds": "",
    "join": '"all"',
}


def test_it_renders_the_form_of_a_node_filled_from_its_data(signed_in, draft):
    response = open_form(signed_in, draft, "fetch")
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert 'class="node-config"' in html and 'data-node-id="fetch"' in html
    assert 'name="config__url"' in html and 'value="https://example.com/items"' in html
    assert 'name="config__method"' in html and 'name="max_attempts"' in html
    assert 'name="on_error"' in html and 'name="backoff_strategy"' in html
    assert 'name="timeout_seconds"' in html and 'name="label"' in html
    assert "The http(s) URL to call." in html  # the schema's description as help text
    assert 'hx-post="{}"'.format(reverse("workflows:node_form_save", args=[draft.pk])) in html
    for hidden in ("node_id", "step_type", "node_data", "definition"):
        assert f'type="hidden" name="{hidden}"' in html


def test_saving_a_valid_form_answers_the_new_node_data_in_hx_trigger(signed_in, draft):
    values = {
        **HTTP_VALUES,
        "config__url": "{{ input.city }}/weather",
        "config__method": '"POST"',
        "config__headers": '{"Accept": "application/json"}',
        "config__body": '{"q": "{{ input.city }}"}',
        "max_attempts": "3",
        "backoff_strategy": '"exponential"',
        "timeout_seconds": "12.5",
        "label": "Fetch weather",
    }
    response = save(signed_in, draft, "fetch", values)
    assert response.status_code == 200
    payload = saved_data(response)
    assert payload["node_id"] == "fetch"
    assert payload["data"] == {
        "label": "Fetch weather",
        "config": {
            "url": "{{ input.city }}/weather",
            "method": "POST",
            "headers": {"Accept": "application/json"},
            "body": {"q": "{{ input.city }}"},
        },
        "max_attempts": 3,
        "backoff_strategy": "exponential",
        "timeout_seconds": 12.5,
    }
    html = unescape(response.content.decode())
    assert "Saved to the canvas" in html
    assert 'value="Fetch weather"' in html  # the partial shows the saved values
    draft.refresh_from_db()
    assert draft.definition == DEFINITION  # the workflow row is not saved by the form


def test_defaults_left_alone_stay_out_of_the_config(signed_in, draft):
    response = save(signed_in, draft, "fetch", HTTP_VALUES)
    assert saved_data(response)["data"] == {
        "label": "Fetch",
        "config": {"url": "https://example.com/items"},
    }


def test_an_invalid_form_answers_the_partial_with_errors_beside_the_fields(signed_in, draft):
    values = {
        **HTTP_VALUES,
        "config__url": "",
        "config__headers": "{not json",
        "config__query": "[1, 2]",
        "max_attempts": "0",
        "config__timeout_seconds": "soon",
    }
    response = save(signed_in, draft, "fetch", values)
    assert response.status_code == 200
    assert "HX-Trigger" not in response
    html = unescape(response.content.decode())
    assert 'id="id_config__url-errors"' in html and "This field is required." in html
    assert 'id="id_config__headers-errors"' in html and "Not valid JSON" in html
    assert 'id="id_config__query-errors"' in html and "must be of type object" in html
    assert 'id="id_max_attempts-errors"' in html
    assert "'max_attempts' must be a whole number from 1 to 100" in html
    assert 'id="id_config__timeout_seconds-errors"' in html
    assert "Enter a number or a template" in html
    assert "Saved to the canvas" not in html


def test_a_reference_to_a_step_not_upstream_is_a_warning_not_a_refusal(signed_in, draft):
    values = {**HTTP_VALUES, "config__url": "{{ shape.first }}"}
    response = save(signed_in, draft, "fetch", values)
    assert response.status_code == 200
    assert saved_data(response)["data"]["config"]["url"] == "{{ shape.first }}"
    assert "which is not upstream of 'fetch'" in unescape(response.content.decode())


def test_a_template_syntax_error_is_refused_on_its_field(signed_in, draft):
    values = {**HTTP_VALUES, "config__url": "{{ fetch.body "}
    response = save(signed_in, draft, "fetch", values)
    assert "HX-Trigger" not in response
    html = unescape(response.content.decode())
    assert 'id="id_config__url-errors"' in html and "Invalid template" in html


def test_a_blank_secret_keeps_the_stored_one_and_is_never_shown(signed_in, draft):
    response = open_form(signed_in, draft, "notify")
    html = unescape(response.content.decode())
    assert 'name="config__secret"' in html and 'type="password"' in html
    assert 'value="s3cret"' not in html
    assert "A secret is stored" in html

    values = {"config__url": "https://example.com/hook2", "config__secret": ""}
    data = saved_data(save(signed_in, draft, "notify", values))["data"]
    assert data["config"] == {"url": "https://example.com/hook2", "secret": "s3cret"}

    values = {"config__url": "https://example.com/hook", "config__secret": "n3w"}
    assert saved_data(save(signed_in, draft, "notify", values))["data"]["config"]["secret"] == "n3w"

    values = {"config__url": "https://example.com/hook", "config__secret__clear": "on"}
    assert "secret" not in saved_data(save(signed_in, draft, "notify", values))["data"]["config"]


def test_a_function_call_offers_the_registered_functions(signed_in, draft):
    definition = json.loads(json.dumps(DEFINITION))
    definition["nodes"].append({"id": "slug", "type": "function_call", "data": {}})
    html = open_form(signed_in, draft, "slug", definition).content.decode()
    assert 'list="config__function-suggestions"' in html
    assert '<datalist id="config__function-suggestions">' in html
    assert '<option value="text.slugify">' in html


def test_other_keys_of_the_node_data_are_kept(signed_in, draft):
    definition = json.loads(json.dumps(DEFINITION))
    node("loose", definition)["data"] = {"config": {"seconds": 5}, "note": "keep me"}
    response = save(signed_in, draft, "loose", {"config__seconds": "7"}, definition)
    assert saved_data(response)["data"] == {"config": {"seconds": 7}, "note": "keep me"}


def test_the_picker_lists_the_input_and_the_upstream_steps_only(signed_in, draft):
    html = unescape(open_form(signed_in, draft, "notify").content.decode())
    assert 'data-fm-ref="{{ input.city }}"' in html
    assert 'data-fm-ref="{{ fetch }}"' in html and 'data-fm-ref="{{ shape }}"' in html
    assert 'data-fm-ref="{{ shape.first }}"' in html  # a transform's mapping keys
    assert 'data-fm-ref="{{ loose }}"' not in html  # not upstream
    assert 'data-fm-ref="{{ notify }}"' not in html  # itself
    assert "Fetch (HTTP request)" in html


def test_the_picker_follows_the_unsaved_definition(signed_in, draft):
    definition = json.loads(json.dumps(DEFINITION))
    definition["edges"].append({"id": "e3", "source": "loose", "target": "notify"})
    response = open_form(signed_in, draft, "notify", definition)
    html = unescape(response.content.decode())
    assert 'data-fm-ref="{{ loose }}"' in html


def test_a_published_version_shows_the_form_read_only_and_refuses_a_save(signed_in, draft):
    Workflow.objects.filter(pk=draft.pk).update(status=WorkflowStatus.PUBLISHED)
    draft.refresh_from_db()
    html = unescape(open_form(signed_in, draft, "fetch").content.decode())
    assert "fieldset" in html and " disabled" in html and "make a new draft" in html
    assert 'class="save-node"' not in html
    response = save(signed_in, draft, "fetch", HTTP_VALUES)
    assert response.status_code == 409 and "HX-Trigger" not in response


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"node_data": "{oops"}, 400, "node_data is not valid JSON"),
        ({"node_data": "[]"}, 400, "node_data must be a JSON object"),
        ({"definition": "nope"}, 400, "definition is not valid JSON"),
        ({"definition": '{"nodes": {}}'}, 400, "definition must have a 'nodes' list"),
        ({"node_id": ""}, 400, "This field is required."),
        ({"step_type": "no_such_type"}, 422, "Unknown step type 'no_such_type'"),
        ({"node_id": "ghost"}, 422, "The definition has no node 'ghost'"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(signed_in, draft, overrides, status, message):
    for name in ("workflows:node_form", "workflows:node_form_save"):
        url = reverse(name, args=[draft.pk])
        response = signed_in.post(url, {**request_fields("fetch"), **overrides})
        assert response.status_code == status, response.content
        assert message in unescape(response.content.decode())
        assert "HX-Trigger" not in response
    draft.refresh_from_db()
    assert draft.definition == DEFINITION


def test_a_new_node_may_come_without_node_data(signed_in, draft):
    url = reverse("workflows:node_form", args=[draft.pk])
    fields = request_fields("loose")
    del fields["node_data"]
    response = signed_in.post(url, fields)
    assert response.status_code == 200
    assert 'name="config__seconds"' in response.content.decode()


def test_an_unknown_workflow_is_404(signed_in, draft):
    url = reverse("workflows:node_form", args=["00000000-0000-0000-0000-000000000000"])
    assert signed_in.post(url, request_fields("fetch")).status_code == 404


@pytest.mark.parametrize("name", ["workflows:node_form", "workflows:node_form_save"])
def test_it_needs_a_signed_in_user_a_post_and_the_csrf_token(client, bob, draft, name):
    url = reverse(name, args=[draft.pk])
    response = client.post(url, request_fields("fetch"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    checked = Client(enforce_csrf_checks=True)
    checked.force_login(bob)
    assert checked.post(url, request_fields("fetch")).status_code == 403
    assert checked.get(url).status_code == 405
