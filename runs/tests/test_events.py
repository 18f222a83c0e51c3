"""Delivering events: waiting runs resume when the name and match fit, event triggers start
published workflows, and an event id seen before does nothing twice."""

from engine.statuses import RunStatus, TriggerType, WorkflowStatus
from runs.events import deliver_event
from runs.models import Event, Run
from runs.tests.conftest import node
from workflows.models import Workflow


def waiting_run(make_run, drive, input=None, **config):
    run = make_run(
        [node("wait", "wait_for_event", {"event_name": "order.paid", **config})], input=input
    )
    run = drive(run)
    assert run.status == RunStatus.PAUSED
    return run


def triggered_workflow(alice, event="order.created", status=WorkflowStatus.PUBLISHED, **trigger):
    return Workflow.objects.create(
        name=f"On {event}",
        definition={
            "nodes": [node("echo", "transform", {"mapping": {"id": "{{ input.event.data.id }}"}})],
            "edges": [],
            "settings": {"triggers": [{"type": "event", "event": event, **trigger}]},
        },
        status=status,
        created_by=alice,
    )


def test_an_event_is_stored_even_when_nothing_listens(db, alice):
    event, resumed, started = deliver_event("nobody.cares", {"a": 1}, created_by=alice)
    assert (resumed, started) == ([], [])
    stored = Event.objects.get()
    assert (stored.name, stored.data, stored.event_id, stored.created_by) == (
        "nobody.cares",
        {"a": 1},
        None,
        alice,
    )
    assert event.public_id == str(event.pk) and event.duplicate is False


def test_a_waiting_run_resumes_with_the_event_as_its_output(make_run, drive):
    run = waiting_run(make_run, drive)
    _, resumed, started = deliver_event("order.paid", {"order": 7}, "evt-1")
    assert resumed == [str(run.pk)] and started == []
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    output = run.context["wait"]
    assert (output["name"], output["data"], output["id"]) == ("order.paid", {"order": 7}, "evt-1")
    assert output["received_at"].endswith("Z")
    assert Event.objects.get().resumed_run_ids == [str(run.pk)]


def test_only_runs_whose_match_holds_resume(make_run, drive):
    mine = waiting_run(make_run, drive, input={"order": 7}, match="event.data.order == input.order")
    other = waiting_run(
        make_run, drive, input={"order": 8}, match="event.data.order == input.order"
    )
    broken = waiting_run(make_run, drive, match="event.data.missing.deeper == 1")
    _, resumed, _ = deliver_event("order.paid", {"order": 7})
    assert resumed == [str(mine.pk)]
    assert Run.objects.get(pk=other.pk).status == RunStatus.PAUSED
    assert Run.objects.get(pk=broken.pk).status == RunStatus.PAUSED


def test_another_name_does_not_resume_and_a_resumed_step_is_not_resumed_again(make_run, drive):
    run = waiting_run(make_run, drive)
    assert deliver_event("order.refunded", {})[1] == []
    assert deliver_event("order.paid", {})[1] == [str(run.pk)]
    assert deliver_event("order.paid", {})[1] == []  # already resumed, not yet executed


def test_the_event_name_a_step_waits_for_may_be_a_template(make_run, drive):
    run = drive(
        make_run(
            [node("wait", "wait_for_event", {"event_name": "order.{{ input.kind }}"})],
            input={"kind": "shipped"},
        )
    )
    assert deliver_event("order.{{ input.kind }}", {})[1] == []
    assert deliver_event("order.shipped", {})[1] == [str(run.pk)]


def test_an_event_id_seen_before_does_nothing_twice(make_run, drive, alice):
    first_run = waiting_run(make_run, drive)
    triggered_workflow(alice, event="order.paid")
    event, resumed, started = deliver_event("order.paid", {"n": 1}, "evt-42")
    assert resumed == [str(first_run.pk)] and len(started) == 1
    drive(Run.objects.get(pk=started[0]))
    drive(first_run)

    waiting_run(make_run, drive)  # would match, but the event was delivered already
    again, resumed_again, started_again = deliver_event("order.paid", {"n": 2}, "evt-42")
    assert again.pk == event.pk and again.duplicate is True
    assert (resumed_again, started_again) == (resumed, started)
    assert Event.objects.count() == 1 and again.data == {"n": 1}
    assert Run.objects.filter(trigger_type=TriggerType.EVENT).count() == 1


def test_an_event_trigger_starts_the_published_workflow(db, alice):
    workflow = triggered_workflow(alice)
    _, _, started = deliver_event("order.created", {"id": 5}, "evt-5", created_by=alice)
    run = Run.objects.get(pk=started[0])
    assert run.workflow == workflow and run.trigger_type == TriggerType.EVENT
    assert run.input == {"event": {"name": "order.created", "data": {"id": 5}, "id": "evt-5"}}
    assert run.created_by == alice and run.status == RunStatus.PENDING


def test_a_trigger_filter_decides_which_events_start_a_run(db, alice):
    triggered_workflow(alice, filter="event.data.total > 100")
    assert deliver_event("order.created", {"total": 50})[2] == []
    assert len(deliver_event("order.created", {"total": 500})[2]) == 1
    assert deliver_event("order.created", {"no_total": 1})[2] == []  # a failing filter


def test_drafts_archived_versions_and_other_names_are_not_triggered(db, alice):
    triggered_workflow(alice, status=WorkflowStatus.DRAFT)
    triggered_workflow(alice, status=WorkflowStatus.ARCHIVED)
    triggered_workflow(alice, event="order.deleted")
    Workflow.objects.create(
        name="webhook only",
        definition={"nodes": [], "edges": [], "settings": {"triggers": [{"type": "webhook"}]}},
        status=WorkflowStatus.PUBLISHED,
    )
    assert deliver_event("order.created", {})[2] == []


def test_only_the_newest_published_version_of_a_workflow_is_triggered(db, alice):
    v1 = triggered_workflow(alice)
    v2 = v1.new_version(alice).publish()
    started = deliver_event("order.created", {"id": 1})[2]
    assert [Run.objects.get(pk=pk).workflow for pk in started] == [v2]
