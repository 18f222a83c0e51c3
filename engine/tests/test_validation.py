"""Specification of `engine.validation`: every problem of a definition, reported at once."""

from __future__ import annotations

from itertools import pairwise

import pytest

import engine.handlers  # noqa: F401 - registers the built-in step types
from engine import validation
from engine.registry import Registry
from engine.templates import check_syntax, references
from engine.validation import Problem, validate_definition

# ------------------------------------------------------------------------------ helpers


def node(node_id: str, type_: str = "transform", config: dict | None = None, **data) -> dict:
    """A canvas node; `config` defaults to a valid config for `type_`."""
    if config is None:
        config = DEFAULT_CONFIGS.get(type_, {})
    return {
        "id": node_id,
        "type": type_,
        "position": {"x": 0, "y": 0},
        "data": {"label": node_id.title(), "config": config, **data},
    }


DEFAULT_CONFIGS = {
    "transform": {"mapping": {"ok": True}},
    "condition": {"expression": "input.n > 1"},
    "delay": {"seconds": 5},
    "wait_for_event": {"event_name": "order.paid"},
    "for_each": {"items": [1, 2], "step_type": "transform", "step_config": {"mapping": {}}},
}


def edge(source: str, target: str, handle: str | None = None, edge_id: str | None = None) -> dict:
    raw = {"id": edge_id or f"{source}->{target}", "source": source, "target": target}
    if handle is not None:
        raw["sourceHandle"] = handle
    return raw


def definition(nodes: list, edges: list, **extra) -> dict:
    return {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1}, **extra}


def chain(*nodes: dict) -> dict:
    """The nodes connected one after the other."""
    ids = [n["id"] for n in nodes]
    return definition(list(nodes), [edge(a, b) for a, b in pairwise(ids)])


def branching(condition: dict) -> dict:
    """The condition with a step on each branch."""
    cid = condition["id"]
    return definition(
        [condition, node("yes"), node("no")],
        [edge(cid, "yes", "true"), edge(cid, "no", "false")],
    )


def summary(problems: list[Problem]) -> list[tuple[str, str | None]]:
    """(code, node or edge id) of each problem, in order."""
    return [(p.code, p.node_id if p.node_id is not None else p.edge_id) for p in problems]


def only(problems: list[Problem], code: str | None = None) -> Problem:
    selected = [p for p in problems if code is None or p.code == code]
    assert len(selected) == 1, problems
    return selected[0]


# ------------------------------------------------------------------------- valid input


def test_it_accepts_a_complete_valid_workflow():
    defn = definition(
        [
            node("fetch", config={"mapping": {"items": "{{ input.items }}", "n": 3}}),
            node("check", "condition", {"expression": "len(fetch.items) > 0 and input.go"}),
            node(
                "each",
                "for_each",
                {
                    "items": "{{ fetch.items }}",
                    "step_type": "transform",
                    "step_config": {"mapping": {"v": "{{ item.v }}", "i": "{{ index }}"}},
                    "concurrency": 2,
                },
                on_error="continue",
                max_attempts=3,
                backoff_strategy="exponential",
                backoff_base=1.5,
                timeout_seconds=30,
                join="all",
            ),
            node("pause", "delay", {"seconds": "{{ input.wait }}"}),
            node(
                "paid",
                "wait_for_event",
                {"event_name": "order.paid", "match": "event.data.id == fetch.n"},
            ),
            node(
                "done", config={"mapping": {"r": "{{ each.results }} {{ state.k }} {{ run.id }}"}}
            ),
        ],
        [
            edge("fetch", "check"),
            edge("check", "each", "true"),
            edge("check", "pause", "false"),
            edge("pause", "paid"),
            edge("each", "done"),
            edge("paid", "done"),
        ],
        settings={"max_concurrency": 4, "timeout_seconds": None, "triggers": [{"type": "x"}]},
    )
    assert validate_definition(defn) == []


