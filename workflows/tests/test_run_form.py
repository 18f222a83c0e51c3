"""The Run button on the workflow page: an input form generated from `input_schema`,
validated with jsonschema, that starts a manual run and goes to its page."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from engine.statuses import TriggerType, WorkflowStatus
from runs.models import Run
from workflows.models import Workflow
from workflows.run_form import RunForm

SCHEMA = {
    "type": "object",
    "required": ["name", "count"],
    "properties": {
        "name": {"type": "string", "minLength": 2, "description": "Who to greet"},
        "count": {"type": "integer", "minimum": 1, "default": 3},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean", "default": True},
        "lang": {"enum": ["en", "fr", 1]},
    },
}


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def published(workflow):
    workflow.input_schema = SCHEMA
    workflow.save()
    return workflow.publish()


def run_url(workflow):
    return reverse("workflows:run", args=[workflow.pk])


def test_it_generates_a_field_per_property_with_required_and_defaults():
    form = RunForm(SCHEMA)
    assert list(form.fields) == ["name", "count", "ratio", "loud", "lang"]
    assert form.fields["name"].required and form.fields["count"].required
    assert not form.fields["ratio"].required
    assert form.fields["count"].initial == 3
    assert form.fields["loud"].initial is True
    assert form.fields["name"].help_text == "Who to greet"
    assert [c[0] for c in form.fields["lang"].choices] == ["", '"en"', '"fr"', "1"]


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {},
        {"type": "object", "properties": {"items": {"type": "array"}}},
        {"type": "object", "properties": {"nested": {"type": "object"}}},
        {"type": "array"},
        {"anyOf": [{"type": "object"}]},
    ],
)
def test_it_falls_back_to_raw_json_for_schemas_it_cannot_map(schema):
    assert list(RunForm(schema).fields) == ["json"]


def test_it_assembles_typed_input_and_omits_empty_optional_fields():
    form = RunForm(
        SCHEMA, {"input-name": "Ada", "input-count": "5", "input-lang": "1", "input-ratio": ""}
    )
    assert form.is_valid(), form.errors
    assert form.input == {"name": "Ada", "count": 5, "loud": False, "lang": 1}


def test_the_page_shows_the_form(signed_in, published):
    response = signed_in.get(reverse("workflows:detail", args=[published.pk]))
    html = response.content.decode()
    assert 'name="input-name"' in html
    assert 'name="input-count" value="3"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'action="{run_url(published)}"' in html


def test_it_starts_a_manual_run_and_redirects_to_its_page(signed_in, bob, published):
    response = signed_in.post(
        run_url(published), {"input-name": "Ada", "input-count": "2", "input-loud": "on"}
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.input == {"name": "Ada", "count": 2, "loud": True}
    assert run.trigger_type == TriggerType.MANUAL
    assert run.created_by == bob
    assert run.workflow == published


def test_errors_are_shown_beside_the_fields_and_nothing_is_created(signed_in, published):
    response = signed_in.post(run_url(published), {"input-name": "A", "input-count": "0"})
    assert response.status_code == 400
    form = response.context["run_form"]
    assert "name" in form.errors and "count" in form.errors
    assert "too short" in form.errors["name"][0]
    html = response.content.decode()
    assert 'id="id_input-name-errors"' in html
    assert 'value="A"' in html
    assert not Run.objects.exists()


def test_a_missing_required_field_is_reported_on_that_field(signed_in, published):
    response = signed_in.post(run_url(published), {"input-count": "2"})
    assert response.status_code == 400
    assert response.context["run_form"].errors["name"] == ["This field is required."]
    assert not Run.objects.exists()


def test_without_a_schema_it_takes_raw_json(signed_in, workflow):
    response = signed_in.post(run_url(workflow), {"input-json": json.dumps({"a": [1, 2]})})
    assert response.status_code == 302
    assert Run.objects.get().input == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("text", "message"),
    [("{nope", "Not valid JSON"), ("[1]", "must be a JSON object")],
)
def test_raw_json_must_be_an_object(signed_in, workflow, text, message):
    response = signed_in.post(run_url(workflow), {"input-json": text})
    assert response.status_code == 400
    assert message in response.context["run_form"].errors["json"][0]
    assert not Run.objects.exists()


def test_raw_json_is_validated_against_an_unmappable_schema(signed_in, workflow):
    workflow.input_schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
    }
    workflow.save()
    response = signed_in.post(run_url(workflow), {"input-json": '{"items": [1, "x"]}'})
    assert response.status_code == 400
    assert response.context["run_form"].errors["json"] == ["items/1: 'x' is not of type 'integer'"]
    assert not Run.objects.exists()


def test_a_draft_with_problems_shows_them_inline(signed_in, alice):
    draft = Workflow.objects.create(
        name="Broken",
        definition={"nodes": [{"id": "a", "type": "no_such_type", "data": {}}], "edges": []},
        created_by=alice,
    )
    response = signed_in.post(run_url(draft), {"input-json": "{}"})
    assert response.status_code == 400
    assert response.context["run_problems"]
    assert "cannot run" in response.context["run_form"].non_field_errors()[0]
    assert "no_such_type" in response.content.decode()
    assert not Run.objects.exists()


def test_an_archived_version_has_no_run_button(signed_in, published):
    published.archive()
    response = signed_in.get(reverse("workflows:detail", args=[published.pk]))
    assert 'id="run-form"' not in response.content.decode()
    response = signed_in.post(run_url(published), {"input-name": "Ada", "input-count": "2"})
    assert response.status_code == 400
    assert not Run.objects.exists()


def test_running_needs_a_sign_in_a_post_and_the_csrf_token(client, bob, published):
    assert client.post(run_url(published))["Location"].startswith("/accounts/login/")
    client.force_login(bob)
    assert client.get(run_url(published)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    assert strict.post(run_url(published), {"input-name": "Ada"}).status_code == 403
    assert not Run.objects.exists()
    assert published.status == WorkflowStatus.PUBLISHED
