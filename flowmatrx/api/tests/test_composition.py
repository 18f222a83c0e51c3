"""The API side of composition: `parent_run_id` on runs, the workflow state resource."""

from engine.statuses import WorkflowStatus
from runs import lifecycle
from workflows.models import Workflow, WorkflowState


def test_a_child_run_names_its_parent_and_a_top_level_run_none(api, alice):
    workflow = Workflow.objects.create(name="W", status=WorkflowStatus.PUBLISHED, created_by=alice)
    parent = lifecycle.start_run(workflow, {})
    child = lifecycle.start_run(
        workflow, {}, run_id="7e9b1f6a-1111-4c2e-9a57-0d4a3f0b9c11",
        parent_run_id=parent.pk, parent_step_id="call",
    )  # fmt: skip
    body = api.get(f"/runs/{child.pk}").json()
    assert (body["parent_run_id"], body["parent_step_id"]) == (str(parent.pk), "call")
    body = api.get(f"/runs/{parent.pk}").json()
    assert (body["parent_run_id"], body["parent_step_id"]) == (None, None)


def test_the_state_of_a_workflow_is_shared_by_its_versions(api, alice):
    v1 = Workflow.objects.create(name="W", status=WorkflowStatus.PUBLISHED, created_by=alice)
    v2 = v1.new_version()
    WorkflowState.objects.create(lineage=v1.lineage, data={"cursor": 41})
    for version in (v1, v2):
        response = api.get(f"/workflows/{version.pk}/state")
        assert response.status_code == 200
        assert response.json() == {"lineage_id": str(v1.lineage), "state": {"cursor": 41}}


def test_a_workflow_without_state_has_an_empty_one_and_unknown_ids_404(api, alice):
    workflow = Workflow.objects.create(name="W", created_by=alice)
    assert api.get(f"/workflows/{workflow.pk}/state").json()["state"] == {}
    missing = api.get("/workflows/00000000-0000-4000-8000-000000000000/state")
    assert missing.status_code == 404
