import pytest
from django.db import IntegrityError, transaction

from engine.statuses import WorkflowStatus
from workflows.models import Workflow


def test_a_first_version_starts_its_own_lineage(workflow):
    assert workflow.lineage == workflow.id
    assert workflow.version == 1
    assert workflow.status == WorkflowStatus.DRAFT


def test_it_stores_the_definition_verbatim(alice):
    definition = {
        "nodes": [{"id": "a", "type": "transform", "position": {"x": 1.5, "y": 2}, "extra": [1]}],
        "edges": [],
        "viewport": {"x": 0, "y": 0, "zoom": 0.75},
        "settings": {"max_concurrency": 3},
    }
    wf = Workflow.objects.create(name="W", definition=definition, created_by=alice)
    assert Workflow.objects.get(pk=wf.pk).definition == definition


def test_versions_share_a_lineage_and_have_unique_numbers(workflow):
    workflow.status = WorkflowStatus.PUBLISHED
    workflow.save()
    v2 = Workflow.objects.create(name=workflow.name, lineage=workflow.lineage, version=2)
    assert list(Workflow.objects.versions_of(workflow.lineage)) == [v2, workflow]
    with pytest.raises(IntegrityError), transaction.atomic():
        Workflow.objects.create(
            name=workflow.name,
            lineage=workflow.lineage,
            version=2,
            status=WorkflowStatus.PUBLISHED,
        )


def test_a_workflow_has_at_most_one_draft(workflow):
    with pytest.raises(IntegrityError), transaction.atomic():
        Workflow.objects.create(name=workflow.name, lineage=workflow.lineage, version=2)


def test_latest_versions_lists_each_workflow_once(workflow, alice):
    workflow.status = WorkflowStatus.PUBLISHED
    workflow.save()
    v2 = Workflow.objects.create(name=workflow.name, lineage=workflow.lineage, version=2)
    other = Workflow.objects.create(name="Other", created_by=alice)
    assert set(Workflow.objects.latest_versions()) == {v2, other}
