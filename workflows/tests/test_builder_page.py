"""The builder page (the canvas island's host), "New workflow", and the boot data of the
read-only canvas on the run page."""

import json
import re

import pytest
from django.urls import reverse

from engine.statuses import WorkflowStatus
from runs import lifecycle
from workflows.models import Workflow


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)
    return client


def boot_of(response, script_id):
    html = response.content.decode()
    match = re.search(rf'<script id="{script_id}" type="application/json">(.*?)</script>', html)
    assert match, f"no json_script #{script_id}"
    return json.loads(match.group(1))


def test_the_builder_needs_a_signed_in_user(client, workflow):
    response = client.get(reverse("workflows:builder", args=[workflow.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_unknown_workflow_is_404(signed_in, db):
    response = signed_in.get("/workflows/00000000-0000-0000-0000-00000000abcd/builder")
    assert response.status_code == 404


def test_the_page_mounts_the_island_with_its_boot_data(signed_in, workflow):
    response = signed_in.get(reverse("workflows:builder", args=[workflow.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-flowmatrx-canvas="builder-boot"' in html
    assert "/static/canvas/dist/canvas.js" in html and "/static/canvas/dist/canvas.css" in html
    assert 'id="node-panel"' in html
    assert 'id="run-dialog"' in html and reverse("workflows:run", args=[workflow.pk]) in html

    boot = boot_of(response, "builder-boot")
    assert boot["mode"] == "builder"
    assert boot["definition"] == workflow.definition
    assert boot["workflow"] == {
        "id": str(workflow.pk),
        "lineage_id": str(workflow.lineage),
        "name": "Greeting",
        "version": 1,
        "status": "draft",
    }
    assert boot["csrf_token"] and signed_in.cookies["csrftoken"].value
    api = f"/api/v1/workflows/{workflow.pk}"
    urls = boot["urls"]
    assert urls["workflow"] == api
    assert urls["validate"] == f"{api}/validate"
    assert urls["publish"] == f"{api}/publish"
    assert urls["new_version"] == f"{api}/new_version"
    assert urls["duplicate"] == f"{api}/duplicate"
    assert urls["versions"] == f"{api}/versions"
    placeholder = "00000000-0000-0000-0000-000000000000"
    assert urls["diff_template"] == f"/api/v1/workflows/{placeholder}/diff/{workflow.pk}"
    assert urls["catalog_steps"] == "/api/v1/catalog/steps"
    assert urls["catalog_functions"] == "/api/v1/catalog/functions"
    assert urls["node_form"] == reverse("workflows:node_form", args=[workflow.pk])
    assert urls["builder_template"] == f"/workflows/{placeholder}/builder"
    assert urls["workflow_template"] == f"/api/v1/workflows/{placeholder}"


def test_the_boot_data_cannot_break_out_of_its_script(signed_in, workflow):
    workflow.definition = {**workflow.definition, "settings": {"note": "</script><b>x</b>"}}
    workflow.save()
    response = signed_in.get(reverse("workflows:builder", args=[workflow.pk]))
    assert "</script><b>" not in response.content.decode()
    assert boot_of(response, "builder-boot")["definition"]["settings"]["note"] == (
        "</script><b>x</b>"
    )


def test_a_published_version_boots_as_published(signed_in, workflow):
    workflow.publish()
    boot = boot_of(signed_in.get(reverse("workflows:builder", args=[workflow.pk])), "builder-boot")
    assert boot["workflow"]["status"] == WorkflowStatus.PUBLISHED


def test_new_workflow_creates_a_draft_and_opens_the_builder(signed_in, bob):
    response = signed_in.post(reverse("workflows:new"), {"name": "  Nightly sync  "})
    workflow = Workflow.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("workflows:builder", args=[workflow.pk])
    assert workflow.name == "Nightly sync" and workflow.is_draft and workflow.version == 1
    assert workflow.created_by == bob
    assert workflow.definition == {
        "nodes": [],
        "edges": [],
        "viewport": {"x": 0, "y": 0, "zoom": 1},
        "settings": {},
    }


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_new_workflow_refuses_a_bad_name_and_creates_nothing(signed_in, name):
    response = signed_in.post(reverse("workflows:new"), {"name": name})
    assert response.status_code == 400
    assert 'class="errorlist"' in response.content.decode()
    assert not Workflow.objects.exists()


def test_new_workflow_is_post_only_and_needs_a_user(client, signed_in):
    assert signed_in.get(reverse("workflows:new")).status_code == 405
    client.logout()
    response = client.post(reverse("workflows:new"), {"name": "x"})
    assert response.status_code == 302 and not Workflow.objects.exists()


def test_the_list_and_the_workflow_page_lead_to_the_builder(signed_in, workflow):
    listing = signed_in.get(reverse("workflows:list")).content.decode()
    assert f'action="{reverse("workflows:new")}"' in listing
    detail = signed_in.get(reverse("workflows:detail", args=[workflow.pk])).content.decode()
    assert f'href="{reverse("workflows:builder", args=[workflow.pk])}"' in detail


def test_the_run_page_boots_the_read_only_canvas(signed_in, workflow, alice):
    run = lifecycle.start_run(workflow.publish(), {}, created_by=alice)
    response = signed_in.get(reverse("runs:detail", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-flowmatrx-canvas="run-canvas-boot"' in html
    assert 'class="canvas-fallback"' in html and 'id="run-graph"' in html
    boot = boot_of(response, "run-canvas-boot")
    assert boot == {
        "mode": "run",
        "definition": workflow.definition,
        "stream_url": f"/ws/runs/{run.pk}",
        "run_status": run.status,
    }


def test_a_viewer_gets_a_read_only_builder_and_cannot_make_a_workflow(client, vera, workflow):
    client.force_login(vera)
    response = client.get(reverse("workflows:builder", args=[workflow.pk]))
    assert response.status_code == 200
    assert boot_of(response, "builder-boot")["can_edit"] is False
    assert client.post(reverse("workflows:new"), {"name": "Mine"}).status_code == 403
    assert Workflow.objects.count() == 1


def test_a_member_may_edit_in_the_builder(signed_in, workflow):
    response = signed_in.get(reverse("workflows:builder", args=[workflow.pk]))
    assert boot_of(response, "builder-boot")["can_edit"] is True


def test_the_boot_data_never_carries_a_webhook_secret(signed_in, workflow):
    workflow.definition["settings"] = {"triggers": [{"type": "webhook", "secret": "s3cret"}]}
    workflow.save()
    response = signed_in.get(reverse("workflows:builder", args=[workflow.pk]))
    assert "s3cret" not in response.content.decode()
    boot = boot_of(response, "builder-boot")
    assert boot["definition"]["settings"]["triggers"][0]["secret"] == "********"
