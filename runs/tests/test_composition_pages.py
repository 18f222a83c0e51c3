"""Composition on the pages: parent and child runs link to each other on the run page, and
the workflow page shows the workflow's state."""

from django.urls import reverse

from engine.statuses import RunStatus
from runs.models import Run
from runs.tests.conftest import node
from workflows.models import WorkflowState


def test_parent_and_child_run_pages_link_to_each_other(client, bob, make_run, published, drive_all):
    child_workflow = published([node("ask", "wait_for_approval", {"prompt": "Go?"})], name="Kid")
    parent = make_run([node("call", "invoke_workflow", {"workflow_id": str(child_workflow.pk)})])
    drive_all()
    child = Run.objects.get(parent_run=parent)
    assert child.status == RunStatus.PAUSED
    client.force_login(bob)

    page = client.get(reverse("runs:detail", args=[parent.pk])).content.decode()
    assert f'href="{reverse("runs:detail", args=[child.pk])}"' in page
    assert "Child runs:" in page and "Kid" in page

    page = client.get(reverse("runs:detail", args=[child.pk])).content.decode()
    assert f'href="{reverse("runs:detail", args=[parent.pk])}"' in page
    assert "started by" in page and "<code>call</code>" in page


def test_the_workflow_page_shows_its_state(client, bob, published):
    workflow = published([node("x", "transform", {"mapping": {}})])
    client.force_login(bob)
    page = client.get(reverse("workflows:detail", args=[workflow.pk])).content.decode()
    assert "No state yet" in page
    WorkflowState.objects.create(lineage=workflow.lineage, data={"cursor": "abc-123"})
    page = client.get(reverse("workflows:detail", args=[workflow.pk])).content.decode()
    assert "&quot;cursor&quot;: &quot;abc-123&quot;" in page
