"""The composition step types on their own: config checks, what they ask the store to do
(`Effect`), how an invoke turns its child's outcome into output; `join` in the graph."""

import pytest

import engine.handlers  # noqa: F401 - registers the built-in step types
from engine.errors import NonRetryableError, StepError
from engine.graph import Graph
from engine.handlers import invoke_workflow
from engine.registry import Effect, registry
from engine.scope import Scope
from engine.validation import validate_definition

CHILD = "5b0c0f2e-7d3a-4d7e-9b1a-2f6c1e0a9d44"


async def effect_of(step_type: str, config: dict) -> Effect:
    with pytest.raises(Effect) as raised:
        await registry.get(step_type).execute(config, {})
    return raised.value


async def fails(step_type: str, config: dict) -> str:
    with pytest.raises(NonRetryableError) as raised:
        await registry.get(step_type).execute(config, {})
    return str(raised.value)


async def test_invoke_asks_the_store_to_start_the_child():
    effect = await effect_of("invoke_workflow", {"workflow_id": CHILD, "input": {"n": 1}})
    assert effect.kind == "invoke_workflow"
    assert effect.request == {
        "workflow_id": CHILD,
        "version": None,
        "input": {"n": 1},
        "wait": True,
        "output_step": None,
    }
    no_wait = await effect_of(
        "invoke_workflow", {"workflow_id": CHILD, "wait": False, "version": 2}
    )
    assert (no_wait.request["wait"], no_wait.request["version"]) == (False, 2)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"workflow_id": "nope"}, "not a workflow id"),
        ({"workflow_id": CHILD, "version": "2"}, "'version' must be a whole number"),
        ({"workflow_id": CHILD, "input": [1]}, "'input' must be an object"),
        ({"workflow_id": CHILD, "output_step": 3}, "'output_step' must be a step id"),
    ],
)
async def test_invoke_refuses_a_bad_config(config, message):
    assert message in await fails("invoke_workflow", config)


def test_a_completed_child_gives_its_context_or_one_steps_output():
    done = {"child_run_id": "c1", "status": "completed", "context": {"input": {}, "a": {"x": 1}}}
    assert invoke_workflow.resume({}, done) == {"input": {}, "a": {"x": 1}, "child_run_id": "c1"}
    assert invoke_workflow.resume({"output_step": "a"}, done) == {"x": 1, "child_run_id": "c1"}
    with pytest.raises(NonRetryableError, match="has no output of step 'b'"):
        invoke_workflow.resume({"output_step": "b"}, done)


def test_a_failed_child_fails_retryably_and_a_cancelled_one_for_good():
    with pytest.raises(StepError) as failed:
        invoke_workflow.resume({}, {"child_run_id": "c1", "status": "failed", "error": "boom"})
    assert failed.value.retryable and "child run c1 failed: boom" in str(failed.value)
    with pytest.raises(NonRetryableError, match="child run c1 was cancelled"):
        invoke_workflow.resume({}, {"child_run_id": "c1", "status": "cancelled"})
    with pytest.raises(NonRetryableError, match="only with its child run's outcome"):
        invoke_workflow.resume({}, {"approved": True})


async def test_send_event_asks_the_store_to_deliver():
    effect = await effect_of("send_event", {"name": "order.placed", "data": {"id": 7}})
    assert (effect.kind, effect.request) == (
        "send_event",
        {"name": "order.placed", "data": {"id": 7}},
    )
    assert "needs a 'name'" in await fails("send_event", {"name": " "})


async def test_set_state_checks_what_it_writes():
    effect = await effect_of("set_state", {"values": {"cursor": 3}, "increment": {"n": 2}})
    assert effect.request == {"values": {"cursor": 3}, "increment": {"n": 2}}
    assert "needs 'values' or 'increment'" in await fails("set_state", {})
    assert "both set and incremented: n" in await fails(
        "set_state", {"values": {"n": 1}, "increment": {"n": 1}}
    )
    assert "must be a number" in await fails("set_state", {"increment": {"n": "1"}})
    assert "must be a number" in await fails("set_state", {"increment": {"n": True}})


async def test_for_each_cannot_run_a_step_that_needs_the_store():
    config = {"items": [1], "step_type": "set_state", "step_config": {"values": {"a": 1}}}
    message = await fails("for_each", config)
    assert "runs as its own step" in message


def test_templates_see_the_state_and_the_run():
    scope = Scope({"input": {}}, {"input": 0}, {"id": "r"}, {"cursor": 5})
    assert scope["state"] == {"cursor": 5}
    assert list(scope) == ["input", "run", "state"]
    assert Scope({}, {}, {})["state"] == {}


def test_the_graph_reads_each_nodes_join_policy():
    definition = {
        "nodes": [
            {"id": "a"},
            {"id": "b"},
            {"id": "c", "data": {"join": "any"}},
            {"id": "lonely", "data": {"join": "any"}},
            {"id": "d", "data": {"join": "bogus"}},
        ],
        "edges": [
            {"id": "1", "source": "a", "target": "c"},
            {"id": "2", "source": "b", "target": "c"},
            {"id": "3", "source": "c", "target": "d"},
        ],
    }
    graph = Graph.from_definition(definition)
    assert [graph.join_policy(n) for n in ("a", "c", "lonely", "d")] == ["all", "any", "any", "all"]
    assert graph.join_any_nodes() == {"c"}  # a root's policy is moot


def test_definitions_with_the_composition_steps_validate():
    definition = {
        "nodes": [
            {"id": "call", "type": "invoke_workflow", "data": {"config": {"workflow_id": CHILD}}},
            {"id": "tell", "type": "send_event", "data": {"config": {"name": "x"}}},
            {
                "id": "keep",
                "type": "set_state",
                "data": {"config": {"values": {"last": "{{ call.child_run_id }}"}}, "join": "any"},
            },
        ],
        "edges": [
            {"id": "1", "source": "call", "target": "keep"},
            {"id": "2", "source": "tell", "target": "keep"},
        ],
    }
    assert validate_definition(definition) == []
    definition["nodes"][2]["data"]["join"] = "first"
    definition["nodes"][1]["data"]["config"] = {"name": "x", "extra": 1}
    problems = {p.loc: p.msg for p in validate_definition(definition)}
    assert ("nodes", "keep", "data", "join") in problems
    assert any(loc[:3] == ("nodes", "tell", "data") for loc in problems)
