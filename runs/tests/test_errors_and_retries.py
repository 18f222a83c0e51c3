"""Retries, backoff, error policies and timeouts (SPEC §2, §3)."""

from engine.statuses import RunStatus, StepStatus
from runs.tests import steps
from runs.tests.conftest import assert_gapless, edge, event_types, node

FAST_RETRY = {"max_attempts": 3, "backoff_base": 0.01}


def test_a_step_that_fails_twice_then_succeeds_emits_the_spec_sequence(make_run, drive):
    run = drive(make_run([node("a", "test_flaky", {"failures": 2}, **FAST_RETRY)]))

    assert run.status == RunStatus.COMPLETED
    assert event_types(run, "a") == [
        "step.started",
        "step.retrying",
        "step.started",
        "step.retrying",
        "step.started",
        "step.completed",
        "context.updated",
    ]
    attempts = list(
        run.steps.filter(step_id="a").order_by("attempt").values_list("attempt", "status")
    )
    assert attempts == [(1, "failed"), (2, "failed"), (3, "completed")]
    retrying = run.events.filter(event_type="step.retrying").first().payload
    assert retrying == {
        "step_id": "a",
        "attempt": 1,
        "max_attempts": 3,
        "backoff_seconds": 0.01,
        "error": "failure 1",
    }
    assert run.context["a"] == {"calls": 3}
    assert_gapless(run)


def test_a_backoff_parks_the_run_without_holding_a_worker(make_run, drive):
    run = make_run([node("a", "test_flaky", {"failures": 1}, max_attempts=2, backoff_base=0.2)])
    run = drive(run, park_after=0, activations=1)

    assert run.status == RunStatus.RUNNING
    assert run.lease_owner == "" and run.wake_at is not None
    waiting = run.steps.get(step_id="a", attempt=2)
    assert (waiting.status, waiting.waiting_for) == ("waiting", "backoff")

    run = drive(run, park_after=0, wait_between=0.05, activations=20)
    assert run.status == RunStatus.COMPLETED
    assert run.steps.get(step_id="a", attempt=2).status == StepStatus.COMPLETED


def test_a_non_retryable_error_fails_at_once_with_a_failure_event(make_run, drive):
    run = drive(make_run([node("a", "test_flaky", {"failures": 5, "fatal": True}, **FAST_RETRY)]))

    assert run.status == RunStatus.FAILED
    assert run.steps.get().status == StepStatus.FAILED  # one attempt, not left running
    assert event_types(run) == ["run.started", "step.started", "step.failed", "run.failed"]
    failed = run.events.get(event_type="run.failed").payload
    assert failed["failed_step_id"] == "a" and "fatal failure 1" in failed["error"]
    assert "fatal failure 1" in run.error


def test_a_condition_whose_expression_raises_fails_the_step(make_run, drive):
    run = drive(make_run([node("c", "condition", {"expression": "1 / 0 > 1"})]))
    step = run.steps.get(step_id="c")
    assert step.status == StepStatus.FAILED
    assert "division" in step.error.lower()
    assert run.status == RunStatus.FAILED
    assert event_types(run, "c") == ["step.started", "step.failed"]


def test_on_error_continue_lets_downstream_run_and_never_reruns_the_step(make_run, drive):
    run = make_run(
        [
            node("a", "test_flaky", {"failures": 99, "fatal": True}, on_error="continue"),
            node("b", "transform", {"mapping": {"seen": "{{ a._error }}"}}),
        ],
        [edge("a", "b")],
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["a"] == {"_error": "fatal failure 1"}
    assert run.context["b"] == {"seen": "fatal failure 1"}
    assert steps.calls[f"{run.pk}:a"] == 1
    assert run.steps.filter(step_id="a").count() == 1

    # Another activation of the finished run does nothing.
    assert drive(run).events.count() == run.events.count()


def test_on_error_skip_marks_the_step_skipped_without_output(make_run, drive):
    run = make_run(
        [
            node("a", "test_flaky", {"failures": 99, "fatal": True}, on_error="skip"),
            node("b", "transform", {"mapping": {"ok": True}}),
        ],
        [edge("a", "b")],
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert "a" not in run.context
    assert run.steps.get(step_id="a").status == StepStatus.SKIPPED
    assert event_types(run, "a") == ["step.started", "step.failed", "step.skipped"]


def test_a_step_timeout_is_a_retryable_failure(make_run, drive):
    run = drive(
        make_run([node("a", "test_probe", {"sleep": 5}, timeout_seconds=0.05, **FAST_RETRY)])
    )
    assert run.status == RunStatus.FAILED
    assert run.steps.filter(step_id="a").count() == 3
    assert "timed out after 0.05 seconds" in run.error


def test_a_run_timeout_fails_the_run_and_stops_its_steps(make_run, drive):
    run = make_run(
        [node("a", "test_probe", {"sleep": 5})],
        settings={"timeout_seconds": 0.1},
    )
    run = drive(run)
    assert run.status == RunStatus.FAILED
    assert "timed out" in run.error
    assert run.steps.get(step_id="a").status == StepStatus.CANCELLED
    assert f"{run.pk}:a" in steps.cancelled


def test_an_unknown_step_type_fails_the_step_clearly(make_run, drive):
    run = drive(make_run([node("a", "no_such_type")]))
    assert run.status == RunStatus.FAILED
    assert "unknown step type 'no_such_type'" in run.steps.get().error
