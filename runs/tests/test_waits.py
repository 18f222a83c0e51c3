"""Durable waits: approvals, events and delays park the run and release the worker."""

import time

import pytest

from engine.errors import StateConflict
from engine.statuses import RunStatus, StepStatus
from runs import lifecycle
from runs.tests.conftest import assert_gapless, edge, event_types, node


def approval_run(make_run, **config):
    return make_run(
        [
            node("ask", "wait_for_approval", {"prompt": "Ship it?", **config}),
            node("after", "transform", {"mapping": {"approved": "{{ ask.approved }}"}}),
        ],
        [edge("ask", "after")],
    )


def test_an_approval_pauses_the_run_and_releases_the_worker(make_run, drive):
    run = drive(approval_run(make_run))
    assert run.status == RunStatus.PAUSED
    assert run.lease_owner == "" and run.lease_expires_at is None
    step = run.steps.get(step_id="ask")
    assert (step.status, step.waiting_for) == ("waiting", "approval")
    assert event_types(run)[-2:] == ["step.waiting", "run.paused"]
    paused = run.events.get(event_type="run.paused").payload
    assert paused["waiting_step_id"] == "ask" and "Ship it?" in paused["reason"]
    waiting = run.events.get(event_type="step.waiting").payload
    assert waiting["waiting_for"] == "approval"


def test_an_approved_step_completes_with_the_decision_and_is_not_reentered(make_run, drive, bob):
    run = drive(approval_run(make_run))
    lifecycle.resume(run.pk, "ask", {"approved": True, "comment": "go"}, decided_by="bob")
    run = drive(run)

    assert run.status == RunStatus.COMPLETED
    assert run.context["ask"] == {"approved": True, "comment": "go", "decided_by": "bob"}
    assert run.context["after"] == {"approved": True}
    assert run.steps.filter(step_id="ask").count() == 1
    assert event_types(run, "ask") == [
        "step.started",
        "step.waiting",
        "step.completed",
        "context.updated",
    ]
    assert "run.resumed" in event_types(run)
    assert_gapless(run)


def test_a_rejection_fails_the_step_unless_on_reject_continue(make_run, drive):
    run = drive(approval_run(make_run))
    lifecycle.resume(run.pk, "ask", {"approved": False, "comment": "no"}, decided_by="bob")
    run = drive(run)
    assert run.status == RunStatus.FAILED
    assert "rejected by bob: no" in run.steps.get(step_id="ask").error

    run = drive(approval_run(make_run, on_reject="continue"))
    lifecycle.resume(run.pk, "ask", {"approved": False}, decided_by="bob")
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["after"] == {"approved": False}


def test_resuming_twice_or_a_step_that_does_not_wait_is_a_conflict(make_run, drive):
    run = drive(approval_run(make_run))
    with pytest.raises(StateConflict):
        lifecycle.resume(run.pk, "after", {"approved": True})
    lifecycle.resume(run.pk, "ask", {"approved": True})
    with pytest.raises(StateConflict):
        lifecycle.resume(run.pk, "ask", {"approved": True})
    run = drive(run)
    with pytest.raises(StateConflict):
        lifecycle.resume(run.pk, "ask", {"approved": True})


def test_outputs_of_steps_finishing_alongside_a_pause_are_kept(make_run, drive):
    run = make_run(
        [
            node("start", "transform", {"mapping": {}}),
            node("ask", "wait_for_approval", {}),
            node("work", "test_probe", {"sleep": 0.1, "v": 1}),
        ],
        [edge("start", "ask"), edge("start", "work")],
    )
    run = drive(run)
    assert run.status == RunStatus.PAUSED
    assert run.context["work"]["echo"] == {"sleep": 0.1, "v": 1}
    assert run.steps.get(step_id="work").status == StepStatus.COMPLETED


def test_an_approval_timeout_fails_the_step(make_run, drive):
    run = drive(approval_run(make_run, timeout_seconds=0.1), park_after=0)
    assert run.status == RunStatus.PAUSED and run.wake_at is not None
    time.sleep(0.15)
    run = drive(run, park_after=0)
    assert run.status == RunStatus.FAILED
    assert "no decision within 0.1 seconds" in run.error


def test_a_delay_parks_the_run_with_a_wake_up_time_and_then_continues(make_run, drive):
    run = make_run(
        [node("wait", "delay", {"seconds": 0.2}), node("after", "transform", {"mapping": {}})],
        [edge("wait", "after")],
    )
    run = drive(run, park_after=0, activations=1)
    assert run.status == RunStatus.RUNNING
    assert run.lease_owner == "" and run.wake_at is not None
    step = run.steps.get(step_id="wait")
    assert (step.status, step.waiting_for) == ("waiting", "delay")
    assert run.events.filter(event_type="step.started", step_id="wait").count() == 1
    assert run.events.get(event_type="step.waiting").payload["waiting_for"] == "delay"

    run = drive(run, park_after=0, wait_between=0.05, activations=20)
    assert run.status == RunStatus.COMPLETED
    assert run.context["wait"] == {"delayed_seconds": 0.2}


def test_a_short_delay_is_waited_out_in_process(make_run, drive):
    run = drive(make_run([node("wait", "delay", {"seconds": 0.05})]), park_after=1)
    assert run.status == RunStatus.COMPLETED
    assert event_types(run, "wait") == [
        "step.started",
        "step.waiting",
        "step.completed",
        "context.updated",
    ]


def test_an_event_resumes_a_waiting_step_with_its_data(make_run, drive):
    run = make_run(
        [
            node("wait", "wait_for_event", {"event_name": "order.paid"}),
            node("after", "transform", {"mapping": {"amount": "{{ wait.data.amount }}"}}),
        ],
        [edge("wait", "after")],
    )
    run = drive(run)
    assert run.status == RunStatus.PAUSED
    lifecycle.resume(run.pk, "wait", {"name": "order.paid", "data": {"amount": 5}, "id": "e1"})
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["wait"]["data"] == {"amount": 5}
    assert run.context["after"] == {"amount": 5}