def test_it_accepts_an_empty_workflow_and_a_single_unconnected_step():
    assert validate_definition({"nodes": [], "edges": []}) == []
    assert validate_definition(definition([node("only")], [])) == []


def test_it_gives_each_problem_as_a_dict_for_the_api():
    problem = Problem(("nodes", "a", "type"), "Unknown step type 'x'.", node_id="a", code="c")
    assert problem.as_dict() == {
        "loc": ["nodes", "a", "type"],
        "msg": "Unknown step type 'x'.",
        "node_id": "a",
        "code": "c",
    }
    edge_problem = Problem(("edges", "e1"), "m", edge_id="e1", code="d")
    assert edge_problem.as_dict() == {
        "loc": ["edges", "e1"],
        "msg": "m",
        "edge_id": "e1",
        "code": "d",
    }


# -------------------------------------------------------------------------------- shape


@pytest.mark.parametrize("value", [None, [], "nodes", 3])
def test_it_rejects_a_definition_that_is_not_an_object(value):
    problem = only(validate_definition(value))
    assert (problem.loc, problem.code) == (("definition",), "shape")


def test_it_requires_nodes_and_edges_lists():
    problems = validate_definition({"nodes": {"a": 1}})
    assert [(p.loc, p.code) for p in problems] == [
        (("definition", "nodes"), "shape"),
        (("definition", "edges"), "shape"),
    ]
    assert "must be a list, not object" in problems[0].msg
    assert "no 'edges' list" in problems[1].msg


def test_it_requires_viewport_and_settings_to_be_objects_when_present():
    problems = validate_definition({"nodes": [], "edges": [], "viewport": 1, "settings": []})
    assert [p.loc for p in problems] == [("definition", "viewport"), ("definition", "settings")]


def test_it_reports_malformed_nodes_by_their_position():
    defn = definition(
        [
            "not a node",
            {"type": "transform"},
            {"id": 7, "type": "transform"},
            {"id": "a"},
            {"id": "b", "type": "transform", "data": []},
            {"id": "c", "type": "transform", "data": {"config": "x"}},
        ],
        [edge("a", "b"), edge("b", "c")],
    )
    problems = validate_definition(defn)
    assert [(p.loc, p.code, p.node_id) for p in problems] == [
        (("nodes", "0"), "shape", None),
        (("nodes", "1", "id"), "shape", None),
        (("nodes", "2", "id"), "shape", None),
        (("nodes", "a", "type"), "shape", "a"),
        (("nodes", "b", "data"), "shape", "b"),
        (("nodes", "c", "data", "config"), "shape", "c"),
    ]


def test_it_reports_malformed_edges():
    defn = definition(
        [node("a"), node("b")],
        [
            "edge",
            {"source": "a", "target": "b"},
            {"id": "e2", "source": 1, "target": "b"},
            {"id": "e3", "source": "a", "target": "b", "sourceHandle": 5},
            {"id": "e4", "source": "a", "target": "b", "sourceHandle": None},
        ],
    )
    problems = validate_definition(defn)
    assert [(p.loc, p.code, p.edge_id) for p in problems] == [
        (("edges", "0"), "shape", None),
        (("edges", "1", "id"), "shape", None),
        (("edges", "e2", "source"), "shape", "e2"),
        (("edges", "e3", "sourceHandle"), "shape", "e3"),
    ]


def test_it_reports_duplicate_node_and_edge_ids():
    defn = definition(
        [node("a"), node("b"), node("a")],
        [edge("a", "b", edge_id="e1"), edge("b", "a", edge_id="e1")],
    )
    problems = validate_definition(defn)
    duplicates = [p for p in problems if p.code == "duplicate_id"]
    assert [(p.loc, p.node_id, p.edge_id) for p in duplicates] == [
        (("nodes", "a", "id"), "a", None),
        (("edges", "e1", "id"), None, "e1"),
    ]
    assert "Duplicate node id 'a'" in duplicates[0].msg


