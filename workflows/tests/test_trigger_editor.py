"""Editing triggers and flow control on the workflow page: forms for webhook, schedule and
event triggers and the flow-control rules, field-level errors from the definition
validator, edits of a published workflow going to its draft ("publish to activate"), the
webhook secret never echoed back, and the schedule preview as you type."""

import json

import pytest
from django.urls import reverse

from engine.statuses import WorkflowStatus
from triggers.models import Schedule
from workflows.models import Workflow

ECHO = {"id": "a", "type": "transform", "data": {"config": {"mapping": {"x": 1}}}}
HTMX = {"HTTP_HX_REQUEST": "true"}


def definition(*triggers, **flow):
    return {
        "nodes": [ECHO],
        "edges": [],
        "viewport": {"x": 0, "y": 0, "zoom": 1},
        "settings": {"triggers": list(triggers), **flow},
    }


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def make_workflow(db, alice):
    def make(*triggers, publish=False, **flow):
        workflow = Workflow.objects.create(
            name="Editable", definition=definition(*triggers, **flow), created_by=alice
        )
        return workflow.publish() if publish else workflow

    return make


def url(name, workflow):
    return reverse(f"workflows:{name}", args=[workflow.pk])


def save(client, workflow, kind, index=None, htmx=True, **fields):
    data = {"kind": kind, **{f"{kind}-{k}": v for k, v in fields.items()}}
    if index is not None:
        data["index"] = index
    return client.post(url("save_trigger", workflow), data, **(HTMX if htmx else {}))


def triggers_of(workflow):
    workflow.refresh_from_db()
    return workflow.workflow_settings.get("triggers", [])


def test_it_adds_a_schedule_to_a_draft(signed_in, make_workflow):
    draft = make_workflow()
    response = save(
        signed_in,
        draft,
        "schedule",
        cron="0 9 * * 1-5",
        timezone="Europe/Berlin",
        input='{"report": "daily"}',
        catch_up="on",
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#triggers" and response["HX-Reswap"] == "outerHTML"
    assert triggers_of(draft) == [
        {
            "type": "schedule",
            "cron": "0 9 * * 1-5",
            "timezone": "Europe/Berlin",
            "input": {"report": "daily"},
            "catch_up": True,
        }
    ]
    html = response.content.decode()
    assert 'id="triggers"' in html and "Publish it to activate" in html
    assert "<code>0 9 * * 1-5 (Europe/Berlin)</code>" in html  # the section shows the edit
    # The schedule table shows each schedule's input.
    assert '<td class="schedule-input"><code>{&quot;report&quot;: &quot;daily&quot;}</code>' in html
    assert Workflow.objects.filter(lineage=draft.lineage).count() == 1  # no new version


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "61 * * * *", "timezone": "UTC"}, "cron", "not a valid cron expression"),
        ({"cron": "0 9 * *", "timezone": "UTC"}, "cron", "must have 5 fields"),
        ({"cron": "0 0 30 2 *", "timezone": "UTC"}, "cron", "never fires"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone", "IANA time zone"),
        ({"cron": "0 9 * * *", "timezone": "UTC", "input": "[1]"}, "input", "JSON object"),
        ({"cron": "0 9 * * *", "timezone": "UTC", "input": "{oops"}, "input", "Not valid JSON"),
        ({"cron": "", "timezone": "UTC"}, "cron", "required"),
    ],
)
def test_a_bad_schedule_is_refused_beside_its_field(
    signed_in, make_workflow, fields, field, message
):
    draft = make_workflow()
    before = draft.definition
    response = save(signed_in, draft, "schedule", **fields)
    assert response.status_code == 200  # htmx swaps the form with its errors
    assert "HX-Retarget" not in response
    html = response.content.decode()
    errors = html.split(f'id="id_schedule-{field}-errors"', 1)
    assert len(errors) == 2, html
    assert message in errors[1].split("</ul>", 1)[0]
    draft.refresh_from_db()
    assert draft.definition == before


def test_without_htmx_a_refused_edit_renders_the_page_with_the_form_open(signed_in, make_workflow):
    draft = make_workflow()
    response = save(signed_in, draft, "event", htmx=False, event="order.created", filter="1 +")
    assert response.status_code == 400
    html = response.content.decode()
    assert "<h1>" in html and 'id="trigger-form"' in html
    assert 'id="id_event-filter-errors"' in html and "invalid" in html
    assert triggers_of(draft) == []


def test_without_htmx_a_saved_edit_redirects_to_the_page(signed_in, make_workflow):
    draft = make_workflow()
    response = save(signed_in, draft, "event", htmx=False, event="order.created", filter="")
    assert response.status_code == 302 and response["Location"] == url("detail", draft)
    assert triggers_of(draft) == [{"type": "event", "event": "order.created"}]


