"""Specification of `engine.graph`: the workflow definition seen as a directed graph."""

from __future__ import annotations

from itertools import pairwise

import pytest

from engine.graph import CycleError, Edge, Graph


def definition(
    *edges: tuple[str, ...], nodes: list[str] | None = None, conditions: tuple[str, ...] = ()
) -> dict:
    """A canvas definition. Edges are ``(source, target)`` or ``(source, target, handle)``
    with id ``"source->target"`` (``"source:handle->target"``); nodes default to those the
    edges name, in order of first mention."""
    if nodes is None:
        nodes = list(dict.fromkeys(n for edge in edges for n in edge[:2]))
    raw_edges = []
    for source, target, *handle in edges:
        raw = {"source": source, "target": target}
        if handle:
            raw["sourceHandle"] = handle[0]
            raw["id"] = f"{source}:{handle[0]}->{target}"
        else:
            raw["id"] = f"{source}->{target}"
        raw_edges.append(raw)
    return {
        "nodes": [
            {
                "id": n,
                "type": "condition" if n in conditions else "noop",
                "position": {"x": 0, "y": 0},
                "data": {"label": n.upper()},
            }
            for n in nodes
        ],
        "edges": raw_edges,
        "viewport": {"x": 0, "y": 0, "zoom": 1},
    }


def graph(*edges: tuple[str, ...], **kwargs) -> Graph:
    return Graph.from_definition(definition(*edges, **kwargs))


# -- reading a definition ----------------------------------------------------------------


def test_it_reads_nodes_in_definition_order_and_edges_with_their_handles():
    g = graph(("if", "a", "true"), ("if", "b", "false"), ("a", "c"), conditions=("if",))

    assert g.node_ids == ("if", "a", "b", "c")
    assert g.nodes["a"]["data"] == {"label": "A"}
    assert g.node_type("if") == "condition"
    assert g.node_type("a") == "noop"
    assert g.edges == (
        Edge("if:true->a", "if", "a", "true"),
        Edge("if:false->b", "if", "b", "false"),
        Edge("a->c", "a", "c", None),
    )
    assert g.out_edges("if") == g.edges[:2]
    assert g.in_edges("c") == (g.edges[2],)
    assert g.children("if") == ("a", "b")
    assert g.parents("c") == ("a",)
    assert g.roots() == ("if",)


def test_it_lists_parents_and_children_once_in_edge_order():
    g = graph(("b", "m"), ("a", "m"), ("b", "m"), ("m", "x"), ("m", "x"))

    assert g.parents("m") == ("b", "a")
    assert g.children("m") == ("x",)
    assert len(g.in_edges("m")) == 3


def test_it_ignores_edges_to_missing_nodes():
    g = Graph.from_definition(
        {
            "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}],
            "edges": [
                {"id": "ok", "source": "a", "target": "b"},
                {"id": "to-ghost", "source": "a", "target": "ghost"},
                {"id": "from-ghost", "source": "ghost", "target": "b"},
                {"id": "no-target", "source": "a"},
            ],
        }
    )

    assert [e.id for e in g.edges] == ["ok"]
    assert g.parents("b") == ("a",)
    assert g.topological_order() == ["a", "b"]


def test_it_lets_the_last_node_with_a_duplicated_id_win():
    g = Graph.from_definition(
        {"nodes": [{"id": "a", "type": "old"}, {"id": "b"}, {"id": "a", "type": "new"}]}
    )

    assert g.node_ids == ("a", "b")
    assert g.node_type("a") == "new"
    assert g.node_type("b") == ""


def test_it_reads_an_empty_definition():
    g = Graph.from_definition({})

    assert g.node_ids == ()
    assert g.topological_order() == []
    assert g.levels() == []
    assert g.find_cycle() is None
    assert g.critical_path({}) == ([], 0.0)


def test_it_names_edges_without_an_id_after_their_ends():
    g = Graph.from_definition(
        {"nodes": [{"id": "a"}, {"id": "b"}], "edges": [{"source": "a", "target": "b"}]}
    )

    assert g.edges == (Edge("a->b", "a", "b", None),)


# -- order -------------------------------------------------------------------------------


def test_it_orders_every_node_after_its_parents():
    g = graph(("fetch", "transform"), ("transform", "store"), ("fetch", "notify"))

    assert g.topological_order() == ["fetch", "transform", "notify", "store"]


def test_it_breaks_ties_in_definition_order():
    g = graph(("a", "z"), ("b", "z"), nodes=["z", "c", "b", "a"])

    assert g.topological_order() == ["c", "b", "a", "z"]