@pytest.mark.parametrize("node_id", ["1st", "has-dash", "with space", "é", "x" * 101, "a.b"])
def test_it_rejects_node_ids_that_cannot_be_template_roots(node_id):
    problem = only(validate_definition(definition([node(node_id)], [])))
    assert (problem.code, problem.node_id, problem.loc) == (
        "invalid_id",
        node_id,
        ("nodes", node_id, "id"),
    )


@pytest.mark.parametrize("node_id", sorted(validation.RESERVED_NAMES))
def test_it_rejects_reserved_node_ids(node_id):
    problem = only(validate_definition(definition([node(node_id)], [])))
    assert problem.code == "invalid_id"
    assert "reserved" in problem.msg


def test_it_accepts_identifier_node_ids_up_to_100_characters():
    ids = ["_a", "A1", "fetch_users", "x" * 100]
    assert validate_definition(chain(*(node(i) for i in ids))) == []


# ---------------------------------------------------------------------- types & config


def test_it_reports_unknown_step_types():
    problem = only(validate_definition(chain(node("a"), node("b", "teleport", {"x": 1}))))
    assert (problem.code, problem.node_id, problem.loc) == (
        "unknown_type",
        "b",
        ("nodes", "b", "type"),
    )
    assert "teleport" in problem.msg


def test_it_checks_types_against_the_registry_it_is_given():
    problem = only(validate_definition(definition([node("a")], []), registry=Registry()))
    assert problem.code == "unknown_type"


def test_it_names_each_missing_required_config_field():
    problems = validate_definition(
        chain(node("a", "delay", {}), node("b", "wait_for_event", {"timeout_seconds": 5}))
    )
    assert [(p.code, p.node_id, p.loc[-1]) for p in problems] == [
        ("missing_config", "a", "seconds"),
        ("missing_config", "b", "event_name"),
    ]
    assert problems[0].loc == ("nodes", "a", "data", "config", "seconds")
    assert problems[0].msg == "Missing required config field 'seconds'."


def test_it_treats_a_missing_config_as_empty():
    raw = {"id": "a", "type": "delay"}
    problem = only(validate_definition(definition([raw], [])))
    assert problem.code == "missing_config"


def test_it_reports_every_invalid_config_value_at_its_path():
    problems = validate_definition(
        chain(
            node("a", "delay", {"seconds": "soon", "extra": 1}),
            node(
                "b",
                "for_each",
                {"items": [], "step_type": "delay", "step_config": {}, "concurrency": 0},
            ),
            node("c", "wait_for_approval", {"on_reject": "ignore"}),
        )
    )
    assert [(p.code, p.loc) for p in problems] == [
        ("invalid_config", ("nodes", "a", "data", "config", "seconds")),
        ("invalid_config", ("nodes", "a", "data", "config", "extra")),
        ("invalid_config", ("nodes", "b", "data", "config", "concurrency")),
        ("invalid_config", ("nodes", "b", "data", "config", "step_type")),
        ("invalid_config", ("nodes", "c", "data", "config", "on_reject")),
    ]
    assert problems[0].msg == "Config field 'seconds' must be of type number, not string."
    assert problems[1].msg == "Unknown config field 'extra'."
    assert "'fail', 'continue'" in problems[4].msg


def test_it_accepts_template_strings_for_config_fields_of_any_type():
    defn = chain(
        node("start", config={"mapping": {"wait": 3, "spec": {}}}),
        node("pause", "delay", {"seconds": "{{ start.wait }}"}),
        node("approve", "wait_for_approval", {"timeout_seconds": "{{ input.t }}"}),
        node("shape", config={"mapping": "{{ start.spec }}"}),
        node(
            "each",
            "for_each",
            {
                "items": "{{ input.list }}",
                "step_type": "delay",
                "step_config": {"seconds": "{{ item.wait }}"},
                "concurrency": "{{ input.c }}",
            },
        ),
        node(
            "again",
            "for_each",
            {
                "items": "{{ input.list }}",
                "step_type": "transform",
                "step_config": {"mapping": "{{ item }}"},
                "concurrency": "{{ input.c }}",
            },
        ),
    )
    problems = validate_definition(defn)
    # Only the sub-step type of "each" is wrong (delay waits); no type error for templates.
    assert summary(problems) == [("invalid_config", "each")]