def test_editing_a_published_workflow_writes_a_new_draft(signed_in, make_workflow):
    published = make_workflow(
        {"type": "schedule", "cron": "0 9 * * *", "timezone": "UTC"}, publish=True
    )
    response = save(signed_in, published, "event", event="invoice.paid", filter="event.data.x")
    assert response.status_code == 200
    draft = Workflow.objects.get(lineage=published.lineage, status=WorkflowStatus.DRAFT)
    assert draft.version == 2
    assert [t["type"] for t in triggers_of(draft)] == ["schedule", "event"]
    # The published version is frozen and its triggers stay active as they were.
    assert [t["type"] for t in triggers_of(published)] == ["schedule"]
    assert Schedule.objects.get(lineage=published.lineage).workflow_id == published.pk
    html = response.content.decode()
    assert "saved to a new draft v2. Publish it to activate." in html
    assert "Changes are saved to draft v2, not to this version" in html

    # A second edit from the published page goes to the same draft.
    save(signed_in, published, "event", index=1, event="invoice.paid", filter="")
    assert Workflow.objects.filter(lineage=published.lineage).count() == 2
    assert triggers_of(draft)[1] == {"type": "event", "event": "invoice.paid"}


def test_a_refused_edit_of_a_published_workflow_makes_no_draft(signed_in, make_workflow):
    published = make_workflow(publish=True)
    response = save(signed_in, published, "schedule", cron="nope", timezone="UTC")
    assert "id_schedule-cron-errors" in response.content.decode()
    assert Workflow.objects.filter(lineage=published.lineage).count() == 1


def test_the_page_of_a_frozen_version_says_publish_to_activate(signed_in, make_workflow):
    published = make_workflow(publish=True)
    html = signed_in.get(url("detail", published)).content.decode()
    assert "frozen: saving a change makes a new draft from it" in html
    assert "Publish the draft to activate the change" in html


def test_the_webhook_secret_is_kept_replaced_or_cleared_and_never_shown(signed_in, make_workflow):
    draft = make_workflow()
    save(signed_in, draft, "webhook", secret="hunter2-secret")
    assert triggers_of(draft) == [{"type": "webhook", "secret": "hunter2-secret"}]
    page = signed_in.get(url("detail", draft)).content.decode()
    form = signed_in.get(url("trigger_form", draft), {"kind": "webhook", "index": 0}, **HTMX)
    for html in (page, form.content.decode()):
        assert "hunter2-secret" not in html
    assert "secret set" in page and "A secret is set" in form.content.decode()

    save(signed_in, draft, "webhook", index=0, secret="")  # left empty: kept
    assert triggers_of(draft) == [{"type": "webhook", "secret": "hunter2-secret"}]
    save(signed_in, draft, "webhook", index=0, secret="another-one")
    assert triggers_of(draft) == [{"type": "webhook", "secret": "another-one"}]
    response = save(signed_in, draft, "webhook", index=0, secret="x", clear_secret="on")
    assert "not both" in response.content.decode()
    save(signed_in, draft, "webhook", index=0, clear_secret="on")
    assert triggers_of(draft) == [{"type": "webhook"}]


def test_a_second_webhook_is_refused(signed_in, make_workflow):
    draft = make_workflow({"type": "webhook"})
    response = save(signed_in, draft, "webhook", secret="")
    assert "one webhook trigger" in response.content.decode()
    assert len(triggers_of(draft)) == 1


def test_an_edit_form_is_filled_from_the_trigger(signed_in, make_workflow):
    schedule = {"type": "schedule", "cron": "*/5 * * * *", "timezone": "Asia/Tokyo"}
    draft = make_workflow({**schedule, "input": {"a": 1}})
    response = signed_in.get(url("trigger_form", draft), {"kind": "schedule", "index": 0}, **HTMX)
    html = response.content.decode()
    assert 'value="*/5 * * * *"' in html and 'value="Asia/Tokyo"' in html
    assert "&quot;a&quot;: 1" in html
    assert html.count("<li><time") == 5  # the preview of the next fire times
    missing = signed_in.get(url("trigger_form", draft), {"kind": "event", "index": 0}, **HTMX)
    assert missing.status_code == 404


def test_removing_a_trigger(signed_in, make_workflow):
    draft = make_workflow({"type": "event", "event": "a"}, {"type": "event", "event": "b"})
    data = {"kind": "event", "index": 0}
    response = signed_in.post(url("remove_trigger", draft), data, **HTMX)
    assert response.status_code == 200
    assert triggers_of(draft) == [{"type": "event", "event": "b"}]
    # The list moved on: index 1 is gone, and a stale post changes nothing.
    response = signed_in.post(url("remove_trigger", draft), {"kind": "event", "index": 1}, **HTMX)
    assert "does not exist" in response.content.decode()
    assert triggers_of(draft) == [{"type": "event", "event": "b"}]


