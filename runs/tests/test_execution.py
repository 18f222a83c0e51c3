"""Executing a run: ordering, checkpoints, the event log, templates, parallelism."""

from engine.statuses import RunStatus, StepStatus
from runs.tests import steps
from runs.tests.conftest import assert_gapless, edge, event_types, node


def test_it_runs_a_linear_chain_and_logs_every_transition(make_run, drive):
    run = make_run(
        [
            node("a", "transform", {"mapping": {"x": 1}}),
            node("b", "transform", {"mapping": {"y": "{{ a.x }}", "name": "{{ input.name }}"}}),
        ],
        [edge("a", "b")],
        input={"name": "Ada"},
    )
    run = drive(run)

    assert run.status == RunStatus.COMPLETED
    assert run.context == {"input": {"name": "Ada"}, "a": {"x": 1}, "b": {"y": 1, "name": "Ada"}}
    assert event_types(run) == [
        "run.started",
        "step.started",
        "step.completed",
        "context.updated",
        "step.started",
        "step.completed",
        "context.updated",
        "run.completed",
    ]
    assert_gapless(run)
    b = run.steps.get(step_id="b")
    assert (b.status, b.attempt) == ("completed", 1)
    assert b.input == {"mapping": {"y": 1, "name": "Ada"}}
    assert run.started_at and run.completed_at and run.lease_owner == ""


def test_the_event_payloads_have_the_spec_fields(make_run, drive):
    run = drive(make_run([node("a", "transform", {"mapping": {"x": 1}}, label="First")]))
    payloads = {e.event_type: e.payload for e in run.events.all()}
    assert payloads["run.started"] == {"status": "running"}
    assert payloads["step.started"] == {
        "step_id": "a",
        "step_type": "transform",
        "step_label": "First",
        "attempt": 1,
    }
    completed = payloads["step.completed"]
    assert completed["status"] == "completed" and completed["output_summary"] == '{"x":1}'
    assert isinstance(completed["duration_ms"], int)
    assert payloads["context.updated"] == {"step_id": "a", "keys": ["a"]}
    assert set(payloads["run.completed"]) == {"status", "duration_ms"}


def test_a_whole_template_keeps_the_type_and_data_is_never_rendered_again(make_run, drive):
    run = make_run(
        [
            node("a", "transform", {"mapping": {"items": [1, 2], "note": "{{ input.note }}"}}),
            node(
                "b",
                "transform",
                {
                    "mapping": {
                        "items": "{{ a.items }}",
                        "note": "{{ a.note }}",
                        "text": "n={{ a.note }}",
                    }
                },
            ),
        ],
        [edge("a", "b")],
        input={"note": "{{ 7 * 6 }}"},
    )
    run = drive(run)
    assert run.context["b"] == {
        "items": [1, 2],
        "note": "{{ 7 * 6 }}",
        "text": "n={{ 7 * 6 }}",
    }


def test_a_missing_reference_fails_the_step_naming_the_path(make_run, drive):
    run = drive(make_run([node("a", "transform", {"mapping": {"x": "{{ input.nope.deeper }}"}})]))
    assert run.status == RunStatus.FAILED
    step = run.steps.get(step_id="a")
    assert step.status == StepStatus.FAILED
    assert "input.nope" in step.error
    assert event_types(run, "a") == ["step.started", "step.failed"]


def test_parallel_steps_are_bounded_by_max_concurrency(make_run, drive):
    fan = [node(f"p{i}", "test_probe", {"sleep": 0.05}) for i in range(6)]
    run = make_run(
        [node("start", "transform", {"mapping": {}}), *fan],
        [edge("start", f"p{i}") for i in range(6)],
        max_concurrency=2,
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert steps.peak[str(run.pk)] == 2


def test_a_step_starts_as_soon_as_its_own_parents_are_done(make_run, drive):
    # slow -> after_slow, fast -> after_fast: after_fast must not wait for slow.
    run = make_run(
        [
            node("slow", "test_probe", {"sleep": 0.3}),
            node("fast", "test_probe", {"sleep": 0}),
            node("after_fast", "transform", {"mapping": {}}),
            node("after_slow", "transform", {"mapping": {}}),
        ],
        [edge("slow", "after_slow"), edge("fast", "after_fast")],
    )
    run = drive(run)
    order = [e.step_id for e in run.events.filter(event_type="step.completed").order_by("seq")]
    assert order.index("after_fast") < order.index("slow")


def test_the_parallel_fan_out_and_join_completes(make_run, drive):
    fan = [node(f"p{i}", "transform", {"mapping": {"i": i}}) for i in range(20)]
    run = make_run(
        [
            node("start", "transform", {"mapping": {}}),
            *fan,
            node("join", "transform", {"mapping": {"last": "{{ p19.i }}"}}),
        ],
        [edge("start", f"p{i}") for i in range(20)] + [edge(f"p{i}", "join") for i in range(20)],
    )
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["join"] == {"last": 19}
    assert_gapless(run)


def test_for_each_runs_the_sub_step_per_item(make_run, drive):
    run = make_run(
        [
            node(
                "each",
                "for_each",
                {
                    "items": "{{ input.names }}",
                    "step_type": "transform",
                    "step_config": {"mapping": {"hello": "{{ item }}", "at": "{{ index }}"}},
                    "concurrency": 2,
                },
            )
        ],
        input={"names": ["a", "b", "c"]},
    )
    run = drive(run)
    assert run.context["each"] == {
        "items": ["a", "b", "c"],
        "count": 3,
        "results": [{"hello": "a", "at": 0}, {"hello": "b", "at": 1}, {"hello": "c", "at": 2}],
    }


def test_for_each_records_a_failing_item_unless_fail_fast(make_run, drive):
    config = {
        "items": [1, 2],
        "step_type": "transform",
        "step_config": {"mapping": {"v": "{{ item.missing }}"}},
    }
    run = drive(make_run([node("each", "for_each", config)]))
    results = run.context["each"]["results"]
    assert [r["_index"] for r in results] == [0, 1] and "item.missing" in results[0]["_error"]

    run = drive(make_run([node("each", "for_each", {**config, "fail_fast": True})]))
    assert run.status == RunStatus.FAILED


def test_a_handler_bug_fails_the_step_not_the_worker(make_run, drive):
    run = drive(make_run([node("a", "test_crash")]))
    assert run.status == RunStatus.FAILED
    assert "RuntimeError: boom" in run.steps.get(step_id="a").error
