"""Composition end to end: invoke_workflow (child runs), send_event, join policies and the
per-workflow state, on the database the suite runs on (PostgreSQL and SQLite)."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from engine.statuses import RunStatus, StepStatus, TriggerType, WorkflowStatus
from runs import lifecycle
from runs.models import Run
from runs.tests import steps  # noqa: F401  (registers the test step types)
from runs.tests.conftest import assert_gapless, edge, event_types, node
from workflows.models import Workflow, WorkflowState


def child_with_approval(published):
    return published(
        [
            node("ask", "wait_for_approval", {"prompt": "Go?"}),
            node("result", "transform", {"mapping": {"total": "{{ input.n * 2 }}"}}),
        ],
        [edge("ask", "result")],
    )


def parent_of(make_run, child, **config):
    return make_run(
        [
            node(
                "call",
                "invoke_workflow",
                {"workflow_id": str(child.pk), "input": {"n": "{{ input.n }}"}, **config},
            ),
            node("after", "transform", {"mapping": {"got": "{{ call.total }}"}}),
        ],
        [edge("call", "after")],
        input={"n": 21},
    )


def test_a_parent_waits_for_a_paused_child_and_completes_with_its_output(
    make_run, published, drive_all
):
    child_workflow = child_with_approval(published)
    parent = parent_of(make_run, child_workflow, output_step="result")
    drive_all()

    parent.refresh_from_db()
    child = Run.objects.get(parent_run=parent)
    assert parent.status == RunStatus.PAUSED and parent.lease_owner == ""
    assert child.status == RunStatus.PAUSED
    assert (child.parent_step_id, child.trigger_type) == ("call", TriggerType.WORKFLOW)
    assert child.input == {"n": 21}
    waiting = parent.steps.get(step_id="call")
    assert (waiting.status, waiting.waiting_for) == (StepStatus.WAITING, "run")
    assert waiting.output == {"child_run_id": str(child.pk)}
    assert str(child.pk) in parent.events.get(event_type="run.paused").payload["reason"]

    drive_all()  # nothing changes until a person approves the child
    parent.refresh_from_db()
    assert parent.status == RunStatus.PAUSED

    lifecycle.resume(child.pk, "ask", {"approved": True}, decided_by="bob")
    drive_all()
    parent.refresh_from_db()
    child.refresh_from_db()
    assert child.status == RunStatus.COMPLETED
    assert parent.status == RunStatus.COMPLETED
    assert parent.context["call"] == {"total": 42, "child_run_id": str(child.pk)}
    assert parent.context["after"] == {"got": 42}
    assert event_types(parent, "call") == [
        "step.started",
        "step.waiting",
        "step.completed",
        "context.updated",
    ]
    assert_gapless(parent)
    assert_gapless(child)


def test_without_output_step_the_output_is_the_childs_context(make_run, published, drive_all):
    child_workflow = published([node("result", "transform", {"mapping": {"x": 1}})])
    parent = make_run([node("call", "invoke_workflow", {"workflow_id": str(child_workflow.pk)})])
    drive_all()
    parent.refresh_from_db()
    child = Run.objects.get(parent_run=parent)
    assert parent.status == RunStatus.COMPLETED
    assert parent.context["call"] == {
        "input": {},
        "result": {"x": 1},
        "child_run_id": str(child.pk),
    }


def test_a_person_cannot_resume_a_step_that_waits_for_a_child(make_run, published, drive_all):
    from engine.errors import StateConflict

    parent = parent_of(make_run, child_with_approval(published))
    drive_all()
    with pytest.raises(StateConflict, match="waits for its child run"):
        lifecycle.resume(parent.pk, "call", {"status": "completed", "context": {}})


def test_wait_false_continues_with_the_child_run_id(make_run, published, drive_all):
    child_workflow = child_with_approval(published)
    parent = make_run(
        [
            node("call", "invoke_workflow", {"workflow_id": str(child_workflow.pk), "wait": False}),
            node("after", "transform", {"mapping": {"id": "{{ call.child_run_id }}"}}),
        ],
        [edge("call", "after")],
    )
    drive_all()
    parent.refresh_from_db()
    child = Run.objects.get(parent_run=parent)
    assert parent.status == RunStatus.COMPLETED
    assert child.status == RunStatus.PAUSED  # still waiting for its approval
    assert parent.context["after"] == {"id": str(child.pk)}
    assert parent.context["call"]["child_run_id"] == str(child.pk)


def test_cancelling_a_parent_leaves_children_it_does_not_wait_for(make_run, published, drive_all):
    child_workflow = child_with_approval(published)
    parent = make_run(
        [
            node("fire", "invoke_workflow", {"workflow_id": str(child_workflow.pk), "wait": False}),
            node("ask", "wait_for_approval", {"prompt": "Stop?"}),
        ],
        [edge("fire", "ask")],
    )
    drive_all()
    lifecycle.cancel(parent.pk)
    assert Run.objects.get(parent_run=parent).status == RunStatus.PAUSED


def test_a_failed_child_fails_the_step_and_on_error_applies(make_run, published, drive_all):
    child_workflow = published([node("boom", "test_flaky", {"failures": 9, "fatal": True})])
    failing = make_run([node("call", "invoke_workflow", {"workflow_id": str(child_workflow.pk)})])
    drive_all()
    failing.refresh_from_db()
    assert failing.status == RunStatus.FAILED
    assert "fatal failure 1" in failing.steps.get(step_id="call").error

    tolerant = make_run(
        [
            node(
                "call",
                "invoke_workflow",
                {"workflow_id": str(child_workflow.pk)},
                on_error="continue",
            ),
            node("after", "transform", {"mapping": {"error": "{{ call._error }}"}}),
        ],
        [edge("call", "after")],
    )
    drive_all()
    tolerant.refresh_from_db()
    assert tolerant.status == RunStatus.COMPLETED
    assert "failed" in tolerant.context["after"]["error"]


def test_cancelling_a_child_fails_the_parent_step_and_cancelling_a_parent_cancels_children(
    make_run, published, drive_all
):
    child_workflow = child_with_approval(published)
    first = parent_of(make_run, child_workflow)
    drive_all()
    lifecycle.cancel(Run.objects.get(parent_run=first).pk)
    drive_all()
    first.refresh_from_db()
    assert first.status == RunStatus.FAILED
    assert "was cancelled" in first.steps.get(step_id="call").error

    second = parent_of(make_run, child_workflow)
    drive_all()
    lifecycle.cancel(second.pk)
    second.refresh_from_db()
    child = Run.objects.get(parent_run=second)
    assert second.status == RunStatus.CANCELLED
    assert child.status == RunStatus.CANCELLED
    assert child.events.get(event_type="run.cancelled").payload["reason"] == (
        f"parent run {second.pk} cancelled"
    )
    assert "run.resumed" not in event_types(second)


def test_invocation_cycles_are_refused_at_run_time(make_run, published, drive_all, alice):
    # A runs B, B runs A: the second invocation of A is refused, naming the chain.
    a = Workflow.objects.create(name="A", status=WorkflowStatus.PUBLISHED, created_by=alice)
    b = published([node("call_a", "invoke_workflow", {"workflow_id": str(a.pk)})], name="B")
    a.definition = {"nodes": [node("call_b", "invoke_workflow", {"workflow_id": str(b.pk)})]}
    a.save()
    run = lifecycle.start_run(a, {})
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    child = Run.objects.get(parent_run=run)
    assert child.status == RunStatus.FAILED
    assert "invocation cycle refused: A → B → A" in child.steps.get(step_id="call_a").error
    assert not Run.objects.filter(parent_run=child).exists()


def test_a_self_invoking_workflow_is_refused(published, drive_all, alice):
    me = Workflow.objects.create(name="Me", status=WorkflowStatus.PUBLISHED, created_by=alice)
    me.definition = {"nodes": [node("again", "invoke_workflow", {"workflow_id": str(me.pk)})]}
    me.save()
    run = lifecycle.start_run(me, {})
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "invocation cycle refused: Me → Me" in run.error
    assert not Run.objects.filter(parent_run=run).exists()


def test_invoking_a_missing_or_unpublished_version_fails_clearly(make_run, published, drive_all):
    child_workflow = published([node("x", "transform", {"mapping": {}})])
    run = make_run(
        [node("call", "invoke_workflow", {"workflow_id": str(child_workflow.pk), "version": 7})]
    )
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "version 7 of workflow 'Child' is not published" in run.error


def test_latest_published_or_pinned_version_runs(make_run, published, drive_all):
    v1 = published([node("x", "transform", {"mapping": {"v": 1}})])
    v2 = v1.new_version()
    v2.definition = {"nodes": [node("x", "transform", {"mapping": {"v": 2}})], "edges": []}
    v2.save()
    v2.publish()
    latest = make_run(
        [node("call", "invoke_workflow", {"workflow_id": str(v1.pk), "output_step": "x"})]
    )
    pinned = make_run(
        [
            node(
                "call",
                "invoke_workflow",
                {"workflow_id": str(v2.pk), "version": 1, "output_step": "x"},
            )
        ]
    )
    drive_all()
    assert Run.objects.get(pk=latest.pk).context["call"]["v"] == 2
    assert Run.objects.get(pk=pinned.pk).context["call"]["v"] == 1


# -- send_event ------------------------------------------------------------------------------


def test_send_event_starts_triggered_workflows_and_resumes_waits(make_run, published, drive_all):
    listener = published(
        [node("got", "transform", {"mapping": {"order": "{{ input.event.data.order }}"}})],
        name="Listener",
        settings={"triggers": [{"type": "event", "event": "order.placed"}]},
    )
    waiter = make_run(
        [
            node(
                "wait",
                "wait_for_event",
                {"event_name": "order.placed", "match": "event.data.order == 7"},
            )
        ]
    )
    drive_all()
    assert Run.objects.get(pk=waiter.pk).status == RunStatus.PAUSED

    sender = make_run(
        [node("send", "send_event", {"name": "order.placed", "data": {"order": "{{ input.n }}"}})],
        input={"n": 7},
    )
    drive_all()
    sender.refresh_from_db()
    assert sender.status == RunStatus.COMPLETED
    output = sender.context["send"]
    assert output["event_id"] == f"run:{sender.pk}:send:1"
    started = Run.objects.get(workflow=listener)
    assert output["started_run_ids"] == [str(started.pk)]
    assert output["resumed_run_ids"] == [str(waiter.pk)]
    assert started.status == RunStatus.COMPLETED
    assert started.context["got"] == {"order": 7}
    waiter.refresh_from_db()
    assert waiter.status == RunStatus.COMPLETED
    assert waiter.context["wait"]["data"] == {"order": 7}


def test_a_replayed_send_event_step_does_not_emit_twice(make_run, published, drive_all):
    from runs.composition import send_event
    from runs.models import Event

    published(
        [node("got", "transform", {"mapping": {}})],
        name="Listener",
        settings={"triggers": [{"type": "event", "event": "ping"}]},
    )
    run = make_run([node("x", "transform", {"mapping": {}})])
    first = send_event(run.pk, "send", 1, {"name": "ping", "data": None})
    again = send_event(run.pk, "send", 1, {"name": "ping", "data": None})
    assert first.output["event_id"] == again.output["event_id"]
    assert Event.objects.filter(name="ping").count() == 1
    assert again.output["started_run_ids"] == first.output["started_run_ids"]


# -- join policies ---------------------------------------------------------------------------


def race(make_run, **join):
    return make_run(
        [
            node("start", "transform", {"mapping": {}}),
            node("fast", "transform", {"mapping": {"who": "fast"}}),
            node("slow", "test_probe", {"sleep": 0.3}),
            node("first", "transform", {"mapping": {"winner": "{{ fast.who }}"}}, **join),
        ],
        [
            edge("start", "fast"),
            edge("start", "slow"),
            edge("fast", "first"),
            edge("slow", "first"),
        ],
    )


def test_join_any_runs_the_node_once_when_both_parents_complete(make_run, drive_all):
    run = race(make_run, join="any")
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.steps.filter(step_id="first").count() == 1
    assert run.context["first"] == {"winner": "fast"}
    assert event_types(run, "first").count("step.started") == 1
    ignored = run.events.get(event_type="step.join_ignored")
    assert (ignored.step_id, ignored.payload["parent_step_id"]) == ("first", "slow")
    # it started before the slow parent finished
    started = run.events.get(event_type="step.started", step_id="first").seq
    slow_done = run.events.get(event_type="step.completed", step_id="slow").seq
    assert started < slow_done
    assert_gapless(run)


def test_join_all_waits_for_every_parent(make_run, drive_all):
    run = race(make_run)
    drive_all()
    run.refresh_from_db()
    started = run.events.get(event_type="step.started", step_id="first").seq
    slow_done = run.events.get(event_type="step.completed", step_id="slow").seq
    assert started > slow_done
    assert not run.events.filter(event_type="step.join_ignored").exists()


def test_join_any_is_skipped_only_when_every_parent_is_skipped(make_run, drive_all):
    def branches(expression):
        return make_run(
            [
                node("check", "condition", {"expression": expression}),
                node("yes", "transform", {"mapping": {"b": "yes"}}),
                node("no", "test_flaky", {"failures": 9, "fatal": True}, on_error="skip"),
                node("merge", "transform", {"mapping": {"ok": True}}, join="any"),
            ],
            [
                edge("check", "yes", "true"),
                edge("check", "no", "false"),
                edge("yes", "merge"),
                edge("no", "merge"),
            ],
        )

    taken = branches("true")  # `no` is on the losing branch: merge still runs
    skipped = branches("false")  # `yes` loses, `no` fails and is skipped: merge is skipped
    drive_all()
    taken.refresh_from_db()
    skipped.refresh_from_db()
    assert taken.status == RunStatus.COMPLETED and taken.context["merge"] == {"ok": True}
    assert skipped.status == RunStatus.COMPLETED
    merge = skipped.steps.get(step_id="merge")
    assert merge.status == StepStatus.SKIPPED
    assert (
        "every parent was skipped"
        in skipped.events.get(event_type="step.skipped", step_id="merge").payload["reason"]
    )


# -- per-workflow state -------------------------------------------------------------------


def test_set_state_writes_and_later_steps_and_runs_read_it(make_run, drive_all):
    run = make_run(
        [
            node("before", "transform", {"mapping": {"seen": "{{ state }}"}}),
            node("write", "set_state", {"values": {"cursor": "{{ input.page }}"}}),
            node("after", "transform", {"mapping": {"cursor": "{{ state.cursor }}"}}),
        ],
        [edge("before", "write"), edge("write", "after")],
        input={"page": 3},
    )
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.context["before"] == {"seen": {}}
    assert run.context["write"] == {"cursor": 3}
    assert run.context["after"] == {"cursor": 3}
    assert WorkflowState.objects.get(lineage=run.workflow.lineage).data == {"cursor": 3}
    event = run.events.get(event_type="state.updated")
    assert event.payload == {"step_id": "write", "attempt": 1, "keys": ["cursor"],
                             "values": {"cursor": 3}}  # fmt: skip
    assert_gapless(run)
    # in the log between the step's start and its completion
    write_events = run.events.filter(step_id="write").order_by("seq")
    assert [e.event_type for e in write_events if e.event_type.startswith(("step.", "state."))] == [
        "step.started",
        "state.updated",
        "step.completed",
    ]

    # another run of the same workflow (any version) starts with the state
    again = lifecycle.start_run(run.workflow, {"page": 4})
    drive_all()
    assert Run.objects.get(pk=again.pk).context["before"] == {"seen": {"cursor": 3}}


def test_a_replayed_set_state_writes_once(make_run):
    from runs.composition import set_state

    run = make_run([node("x", "transform", {"mapping": {}})])
    Run.objects.filter(pk=run.pk).update(fence=5)
    request = {"values": {}, "increment": {"n": 1}}
    first, _ = set_state(run.pk, 5, "count", 1, request)
    again, events = set_state(run.pk, 5, "count", 1, request)
    assert first.output == again.output == {"n": 1}
    assert events == []
    assert WorkflowState.objects.get(lineage=run.workflow.lineage).data == {"n": 1}


def test_a_stale_worker_writes_no_state(make_run):
    from engine.errors import LostLease
    from runs.composition import set_state

    run = make_run([node("x", "transform", {"mapping": {}})])
    with pytest.raises(LostLease):
        set_state(run.pk, 99, "count", 1, {"values": {"a": 1}, "increment": {}})
    assert not WorkflowState.objects.filter(lineage=run.workflow.lineage).exists()


def test_incrementing_a_key_that_is_not_a_number_fails_the_step(make_run, drive_all):
    run = make_run(
        [
            node("text", "set_state", {"values": {"n": "abc"}}),
            node("add", "set_state", {"increment": {"n": 1}}),
        ],
        [edge("text", "add")],
    )
    drive_all()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "'abc', not a number" in run.steps.get(step_id="add").error
    assert WorkflowState.objects.get(lineage=run.workflow.lineage).data == {"n": "abc"}


def test_concurrent_runs_incrementing_one_key_lose_no_write(published, drive_all):
    workflow = published(
        [node("count", "set_state", {"increment": {"n": 1}, "values": {"last": "{{ input.i }}"}})],
        name="Counter",
    )
    runs = [lifecycle.start_run(workflow, {"i": i}) for i in range(12)]
    drive_all()  # executed together, on the store's pool of database threads
    assert {Run.objects.get(pk=r.pk).status for r in runs} == {RunStatus.COMPLETED}
    state = WorkflowState.objects.get(lineage=workflow.lineage).data
    assert state["n"] == 12
    assert state["last"] in range(12)
    written = sorted(Run.objects.get(pk=r.pk).context["count"]["n"] for r in runs)
    assert written == list(range(1, 13))  # each run saw its own increment land


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_threads_writing_one_state_row_at_once_lose_no_write(make_run):
    import threading

    from django.db import connections

    from runs.composition import set_state

    runs = [make_run([node("x", "transform", {"mapping": {}})]) for _ in range(2)]
    workflow = runs[0].workflow
    for run in runs[1:]:
        Run.objects.filter(pk=run.pk).update(workflow=workflow)
    barrier = threading.Barrier(8)
    failures = []

    def write(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            for j in range(10):
                run = runs[(i + j) % len(runs)]
                request = {"values": {f"k{i}": j}, "increment": {"n": 1}}
                set_state(run.pk, 0, f"s{i}", j + 1, request)
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    state = WorkflowState.objects.get(lineage=workflow.lineage).data
    assert state == {"n": 80, **{f"k{i}": 9 for i in range(8)}}


def test_a_child_that_ends_while_its_parent_still_runs_resumes_it(make_run, published):
    """A worker runs both: the child is claimed and finishes while the parent's executor is
    still busy with a parallel step (it has not parked): the child's end reaches it."""
    from runs.tests.test_worker import status_of, until, with_worker

    child_workflow = published([node("x", "transform", {"mapping": {"v": 5}})])

    async def scenario(worker):
        parent = await sync_to_async(make_run)(
            [
                node(
                    "call",
                    "invoke_workflow",
                    {"workflow_id": str(child_workflow.pk), "output_step": "x"},
                ),
                node("slow", "test_probe", {"sleep": 2.0}),
            ]
        )
        await until(lambda: Run.objects.filter(parent_run=parent, status="completed").exists())
        await until(lambda: status_of(parent) == RunStatus.COMPLETED)
        done = await sync_to_async(Run.objects.get)(pk=parent.pk)
        assert done.context["call"]["v"] == 5
        types = await sync_to_async(event_types)(done)
        assert "run.paused" not in types

    with_worker(scenario)


