"""Conditions skip exactly the losing branch's exclusive subtree; cycles never 'complete'."""

from engine.statuses import RunStatus, StepStatus
from runs.tests.conftest import edge, event_types, node


def _statuses(run):
    latest = {}
    for step in run.steps.order_by("attempt"):
        latest[step.step_id] = step.status
    return latest


def test_the_losing_branch_is_skipped_and_a_diamond_merge_runs(make_run, drive):
    run = make_run(
        [
            node("check", "condition", {"expression": "input.amount > 100"}),
            node("big", "transform", {"mapping": {"kind": "big"}}),
            node("small", "transform", {"mapping": {"kind": "small"}}),
            node("after_small", "transform", {"mapping": {}}),
            node("merge", "transform", {"mapping": {"done": True}}),
        ],
        [
            edge("check", "big", "true"),
            edge("check", "small", "false"),
            edge("small", "after_small"),
            edge("big", "merge"),
            edge("after_small", "merge"),
        ],
        input={"amount": 500},
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["check"] == {"result": True, "branch": "true"}
    assert _statuses(run) == {
        "check": "completed",
        "big": "completed",
        "small": "skipped",
        "after_small": "skipped",
        "merge": "completed",
    }
    skipped = run.events.get(event_type="step.skipped", step_id="small").payload
    assert skipped["reason"] == "branch not taken: check chose true"


def test_a_node_with_a_parent_outside_the_losing_branch_still_runs(make_run, drive):
    run = make_run(
        [
            node("check", "condition", {"expression": "false"}),
            node("yes", "transform", {"mapping": {}}),
            node("no", "transform", {"mapping": {}}),
            node("other", "transform", {"mapping": {}}),
            node("joined", "transform", {"mapping": {}}),
        ],
        [
            edge("check", "yes", "true"),
            edge("check", "no", "false"),
            edge("yes", "joined"),
            edge("other", "joined"),
        ],
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert _statuses(run)["yes"] == StepStatus.SKIPPED
    assert _statuses(run)["joined"] == StepStatus.COMPLETED


def test_a_cyclic_graph_that_reaches_the_engine_fails_instead_of_completing(make_run, drive):
    run = make_run(
        [
            node("start", "transform", {"mapping": {}}),
            node("a", "transform", {"mapping": {}}),
            node("b", "transform", {"mapping": {}}),
        ],
        [edge("start", "a"), edge("a", "b"), edge("b", "a")],
    )
    run = drive(run)
    assert run.status == RunStatus.FAILED
    assert "a, b never became ready" in run.error
    assert event_types(run)[-1] == "run.failed"