def test_it_still_rejects_a_plain_string_where_a_number_is_required():
    problem = only(validate_definition(definition([node("a", "delay", {"seconds": "5"})], [])))
    assert problem.code == "invalid_config"


def test_it_checks_the_for_each_sub_step_against_its_own_type():
    def for_each(step_type, step_config):
        config = {"items": [], "step_type": step_type, "step_config": step_config}
        return definition([node("each", "for_each", config)], [])

    unknown = only(validate_definition(for_each("teleport", {})))
    assert (unknown.code, unknown.loc) == (
        "unknown_type",
        ("nodes", "each", "data", "config", "step_type"),
    )
    waits = only(validate_definition(for_each("wait_for_approval", {})))
    assert waits.code == "invalid_config"
    assert "waits" in waits.msg
    missing = only(validate_definition(for_each("transform", {})))
    assert (missing.code, missing.loc[-2:]) == ("missing_config", ("step_config", "mapping"))
    assert missing.msg == "Missing required config field 'step_config.mapping'."
    bad_expression = only(validate_definition(for_each("condition", {"expression": "item >"})))
    assert bad_expression.code == "expression"
    assert validate_definition(for_each("condition", {"expression": "item.n > index"})) == []


# ------------------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("on_error", "ignore"),
        ("on_error", None),
        ("max_attempts", 0),
        ("max_attempts", 101),
        ("max_attempts", 2.0),
        ("max_attempts", True),
        ("backoff_strategy", "random"),
        ("backoff_base", -1),
        ("backoff_base", 301),
        ("backoff_base", "2"),
        ("backoff_base", float("nan")),
        ("timeout_seconds", 0),
        ("timeout_seconds", -5),
        ("timeout_seconds", "10"),
        ("timeout_seconds", float("inf")),
        ("join", "some"),
        ("label", 5),
    ],
)
def test_it_rejects_invalid_policy_fields(field, value):
    problem = only(validate_definition(definition([node("a", **{field: value})], [])))
    assert (problem.code, problem.node_id, problem.loc) == (
        "invalid_policy",
        "a",
        ("nodes", "a", "data", field),
    )
    assert field in problem.msg


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("on_error", "skip"),
        ("max_attempts", 1),
        ("max_attempts", 100),
        ("backoff_strategy", "linear"),
        ("backoff_base", 0),
        ("backoff_base", 300),
        ("timeout_seconds", None),
        ("timeout_seconds", 0.5),
        ("join", "any"),
        ("label", "Fetch"),
    ],
)
def test_it_accepts_valid_policy_fields(field, value):
    assert validate_definition(definition([node("a", **{field: value})], [])) == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 1001}, "max_concurrency"),
        ({"max_concurrency": "4"}, "max_concurrency"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": "1h"}, "timeout_seconds"),
    ],
)
def test_it_rejects_invalid_settings(options, field):
    problem = only(validate_definition(definition([], [], settings=options)))
    assert (problem.code, problem.loc) == ("invalid_policy", ("settings", field))


def test_it_accepts_valid_settings_and_keys_of_later_features():
    settings = {
        "max_concurrency": 1000,
        "timeout_seconds": 60,
        "rate_limit": {"limit": 1, "period_seconds": 60},
    }
    assert validate_definition(definition([], [], settings=settings)) == []


# ------------------------------------------------------------------------------- graph


def test_it_reports_edges_to_missing_nodes_on_the_edge():
    defn = definition(
        [node("a"), node("b")],
        [edge("a", "b"), edge("a", "ghost", edge_id="e2"), edge("nobody", "zombie", edge_id="e3")],
    )
    problems = validate_definition(defn)
    assert [(p.code, p.edge_id, p.loc) for p in problems] == [
        ("dangling_edge", "e2", ("edges", "e2", "target")),
        ("dangling_edge", "e3", ("edges", "e3", "source")),
        ("dangling_edge", "e3", ("edges", "e3", "target")),
    ]
    assert "'ghost'" in problems[0].msg


