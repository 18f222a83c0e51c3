"""The example workflows: they load (once), validate, and run to completion without any
outside service (the approval one once approved)."""

import pytest

from engine.statuses import RunStatus, WorkflowStatus
from runs import lifecycle
from runs.models import Run
from triggers.models import Schedule
from workflows.examples import example_files, is_empty_installation, load_examples
from workflows.models import Workflow, WorkflowState


@pytest.fixture
def examples(transactional_db):
    return {workflow.name: workflow for workflow in load_examples()}


def named(examples, prefix):
    return next(w for name, w in examples.items() if name.startswith(prefix))


def test_examples_load_published_valid_and_described_once(examples):
    assert len(examples) == len(example_files()) == 6
    for workflow in examples.values():
        assert workflow.status == WorkflowStatus.PUBLISHED
        assert workflow.validate() == []
        assert len(workflow.description) > 80
    assert load_examples() == []  # loading again duplicates nothing
    assert Workflow.objects.count() == 6
    assert not is_empty_installation()


def test_the_scheduled_example_starts_disabled(examples):
    scheduled = named(examples, "Example: nightly digest")
    schedule = Schedule.objects.get(lineage=scheduled.lineage)
    assert schedule.enabled is False


def test_an_empty_installation_is_one_without_workflows_or_runs(transactional_db):
    assert is_empty_installation()


def test_the_fan_out_example_completes_with_the_diamond_merge(examples, drive_all):
    run = lifecycle.start_run(named(examples, "Example: fan-out"), {})
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.context["summary"] == {
        "order": "A-1001",
        "tax": pytest.approx(25.2),
        "shipping": 0,
        "discounted": True,
    }
    assert run.steps.get(step_id="full_price").status == "skipped"


def test_the_for_each_example_completes_after_retries(examples, drive_all):
    run = lifecycle.start_run(named(examples, "Example: a list with retries"), {})
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    slugs = [r["slug"] for r in run.context["slugs"]["results"]]
    assert slugs == ["ada-lovelace", "grace-hopper", "linus-torvalds", "barbara-liskov"]
    assert run.context["publish"]["attempt"] == 3
    assert run.events.filter(event_type="step.retrying", step_id="publish").count() == 2


def test_the_approval_example_waits_for_a_person(examples, drive_all):
    run = lifecycle.start_run(named(examples, "Example: expense approval"), {})
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    lifecycle.resume(run.pk, "approve", {"approved": True, "comment": "ok"}, decided_by="bob")
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.context["record"] == {"approved_by": "bob", "comment": "ok", "amount": 240}


def test_the_event_pair_example_sends_and_is_started_and_counts_in_state(examples, drive_all):
    sender = named(examples, "Example: order intake")
    listener = named(examples, "Example: order fulfilment")
    first = lifecycle.start_run(sender, {})
    drive_all()
    second = lifecycle.start_run(sender, {})
    drive_all()
    for run in (first, second):
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED
    started = Run.objects.filter(workflow=listener).order_by("created_at")
    assert [r.status for r in started] == [RunStatus.COMPLETED] * 2
    assert started[0].input["event"]["data"] == {"order_id": str(first.pk), "items": 3}
    assert [r.context["report"]["orders_so_far"] for r in started] == [1, 2]
    state = WorkflowState.objects.get(lineage=listener.lineage).data
    assert state == {"orders_received": 2, "last_order_id": str(second.pk)}


def test_the_scheduled_example_runs_by_hand(examples, drive_all):
    run = lifecycle.start_run(named(examples, "Example: nightly digest"), {})
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.context["remember"] == {"last_digest_run": str(run.pk), "digests": 1}
