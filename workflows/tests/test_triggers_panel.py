"""The Triggers section of the workflow page: the webhook URL and its signature rule, each
schedule with its next fire times and an enable/disable toggle (htmx), event triggers."""

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from triggers.models import Schedule, WebhookEndpoint
from workflows.models import Workflow
from workflows.triggers_panel import triggers_panel

NOON = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # a Monday
DAILY_NINE = {"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Paris"}
ORDERS = {"type": "event", "event": "order.created", "filter": "event.data.total > 100"}


def definition(*triggers):
    return {
        "nodes": [{"id": "a", "type": "transform", "data": {"config": {"mapping": {"x": 1}}}}],
        "edges": [],
        "viewport": {"x": 0, "y": 0, "zoom": 1},
        "settings": {"triggers": list(triggers)},
    }


@pytest.fixture
def make_workflow(db, alice):
    def make(*triggers, publish=True):
        workflow = Workflow.objects.create(
            name="Triggered", definition=definition(*triggers), created_by=alice
        )
        return workflow.publish() if publish else workflow

    return make


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


def page(client, workflow):
    response = client.get(reverse("workflows:detail", args=[workflow.pk]))
    assert response.status_code == 200
    return response


def toggle_url(workflow, schedule):
    return reverse("workflows:toggle_schedule", args=[workflow.pk, schedule.pk])


def test_the_panel_lists_every_kind_of_trigger(make_workflow):
    workflow = make_workflow({"type": "webhook", "secret": "s3cret"}, DAILY_NINE, ORDERS)
    panel = triggers_panel(workflow, now=NOON)
    token = WebhookEndpoint.objects.get(lineage=workflow.lineage).token
    assert panel.active and panel.any
    assert panel.webhook_url == f"/hooks/{token}" and panel.signature_required
    [row] = panel.schedules
    assert (row.cron, row.timezone, row.enabled) == ("0 9 * * *", "Europe/Paris", True)
    assert row.schedule == Schedule.objects.get(workflow=workflow)
    # 09:00 in Paris is 08:00 UTC in winter; noon has passed, so from tomorrow on.
    assert [t.isoformat() for t in row.fire_times] == [
        f"2025-01-{day:02d}T08:00:00+00:00" for day in range(7, 12)
    ]
    assert [(e.event, e.filter) for e in panel.events] == [
        ("order.created", "event.data.total > 100")
    ]


def test_a_workflow_without_triggers_says_so(signed_in, make_workflow):
    workflow = make_workflow()
    assert not triggers_panel(workflow).any
    assert "No triggers" in page(signed_in, workflow).content.decode()


def test_the_page_shows_the_absolute_webhook_url_in_a_copy_field(signed_in, make_workflow):
    workflow = make_workflow({"type": "webhook"})
    token = WebhookEndpoint.objects.get(lineage=workflow.lineage).token
    html = page(signed_in, workflow).content.decode()
    assert f'value="http://testserver/hooks/{token}"' in html
    assert 'id="webhook-url"' in html and "readonly" in html
    assert "No signature required." in html


def test_the_page_shows_schedules_with_five_fire_times_and_events(signed_in, make_workflow):
    workflow = make_workflow({"type": "webhook", "secret": "x"}, DAILY_NINE, ORDERS)
    html = page(signed_in, workflow).content.decode()
    assert "Signature required" in html
    assert "<code>0 9 * * *</code>" in html and "Europe/Paris" in html
    assert html.count("<time datetime=") >= 5
    assert ">enabled<" in html and ">Disable</button>" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'hx-post="{toggle_url(workflow, Schedule.objects.get())}"' in html
    assert "order.created" in html and "event.data.total &gt; 100" in html


def test_a_draft_previews_its_triggers_without_toggles(signed_in, make_workflow):
    workflow = make_workflow(DAILY_NINE, {"type": "webhook"}, publish=False)
    panel = triggers_panel(workflow)
    assert not panel.active and panel.schedules[0].schedule is None
    assert len(panel.schedules[0].fire_times) == 5
    html = page(signed_in, workflow).content.decode()
    assert "its triggers start when it is published" in html
    assert "Disable</button>" not in html and "Enable</button>" not in html
    assert "/hooks/" in html


def test_a_superseded_version_is_not_active(make_workflow, alice):
    v1 = make_workflow(DAILY_NINE)
    v2 = v1.new_version(created_by=alice)
    v2.publish()
    v1.refresh_from_db()
    panel = triggers_panel(v1)
    assert not panel.active and "newer published version" in panel.inactive_reason
    assert triggers_panel(Workflow.objects.get(pk=v2.pk)).active


def test_the_toggle_disables_and_enables_over_htmx(signed_in, make_workflow):
    workflow = make_workflow(DAILY_NINE)
    schedule = Schedule.objects.get()
    response = signed_in.post(
        toggle_url(workflow, schedule), {"enabled": "false"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="triggers"')
    assert ">disabled<" in html and ">Enable</button>" in html
    assert "<html" not in html
    schedule.refresh_from_db()
    assert not schedule.enabled

    response = signed_in.post(
        toggle_url(workflow, schedule), {"enabled": "true"}, headers={"HX-Request": "true"}
    )
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at is not None
    assert ">Disable</button>" in response.content.decode()


def test_the_toggle_without_htmx_goes_back_to_the_page(signed_in, make_workflow):
    workflow = make_workflow(DAILY_NINE)
    schedule = Schedule.objects.get()
    response = signed_in.post(toggle_url(workflow, schedule), {"enabled": "false"})
    assert response.status_code == 302
    assert response["Location"] == reverse("workflows:detail", args=[workflow.pk])
    schedule.refresh_from_db()
    assert not schedule.enabled


def test_the_toggle_needs_a_signed_in_user(client, make_workflow):
    workflow = make_workflow(DAILY_NINE)
    schedule = Schedule.objects.get()
    response = client.post(toggle_url(workflow, schedule), {"enabled": "false"})
    assert response.status_code == 302 and "login" in response["Location"]
    schedule.refresh_from_db()
    assert schedule.enabled


def test_the_toggle_needs_a_csrf_token(bob, make_workflow):
    workflow = make_workflow(DAILY_NINE)
    schedule = Schedule.objects.get()
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post(toggle_url(workflow, schedule), {"enabled": "false"})
    assert response.status_code == 403
    schedule.refresh_from_db()
    assert schedule.enabled


def test_the_toggle_only_answers_post_and_its_own_schedules(signed_in, make_workflow):
    workflow = make_workflow(DAILY_NINE)
    other = make_workflow({"type": "schedule", "cron": "*/5 * * * *"})
    schedule = Schedule.objects.get(workflow=workflow)
    assert signed_in.get(toggle_url(workflow, schedule)).status_code == 405
    assert signed_in.post(toggle_url(other, schedule), {"enabled": "false"}).status_code == 404