def test_it_keeps_definition_order_within_a_round_whatever_the_edge_order():
    g = graph(("r", "y"), ("r", "x"), nodes=["r", "x", "y"])

    assert g.topological_order() == ["r", "x", "y"]


def test_it_groups_nodes_into_levels_by_longest_path_from_a_root():
    g = graph(("a", "b"), ("b", "c"), ("a", "c"), ("d", "c"), nodes=["a", "b", "c", "d", "e"])

    assert g.levels() == [["a", "d", "e"], ["b"], ["c"]]


def test_it_has_no_cycle_in_a_dag():
    assert graph(("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")).find_cycle() is None


def test_it_names_the_cycle():
    g = graph(("start", "a"), ("a", "b"), ("b", "c"), ("c", "a"), ("c", "end"))

    assert g.find_cycle() == ["a", "b", "c", "a"]
    with pytest.raises(CycleError) as raised:
        g.topological_order()
    assert raised.value.cycle == ["a", "b", "c", "a"]
    assert raised.value.args[1] == ["a", "b", "c", "a"]
    assert "a -> b -> c -> a" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_it_names_a_self_loop():
    g = graph(("a", "b"), ("b", "b"))

    assert g.find_cycle() == ["b", "b"]
    with pytest.raises(CycleError) as raised:
        g.levels()
    assert raised.value.cycle == ["b", "b"]


def test_it_finds_a_cycle_that_no_root_reaches():
    g = graph(("a", "b"), ("x", "y"), ("y", "x"))

    assert g.roots() == ("a",)
    assert g.find_cycle() == ["x", "y", "x"]
    with pytest.raises(CycleError) as raised:
        g.topological_order()
    assert raised.value.cycle == ["x", "y", "x"]


def test_it_finds_a_cycle_when_every_node_is_on_one():
    g = graph(("a", "b"), ("b", "c"), ("c", "a"))

    assert g.roots() == ()
    with pytest.raises(CycleError) as raised:
        g.topological_order()
    assert raised.value.cycle == ["a", "b", "c", "a"]


# -- ready set ---------------------------------------------------------------------------


def test_it_makes_a_node_ready_once_all_its_parents_are_finished():
    g = graph(("a", "c"), ("b", "c"), ("c", "d"), nodes=["a", "b", "c", "d"])

    assert g.ready(set()) == ["a", "b"]
    assert g.ready(set(), started={"a"}) == ["b"]
    assert g.ready({"a"}, started={"b"}) == []
    assert g.ready({"a", "b"}) == ["c"]
    assert g.ready({"a", "b"}, started={"c"}) == []
    assert g.ready({"a", "b", "c"}) == ["d"]
    assert g.ready({"a", "b", "c", "d"}) == []


# -- reachability ------------------------------------------------------------------------


def test_it_finds_everything_upstream_and_downstream():
    g = graph(("a", "b"), ("b", "d"), ("c", "d"), ("d", "e"), ("x", "y"))

    assert g.upstream("d") == {"a", "b", "c"}
    assert g.upstream("a") == set()
    assert g.downstream("b") == {"d", "e"}
    assert g.downstream("e") == set()
    assert g.upstream("y") == {"x"}


# -- dead-path elimination ---------------------------------------------------------------


def test_it_skips_the_losing_side_of_an_if_else():
    g = graph(("if", "yes", "true"), ("if", "no", "false"), conditions=("if",))

    assert g.exclusive_branch("if", "true") == {"yes"}
    assert g.exclusive_branch("if", "false") == {"no"}


def test_it_does_not_skip_the_merge_of_a_diamond():
    g = graph(("if", "a", "true"), ("if", "b", "false"), ("a", "m"), ("b", "m"), ("m", "after"))

    assert g.exclusive_branch("if", "true") == {"a"}
    assert g.exclusive_branch("if", "false") == {"b"}


def test_it_does_not_skip_a_node_with_a_parent_outside_the_losing_branch():
    g = graph(("start", "if"), ("if", "a", "true"), ("a", "join"), ("start", "join"), ("join", "z"))

    assert g.exclusive_branch("if", "true") == {"a"}


def test_it_skips_the_whole_chain_after_the_losing_branch():
    g = graph(("if", "a", "true"), ("a", "b"), ("b", "c"), ("b", "d"), ("if", "x", "false"))

    assert g.exclusive_branch("if", "true") == {"a", "b", "c", "d"}
    assert g.exclusive_branch("if", "false") == {"x"}