def test_it_reports_a_self_loop_as_a_cycle():
    problem = only(validate_definition(definition([node("a")], [edge("a", "a")])))
    assert (problem.code, problem.node_id, problem.msg) == ("cycle", "a", "Cycle: a → a.")


def test_it_reports_each_cycle_once_naming_its_steps():
    defn = definition(
        [node(n) for n in ["start", "a", "b", "c", "x", "y"]],
        [
            edge("start", "a"),
            edge("a", "b"),
            edge("b", "c"),
            edge("c", "a"),
            edge("x", "y"),
            edge("y", "x"),
        ],
    )
    problems = validate_definition(defn)
    assert summary(problems) == [("cycle", "a"), ("cycle", "x")]
    assert problems[0].msg == "Cycle: a → b → c → a."
    assert problems[0].loc == ("nodes", "a")
    assert problems[1].msg == "Cycle: x → y → x."


def test_it_reports_a_tangle_of_cycles_as_one_problem_naming_all_its_steps():
    defn = definition(
        [node(n) for n in "abcd"],
        [edge("a", "b"), edge("b", "a"), edge("b", "c"), edge("c", "d"), edge("d", "b")],
    )
    problem = only(validate_definition(defn))
    assert problem.code == "cycle"
    assert problem.msg == "Cycle: a → b → a. The loop also goes through c, d."


def test_it_finds_a_ten_thousand_step_cycle_without_recursion():
    n = 10_000
    nodes = [node(f"s{i}") for i in range(n)]
    edges = [edge(f"s{i}", f"s{(i + 1) % n}") for i in range(n)]
    problem = only(validate_definition(definition(nodes, edges)))
    assert problem.code == "cycle"
    assert problem.msg.startswith("Cycle: s0 → s1 → ")
    assert problem.msg.endswith(f"→ s{n - 1} → s0.")
    assert len(problem.msg) < 400


def test_it_reports_orphans_only_when_there_is_more_than_one_step():
    defn = definition([node("a"), node("b"), node("lonely")], [edge("a", "b")])
    problem = only(validate_definition(defn))
    assert (problem.code, problem.node_id, problem.loc) == ("orphan", "lonely", ("nodes", "lonely"))


def test_it_requires_a_condition_to_wire_both_branches():
    defn = definition(
        [node("check", "condition"), node("yes"), node("other", "condition"), node("z")],
        [edge("check", "yes", "true"), edge("yes", "other"), edge("z", "other")],
    )
    problems = validate_definition(defn)
    assert [(p.code, p.node_id, p.msg) for p in problems] == [
        (
            "condition_branches",
            "check",
            "Condition 'check' has no 'false' branch: connect its 'false' handle to a step.",
        ),
        ("condition_branches", "other", problems[1].msg),
        ("condition_branches", "other", problems[2].msg),
    ]
    assert "'true' branch" in problems[1].msg
    assert "'false' branch" in problems[2].msg


def test_it_reports_condition_edges_without_a_true_or_false_handle_on_the_edge():
    defn = definition(
        [node("check", "condition"), node("a"), node("b"), node("c"), node("d")],
        [
            edge("check", "a", "true"),
            edge("check", "b", "false"),
            edge("check", "c", edge_id="plain"),
            edge("check", "d", "maybe", edge_id="odd"),
        ],
    )
    problems = validate_definition(defn)
    assert [(p.code, p.edge_id, p.node_id, p.loc) for p in problems] == [
        ("condition_branches", "plain", "check", ("edges", "plain", "sourceHandle")),
        ("condition_branches", "odd", "check", ("edges", "odd", "sourceHandle")),
    ]
    assert "no handle" in problems[0].msg
    assert "'maybe'" in problems[1].msg


def test_it_accepts_several_edges_on_the_same_branch():
    defn = definition(
        [node("check", "condition"), node("a"), node("b"), node("c")],
        [edge("check", "a", "true"), edge("check", "b", "true"), edge("check", "c", "false")],
    )
    assert validate_definition(defn) == []


