"""Publishing, versions, duplicates and archiving, and which versions may run."""

import pytest

from engine.errors import InvalidDefinition, StateConflict
from engine.statuses import RunStatus, WorkflowStatus
from runs.lifecycle import start_run
from runs.models import Run
from workflows.models import Workflow

BROKEN = {
    "nodes": [
        {"id": "a", "type": "no_such_type", "position": {"x": 0, "y": 0}, "data": {}},
        {"id": "b", "type": "transform", "position": {"x": 0, "y": 0}, "data": {"config": {}}},
    ],
    "edges": [
        {"id": "e1", "source": "a", "target": "b"},
        {"id": "e2", "source": "b", "target": "x"},
    ],
}


@pytest.fixture
def broken(alice):
    return Workflow.objects.create(name="Broken", definition=BROKEN, created_by=alice)


def test_publishing_a_valid_draft_freezes_it(workflow):
    assert workflow.validate() == []
    workflow.publish()
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.PUBLISHED
    assert workflow.published_at is not None


def test_publishing_an_invalid_draft_lists_every_problem_and_changes_nothing(broken):
    with pytest.raises(InvalidDefinition) as caught:
        broken.publish()
    places = {(p.node_id, p.edge_id, p.code) for p in caught.value.problems}
    assert (None, "e2", "dangling_edge") in places
    assert ("a", None, "unknown_type") in places
    assert ("b", None, "missing_config") in places
    broken.refresh_from_db()
    assert broken.status == WorkflowStatus.DRAFT
    assert broken.published_at is None


def test_a_published_version_cannot_be_published_again(workflow):
    workflow.publish()
    with pytest.raises(StateConflict, match="new version"):
        workflow.publish()


def test_a_new_version_is_the_next_draft_of_the_same_lineage(workflow, bob):
    workflow.publish()
    v2 = workflow.new_version(created_by=bob)
    assert (v2.lineage, v2.version, v2.status) == (workflow.lineage, 2, WorkflowStatus.DRAFT)
    assert v2.definition == workflow.definition
    assert v2.created_by == bob
    with pytest.raises(StateConflict, match="already a draft"):
        workflow.new_version()
    v2.publish()
    assert workflow.new_version().version == 3


def test_a_duplicate_starts_a_new_lineage(workflow, bob):
    workflow.publish()
    copy = workflow.duplicate(created_by=bob)
    assert copy.lineage == copy.id != workflow.lineage
    assert (copy.version, copy.status, copy.name) == (1, WorkflowStatus.DRAFT, "Greeting (copy)")
    assert copy.definition == workflow.definition


def test_archiving_takes_a_published_version_out_of_service(workflow):
    with pytest.raises(StateConflict):
        workflow.archive()
    workflow.publish()
    workflow.archive()
    assert Workflow.objects.get(pk=workflow.pk).status == WorkflowStatus.ARCHIVED
    with pytest.raises(StateConflict, match="archived"):
        start_run(workflow, {})


def test_a_draft_runs_only_when_it_is_valid(workflow, broken):
    assert start_run(workflow, {"name": "x"}).status == RunStatus.PENDING
    with pytest.raises(InvalidDefinition, match="the draft cannot run"):
        start_run(broken, {})
    assert Run.objects.filter(workflow=broken).count() == 0