def test_it_skips_nested_conditions_inside_the_losing_branch():
    g = graph(
        ("outer", "inner", "true"),
        ("outer", "other", "false"),
        ("inner", "i_yes", "true"),
        ("inner", "i_no", "false"),
        ("i_yes", "i_merge"),
        ("i_no", "i_merge"),
        ("i_merge", "done"),
        ("other", "done"),
    )

    assert g.exclusive_branch("outer", "true") == {"inner", "i_yes", "i_no", "i_merge"}
    assert g.exclusive_branch("inner", "true") == {"i_yes"}
    assert g.exclusive_branch("outer", "false") == {"other"}


def test_it_does_not_skip_a_node_both_handles_lead_to():
    g = graph(("if", "x", "true"), ("if", "x", "false"))

    assert g.exclusive_branch("if", "true") == set()


def test_it_skips_nothing_for_a_handle_with_no_edges():
    g = graph(("if", "x", "true"))

    assert g.exclusive_branch("if", "false") == set()


def test_it_propagates_from_nodes_already_dead():
    # Two conditions feed `m`: the first already skipped `x`, the second now loses `y`.
    g = graph(("c1", "x", "true"), ("x", "m"), ("c2", "y", "false"), ("y", "m"), ("m", "n"))

    assert g.dead_nodes(["c2:false->y"]) == {"y"}
    assert g.dead_nodes(["c2:false->y"], already_dead={"x"}) == {"y", "m", "n"}
    assert g.dead_nodes([], already_dead={"x", "y"}) == {"m", "n"}


def test_it_ignores_unknown_ids_and_repeated_edges_when_propagating():
    g = graph(("a", "b"), ("b", "c"))

    assert g.dead_nodes(["a->b", "a->b", "nope"], already_dead=["ghost"]) == {"b", "c"}


# -- critical path -----------------------------------------------------------------------


def test_it_finds_the_critical_path():
    g = graph(("start", "fast"), ("start", "slow"), ("fast", "end"), ("slow", "end"))

    path, total = g.critical_path({"start": 1.0, "fast": 2.0, "slow": 5.0, "end": 0.5})

    assert path == ["start", "slow", "end"]
    assert total == 6.5


def test_it_weighs_missing_durations_as_zero_and_prefers_the_longer_path_on_a_tie():
    g = graph(("a", "b"), ("b", "c"), nodes=["a", "b", "c", "lone"])

    assert g.critical_path({"a": 1, "b": 2}) == (["a", "b", "c"], 3.0)


def test_it_refuses_the_critical_path_of_a_cycle():
    with pytest.raises(CycleError):
        graph(("a", "b"), ("b", "a")).critical_path({})


# -- size --------------------------------------------------------------------------------

N = 10_000


def test_it_handles_a_ten_thousand_node_chain_without_recursion():
    ids = [f"n{i}" for i in range(N)]
    g = graph(("if", ids[0], "true"), *pairwise(ids), ("if", "other", "false"))

    assert g.topological_order() == ["if", ids[0], "other", *ids[1:]]
    levels = g.levels()
    assert len(levels) == N + 1
    assert levels[1] == [ids[0], "other"]
    assert g.exclusive_branch("if", "true") == set(ids)
    assert g.find_cycle() is None
    assert g.upstream(ids[-1]) == {"if", *ids[:-1]}
    assert g.downstream("if") == {"other", *ids}
    path, total = g.critical_path(dict.fromkeys(ids, 1.0))
    assert path == ["if", *ids]
    assert total == N


def test_it_names_the_cycle_closing_a_ten_thousand_node_chain():
    ids = [f"n{i}" for i in range(N)]
    g = graph(*pairwise(ids), (ids[-1], ids[0]))

    with pytest.raises(CycleError) as raised:
        g.topological_order()
    assert raised.value.cycle == [*ids, ids[0]]


def test_it_handles_a_ten_thousand_node_fan_out():
    ids = [f"n{i}" for i in range(N)]
    g = graph(
        ("if", "hub", "true"),
        ("if", "other", "false"),
        *(("hub", n) for n in ids),
        nodes=["if", "hub", "other", *ids],
    )

    assert g.topological_order() == ["if", "hub", "other", *ids]
    assert g.levels() == [["if"], ["hub", "other"], ids]
    assert g.exclusive_branch("if", "true") == {"hub", *ids}
    assert g.ready({"if", "hub"}) == ["other", *ids]