# ------------------------------------------------------------------------- expressions


def test_it_reports_a_condition_expression_that_does_not_compile():
    defn = branching(node("check", "condition", {"expression": "input.n >"}))
    problem = only(validate_definition(defn))
    assert (problem.code, problem.loc) == (
        "expression",
        ("nodes", "check", "data", "config", "expression"),
    )
    assert "syntax" in problem.msg


def test_it_reports_a_condition_expression_that_uses_what_is_not_allowed():
    defn = branching(node("check", "condition", {"expression": "input.__class__"}))
    assert only(validate_definition(defn)).code == "expression"


def test_it_checks_the_names_a_condition_reads():
    defn = definition(
        [
            node("fetch"),
            node("sibling"),
            node(
                "check",
                "condition",
                {"expression": "len(fetch.items) > 0 and sibling.ok or ghost and state.x"},
            ),
            node("a"),
            node("b"),
        ],
        [
            edge("fetch", "check"),
            edge("check", "a", "true"),
            edge("check", "b", "false"),
            edge("fetch", "sibling"),
        ],
    )
    problems = validate_definition(defn)
    assert [(p.code, p.node_id) for p in problems] == [
        ("bad_reference", "check"),
        ("bad_reference", "check"),
    ]
    assert "'sibling'" in problems[0].msg
    assert "not upstream" in problems[0].msg
    assert "'ghost'" in problems[1].msg
    assert "no such step" in problems[1].msg


def test_it_checks_a_condition_given_as_a_template_as_a_template():
    defn = chain(
        node("fetch"),
        node("check", "condition", {"expression": "{{ fetch.ok }} {{ later.x }}"}),
        node("later"),
    )
    defn["edges"] = [edge("fetch", "check"), edge("check", "later", "true")]
    defn["nodes"].append(node("no"))
    defn["edges"].append(edge("check", "no", "false"))
    problem = only(validate_definition(defn))
    assert (problem.code, problem.msg) == (
        "bad_reference",
        "{{ later.x }} refers to step 'later', which is not upstream of 'check': "
        "connect 'later' before it.",
    )


def test_it_compiles_a_wait_for_event_match_with_event_in_scope():
    def waiting(match):
        config = {"event_name": "order.paid", "match": match}
        return chain(node("order"), node("paid", "wait_for_event", config))

    assert validate_definition(waiting("event.data.id == order.id and input.x")) == []
    assert only(validate_definition(waiting("event.data.id ==="))).code == "expression"
    unknown = only(validate_definition(waiting("event.data.id == item")))
    assert unknown.code == "bad_reference"
    assert "for_each" in unknown.msg
    template = only(validate_definition(waiting("{{ event.data.id }} == 1")))
    assert template.code == "expression"
    assert "not a template" in template.msg


def test_it_does_not_accept_event_in_a_condition():
    defn = branching(node("check", "condition", {"expression": "event.name == 'x'"}))
    problem = only(validate_definition(defn))
    assert problem.code == "bad_reference"
    assert "wait_for_event" in problem.msg


# --------------------------------------------------------------------------- templates