def test_the_schedule_preview_answers_as_you_type(signed_in, make_workflow):
    draft = make_workflow()
    preview = url("schedule_preview", draft)
    ok = signed_in.get(preview, {"schedule-cron": "0 12 * * *", "schedule-timezone": "UTC"})
    assert ok.content.decode().count("12:00:00</time>") == 5
    bad = signed_in.get(preview, {"schedule-cron": "0 12 * *", "schedule-timezone": "UTC"})
    assert "must have 5 fields" in bad.content.decode()
    zone = signed_in.get(preview, {"schedule-cron": "@daily", "schedule-timezone": "Nowhere"})
    assert "IANA time zone" in zone.content.decode()


def flow(client, workflow, htmx=True, **fields):
    return client.post(url("save_flow_control", workflow), fields, **(HTMX if htmx else {}))


def test_it_saves_every_flow_control_rule(signed_in, make_workflow):
    draft = make_workflow({"type": "event", "event": "a"})
    response = flow(
        signed_in,
        draft,
        concurrency_limit="3",
        concurrency_key="{{ input.customer }}",
        rate_limit_limit="10",
        rate_limit_period_seconds="60",
        throttle_limit="2",
        throttle_period_seconds="1.5",
        throttle_key="",
        debounce_period_seconds="30",
        priority="{{ input.priority }}",
    )
    assert response.status_code == 200 and response["HX-Retarget"] == "#triggers"
    draft.refresh_from_db()
    settings = draft.workflow_settings
    assert settings["concurrency"] == {"limit": 3, "key": "{{ input.customer }}"}
    assert settings["rate_limit"] == {"limit": 10, "period_seconds": 60}
    assert settings["throttle"] == {"limit": 2, "period_seconds": 1.5}
    assert settings["debounce"] == {"period_seconds": 30}
    assert settings["priority"] == "{{ input.priority }}"
    assert settings["triggers"] == [{"type": "event", "event": "a"}]  # untouched

    # Emptied fields turn the rules off; a plain number is an integer priority.
    flow(signed_in, draft, concurrency_limit="1", priority="5")
    draft.refresh_from_db()
    assert {k: v for k, v in draft.workflow_settings.items() if k != "triggers"} == {
        "concurrency": {"limit": 1},
        "priority": 5,
    }
    html = signed_in.get(url("detail", draft)).content.decode()
    assert 'name="concurrency_limit" value="1"' in html and 'name="priority" value="5"' in html


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"concurrency_limit": "0"}, "concurrency_limit", "from 1 to"),
        ({"concurrency_key": "{{ input.c }}"}, "concurrency_limit", "whole number"),
        ({"concurrency_limit": "2", "concurrency_key": "{{ input."}, "concurrency_key", "template"),
        ({"rate_limit_limit": "5"}, "rate_limit_period_seconds", "above 0"),
        (
            {"throttle_limit": "5", "throttle_period_seconds": "-1"},
            "throttle_period_seconds",
            "above 0",
        ),
        ({"debounce_period_seconds": "abc"}, "debounce_period_seconds", "number"),
        ({"priority": "{{ oops"}, "priority", "template"),
    ],
)
def test_bad_flow_control_is_refused_beside_its_field(
    signed_in, make_workflow, fields, field, message
):
    draft = make_workflow(concurrency={"limit": 4})
    before = draft.definition
    response = flow(signed_in, draft, **fields)
    assert response.status_code == 200 and "HX-Retarget" not in response
    html = response.content.decode()
    errors = html.split(f'id="id_{field}-errors"', 1)
    assert len(errors) == 2, html
    assert message in errors[1].split("</ul>", 1)[0]
    draft.refresh_from_db()
    assert draft.definition == before


def test_flow_control_of_a_published_workflow_goes_to_its_draft(signed_in, make_workflow):
    published = make_workflow(publish=True, concurrency={"limit": 2})
    flow(signed_in, published, concurrency_limit="5", htmx=False)
    draft = Workflow.objects.get(lineage=published.lineage, status=WorkflowStatus.DRAFT)
    assert draft.workflow_settings["concurrency"] == {"limit": 5}
    published.refresh_from_db()
    assert published.workflow_settings["concurrency"] == {"limit": 2}


def test_the_editor_needs_a_signed_in_user(client, make_workflow):
    draft = make_workflow()
    response = client.post(url("save_flow_control", draft), {"concurrency_limit": "2"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert "concurrency" not in json.dumps(Workflow.objects.get(pk=draft.pk).definition)
