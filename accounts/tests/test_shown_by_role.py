"""What pages and resources show depends on the role: actions only to those who may use
them, the webhook URL (a credential) only to those who may start runs; and the run page
says who started the run and who approved."""

import pytest
from django.urls import reverse

from accounts.models import ApiKey
from runs import lifecycle
from runs.tests.conftest import node
from triggers.tests.conftest import definition
from workflows.models import Workflow


@pytest.fixture
def hooked(alice):
    workflow = Workflow.objects.create(
        name="Hooked", definition=definition({"type": "webhook"}), created_by=alice
    )
    workflow.publish()
    return workflow


@pytest.mark.parametrize(("role", "sees"), [("viewer", False), ("member", True), ("admin", True)])
def test_the_workflow_page_shows_run_form_and_webhook_url_to_members(signed_in, hooked, role, sees):
    page = signed_in(role).get(reverse("workflows:detail", args=[hooked.pk])).content.decode()
    assert ('id="webhook-url"' in page) is sees
    assert ("/hooks/" in page) is sees
    assert (f'action="{reverse("workflows:run", args=[hooked.pk])}"' in page) is sees


@pytest.mark.parametrize(
    ("role", "scopes", "sees"),
    [("viewer", ["read"], False), ("admin", ["read"], False), ("member", ["read", "run"], True)],
)
def test_the_api_shows_the_webhook_url_to_callers_who_may_run(
    client, users_by_role, hooked, role, scopes, sees
):
    key = ApiKey.create(users_by_role[role], "k", scopes)[1]
    body = client.get(
        f"/api/v1/workflows/{hooked.pk}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert (body["webhook_url"] is not None) is sees
    listed = client.get("/api/v1/workflows", headers={"Authorization": f"Bearer {key}"}).json()
    assert all((item["webhook_url"] is not None) is sees for item in listed["items"])


@pytest.fixture
def approval_run(transactional_db, bob, drive):
    workflow = Workflow.objects.create(
        name="Gate",
        definition={"nodes": [node("gate", "wait_for_approval", {"prompt": "Ship?"})], "edges": []},
        created_by=bob,
    )
    workflow.publish()
    run = lifecycle.start_run(workflow, {}, created_by=bob)
    return drive(run)


def test_the_run_page_shows_who_started_and_who_approved(client, alice, bob, approval_run, drive):
    client.force_login(alice)
    url = reverse("runs:detail", args=[approval_run.pk])
    page = client.get(url).content.decode()
    assert 'class="started-by">bob<' in page
    response = client.post(
        reverse("runs:decide", args=[approval_run.pk]),
        {"step_id": "gate", "decision": "approve", "comment": "looks good"},
    )
    assert response.status_code == 302
    drive(approval_run)
    page = client.get(url).content.decode()
    assert "Approved <code>gate</code> by <strong>alice</strong>" in page
    assert "looks good" in page


def test_runs_started_by_triggers_say_so(client, alice, hooked):
    response = client.post(f"/hooks/{_token(hooked)}", {}, content_type="application/json")
    assert response.status_code == 202
    client.force_login(alice)
    page = client.get(reverse("runs:detail", args=[response.json()["run_id"]])).content.decode()
    assert "started by its webhook trigger" in page


def _token(workflow):
    from triggers.webhooks import endpoint_for

    return endpoint_for(workflow.lineage).token
