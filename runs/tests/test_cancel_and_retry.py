"""Cancelling sticks and stops work; retry-from-failed continues with new attempts."""

import pytest

from engine.errors import StateConflict
from engine.statuses import RunStatus, StepStatus
from runs import lifecycle
from runs.tests import steps
from runs.tests.conftest import assert_gapless, edge, event_types, node


def test_a_cancel_before_the_run_starts_sticks(make_run, drive):
    run = make_run([node("a", "transform", {"mapping": {}})])
    lifecycle.cancel(run.pk)
    run = drive(run)
    assert run.status == RunStatus.CANCELLED
    assert event_types(run) == ["run.cancelled"]
    assert not run.steps.exists()


def test_cancelling_a_finished_run_is_a_conflict(make_run, drive):
    run = drive(make_run([node("a", "transform", {"mapping": {}})]))
    with pytest.raises(StateConflict):
        lifecycle.cancel(run.pk)


def test_a_cancel_stops_waiting_steps_and_the_run_stays_cancelled(make_run, drive):
    run = drive(make_run([node("ask", "wait_for_approval", {})]))
    run = lifecycle.cancel(run.pk)
    assert run.steps.get().status == StepStatus.CANCELLED
    assert drive(run).status == RunStatus.CANCELLED
    with pytest.raises(StateConflict):
        lifecycle.resume(run.pk, "ask", {"approved": True})


def test_retry_from_failed_continues_with_new_attempt_numbers(make_run, drive):
    run = make_run(
        [
            node("first", "test_probe", {}),
            node("flaky", "test_flaky", {"failures": 1}),
            node("last", "transform", {"mapping": {"ok": "{{ flaky.calls }}"}}),
        ],
        [edge("first", "flaky"), edge("flaky", "last")],
    )
    run = drive(run)
    assert run.status == RunStatus.FAILED

    run = lifecycle.retry(run.pk)
    assert run.status == RunStatus.RUNNING and run.error == ""
    run = drive(run)

    assert run.status == RunStatus.COMPLETED
    attempts = list(
        run.steps.filter(step_id="flaky").order_by("attempt").values_list("attempt", "status")
    )
    assert attempts == [(1, "failed"), (2, "completed")]
    assert steps.calls[f"{run.pk}:first"] == 1  # completed steps never run again
    assert run.context["last"] == {"ok": 2}
    resumed = run.events.get(event_type="run.resumed").payload
    assert resumed == {"status": "running", "resumed_step_id": "flaky", "reason": "retry"}
    assert_gapless(run)


def test_retry_of_a_run_that_did_not_fail_is_a_conflict(make_run, drive):
    run = drive(make_run([node("a", "transform", {"mapping": {}})]))
    with pytest.raises(StateConflict):
        lifecycle.retry(run.pk)