def test_it_accepts_references_to_any_step_upstream():
    defn = definition(
        [
            node("a"),
            node("b"),
            node("c"),
            node("d", config={"mapping": {"x": ["{{ a.x }}", {"y": "{{ b.y }} / {{ c.z[0] }}"}]}}),
        ],
        [edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")],
    )
    assert validate_definition(defn) == []


def test_it_accepts_the_context_roots_everywhere():
    config = {"mapping": {"a": "{{ input.x }}", "b": "{{ state.count }}", "c": "{{ run.id }}"}}
    assert validate_definition(definition([node("a", config=config)], [])) == []


def test_it_reports_references_to_steps_that_are_not_upstream():
    defn = definition(
        [
            node("a"),
            node("b", config={"mapping": {"x": "{{ c.value }}", "y": "{{ d.items[0].id }}"}}),
            node("c"),
            node("d"),
            node("e", config={"mapping": {"self": "{{ e.x }}"}}),
        ],
        [edge("a", "b"), edge("b", "c"), edge("a", "d"), edge("c", "e")],
    )
    problems = validate_definition(defn)
    assert [(p.code, p.node_id, p.loc) for p in problems] == [
        ("bad_reference", "b", ("nodes", "b", "data", "config", "mapping", "x")),
        ("bad_reference", "b", ("nodes", "b", "data", "config", "mapping", "y")),
        ("bad_reference", "e", ("nodes", "e", "data", "config", "mapping", "self")),
    ]
    assert problems[0].msg == (
        "{{ c.value }} refers to step 'c', which is not upstream of 'b': connect 'c' before it."
    )
    assert "{{ d.items.0.id }}" in problems[1].msg
    assert "own output" in problems[2].msg


def test_it_reports_references_to_steps_that_do_not_exist():
    defn = definition([node("a", config={"mapping": {"x": ["ok", "{{ fecth.body }}"]}})], [])
    problem = only(validate_definition(defn))
    assert (problem.code, problem.loc, problem.msg) == (
        "bad_reference",
        ("nodes", "a", "data", "config", "mapping", "x", "1"),
        "{{ fecth.body }} refers to 'fecth', but there is no such step.",
    )


def test_it_reports_template_syntax_errors():
    defn = definition([node("a", config={"mapping": {"x": "{{ input.x ", "y": "{% if %}"}})], [])
    problems = validate_definition(defn)
    assert [(p.code, p.loc[-1]) for p in problems] == [
        ("template_syntax", "x"),
        ("template_syntax", "y"),
    ]
    assert problems[0].msg.startswith("Invalid template in 'x': template syntax error")


def test_it_lets_for_each_sub_steps_use_item_and_index_only_there():
    config = {
        "items": "{{ item.list }}",
        "step_type": "transform",
        "step_config": {"mapping": {"v": "{{ item.v }}", "i": "{{ index }}", "g": "{{ ghost }}"}},
    }
    problems = validate_definition(definition([node("each", "for_each", config)], []))
    assert [(p.code, p.loc[-1]) for p in problems] == [
        ("bad_reference", "items"),
        ("bad_reference", "g"),
    ]
    assert "only exist inside a for_each's step_config" in problems[0].msg


def test_it_understands_loops_and_filters_in_templates():
    config = {
        "mapping": {
            "list": "{% for row in a.rows %}{{ row.name|upper }}{{ loop.index }}{% endfor %}",
            "count": "{{ a.rows|length + range(3)|sum }}",
            "bad": "{% for row in b.rows %}{{ row }}{% endfor %}",
        }
    }
    defn = chain(node("a"), node("c", config=config), node("b"))
    problem = only(validate_definition(defn))
    assert (problem.code, problem.loc[-1]) == ("bad_reference", "bad")


def test_it_checks_references_against_the_real_graph_in_a_diamond_after_a_condition():
    defn = definition(
        [
            node("check", "condition"),
            node("yes"),
            node("no"),
            node("merge", config={"mapping": {"y": "{{ yes.ok }}", "n": "{{ no.ok }}"}}),
        ],
        [
            edge("check", "yes", "true"),
            edge("check", "no", "false"),
            edge("yes", "merge"),
            edge("no", "merge"),
        ],
    )
    assert validate_definition(defn) == []


@pytest.mark.parametrize(
    "source",
    [
        "{{ a }}",
        "{{a.b}}",
        "x {{ a.b[0].c }} y {{ d }}",
        "{{ a.b }} and {{ a.b }}",
        "{{ true }}",
        "{{ none.x }}",
        "{{ a.b[i] }}",
        "{{ a['k'] }}",
        "{{ a.0 }}",
        "{{ a.if }}",
        "{{- a -}}",
        "{{ a }}}",
        "{{{ a }}",
        "text only { not a template }",
        "{{ a|default(b) }}",
    ],
)
def test_it_reads_simple_templates_exactly_as_jinja_does(source):
    fast = validation._simple_references(source)
    if fast is not None:
        assert list(fast) == references(source)
    found, error = validation._analyse_template(source)
    assert [error] == (check_syntax(source) or [None])
    assert list(found) == (references(source) if error is None else [])


# ----------------------------------------------------------------------- all together


def test_it_reports_every_problem_at_once_in_definition_order():
    defn = {
        "nodes": [
            node("fetch", "http_thing", {"url": "x"}),
            node("check", "condition", {"expression": "fetch.status =="}),
            node("pause", "delay", {}, max_attempts=0),
            node("use", config={"mapping": {"a": "{{ pause.x }}", "b": "{{ nope.y }}"}}),
            node("bad-id"),
            node("loner"),
            node("fetch"),
        ],
        "edges": [
            edge("fetch", "check", edge_id="e1"),
            edge("check", "pause", "true", edge_id="e2"),
            edge("use", "pause", edge_id="e3"),
            edge("pause", "use", edge_id="e4"),
            edge("pause", "ghost", edge_id="e5"),
            edge("bad-id", "fetch", edge_id="e5"),
        ],
        "settings": {"max_concurrency": -1},
    }
    problems = validate_definition(defn)
    assert [(p.code, p.node_id, p.edge_id) for p in problems] == [
        ("unknown_type", "fetch", None),
        ("expression", "check", None),
        ("condition_branches", "check", None),
        ("invalid_policy", "pause", None),
        ("missing_config", "pause", None),
        ("bad_reference", "use", None),
        ("invalid_id", "bad-id", None),
        ("orphan", "loner", None),
        ("duplicate_id", "fetch", None),
        ("dangling_edge", None, "e5"),
        ("duplicate_id", None, "e5"),
        ("cycle", "pause", None),
        ("invalid_policy", None, None),
    ]
    assert "'nope'" in problems[5].msg
    assert problems[11].msg == "Cycle: pause → use → pause."
    assert all(p.msg.endswith(".") for p in problems)
    # The same definition always gives the same answer.
    assert validate_definition(defn) == problems


# ------------------------------------------------------------------------------- scale


def test_it_validates_a_ten_thousand_step_chain():
    n = 10_000
    nodes = [node("s0", config={"mapping": {"x": "{{ input.x }}"}})]
    nodes += [
        node(f"s{i}", config={"mapping": {"x": f"{{{{ s{i - 1}.x }}}}"}}) for i in range(1, n)
    ]
    edges = [edge(f"s{i - 1}", f"s{i}") for i in range(1, n)]
    assert validate_definition(definition(nodes, edges)) == []


def test_it_validates_a_ten_thousand_step_fan_out_and_fan_in():
    n = 10_000
    nodes = [node("root")]
    nodes += [node(f"s{i}", config={"mapping": {"x": "{{ root.ok }}"}}) for i in range(n)]
    nodes.append(node("join", config={"mapping": {"last": f"{{{{ s{n - 1}.x }}}}"}}))
    edges = [edge("root", f"s{i}") for i in range(n)] + [edge(f"s{i}", "join") for i in range(n)]
    assert validate_definition(definition(nodes, edges)) == []


def test_it_validates_a_long_chain_whose_steps_read_far_upstream():
    n = 5_000
    nodes = [node("s0")]
    nodes += [
        node(
            f"s{i}", config={"mapping": {"first": "{{ s0.ok }}", "half": f"{{{{ s{i // 2}.x }}}}"}}
        )
        for i in range(1, n)
    ]
    edges = [edge(f"s{i - 1}", f"s{i}") for i in range(1, n)]
    defn = definition(nodes, edges)
    assert validate_definition(defn) == []
    defn["nodes"][10]["data"]["config"]["mapping"]["late"] = "{{ s4000.x }}"
    problem = only(validate_definition(defn))
    assert (problem.code, problem.node_id) == ("bad_reference", "s10")