def test_a_child_refused_by_its_rate_limit_fails_the_step_at_once(make_run, published, drive_all):
    limited = published(
        [node("x", "transform", {"mapping": {}})],
        settings={"rate_limit": {"limit": 1, "period_seconds": 3600}},
    )
    first, second = (
        make_run([node("call", "invoke_workflow", {"workflow_id": str(limited.pk)})])
        for _ in range(2)
    )
    drive_all()
    statuses = sorted(Run.objects.get(pk=r.pk).status for r in (first, second))
    assert statuses == [RunStatus.COMPLETED, RunStatus.FAILED]
    failed = Run.objects.get(pk__in=[first.pk, second.pk], status=RunStatus.FAILED)
    child = Run.objects.get(parent_run=failed)
    assert child.status == RunStatus.CANCELLED and "rate limited" in child.error
    assert f"child run {child.pk} was cancelled" in failed.error


def test_invocations_nest_at_most_ten_levels(published):
    from engine.errors import NonRetryableError
    from runs.composition import MAX_DEPTH, check_chain

    chain, links = [], {}
    for depth in range(MAX_DEPTH + 1):  # runs at depth 0 .. 10, each of its own workflow
        workflow = published([node("x", "transform", {"mapping": {}})], name=f"W{depth}")
        if chain:
            links = {"run_id": uuid.uuid4(), "parent_run_id": chain[-1].pk, "parent_step_id": "c"}
        chain.append(lifecycle.start_run(workflow, {}, **links))
    target = published([node("x", "transform", {"mapping": {}})], name="Deep")
    check_chain(chain[-2].pk, target)  # a child at depth 10 is allowed
    with pytest.raises(NonRetryableError, match=r"deeper than 10 levels: W0 → W1 → .* → Deep"):
        check_chain(chain[-1].pk, target)
