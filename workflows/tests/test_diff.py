"""Comparing two definitions: nodes and edges added, removed and changed, moves apart."""

import copy

from workflows.diff import diff_definitions

OLD = {
    "nodes": [
        {
            "id": "fetch",
            "type": "http_request",
            "position": {"x": 0, "y": 0},
            "data": {"label": "Fetch", "config": {"url": "https://a.example", "method": "GET"}},
        },
        {
            "id": "check",
            "type": "condition",
            "position": {"x": 0, "y": 100},
            "data": {"config": {"expression": "fetch.status_code == 200"}},
        },
        {
            "id": "shape",
            "type": "transform",
            "position": {"x": 0, "y": 200},
            "data": {"config": {"mapping": {"a": 1}}},
        },
        {"id": "gone", "type": "delay", "position": {"x": 9, "y": 9}, "data": {}},
    ],
    "edges": [
        {"id": "e1", "source": "fetch", "target": "check"},
        {"id": "e2", "source": "check", "target": "shape", "sourceHandle": "true"},
        {"id": "e3", "source": "shape", "target": "gone"},
    ],
    "settings": {"max_concurrency": 5},
}


def new_definition():
    return copy.deepcopy(OLD)


def node(definition, node_id):
    return next(n for n in definition["nodes"] if n["id"] == node_id)


def test_identical_definitions_have_no_changes():
    diff = diff_definitions(OLD, new_definition())
    assert diff.identical
    result = diff.as_dict()
    assert result["identical"] is True
    assert result["nodes"] == {"added": [], "removed": [], "changed": [], "moved": []}
    assert result["edges"] == {"added": [], "removed": [], "changed": []}
    assert result["settings"] == []


def test_it_lists_added_and_removed_nodes():
    new = new_definition()
    new["nodes"] = [n for n in new["nodes"] if n["id"] != "gone"]
    new["nodes"].append({"id": "mail", "type": "send_email", "data": {"label": "Mail"}})
    result = diff_definitions(OLD, new).as_dict()["nodes"]
    assert result["added"] == [{"id": "mail", "type": "send_email", "label": "Mail"}]
    assert result["removed"] == [{"id": "gone", "type": "delay", "label": ""}]


def test_it_says_what_changed_in_a_node():
    new = new_definition()
    fetch = node(new, "fetch")
    fetch["data"]["label"] = "Fetch items"
    fetch["data"]["config"]["method"] = "POST"
    fetch["data"]["config"]["body"] = {"q": 1}
    fetch["data"]["max_attempts"] = 3
    fetch["position"] = {"x": 50, "y": 0}
    node(new, "shape")["type"] = "inline_code"
    result = diff_definitions(OLD, new).as_dict()["nodes"]
    assert result["changed"] == [
        {
            "id": "fetch",
            "type": "http_request",
            "label": "Fetch items",
            "fields": ["label", "config", "data"],
            "config_keys": ["method", "body"],
            "data_keys": ["max_attempts"],
            "moved": True,
        },
        {
            "id": "shape",
            "type": "inline_code",
            "label": "",
            "fields": ["type"],
            "config_keys": [],
            "data_keys": [],
            "moved": False,
        },
    ]
    assert result["moved"] == []


def test_a_node_only_moved_is_reported_apart():
    new = new_definition()
    node(new, "check")["position"] = {"x": 10, "y": 120}
    node(new, "check")["selected"] = True  # React Flow's view state is not a change
    result = diff_definitions(OLD, new).as_dict()["nodes"]
    assert result["changed"] == []
    assert result["moved"] == [
        {
            "id": "check",
            "type": "condition",
            "label": "",
            "before": {"x": 0, "y": 100},
            "after": {"x": 10, "y": 120},
        }
    ]


def test_it_lists_added_removed_and_rewired_edges():
    new = new_definition()
    new["edges"] = [
        {"id": "e1", "source": "fetch", "target": "check"},
        {"id": "e2", "source": "check", "target": "shape", "sourceHandle": "false"},
        {"id": "e4", "source": "fetch", "target": "shape"},
    ]
    result = diff_definitions(OLD, new).as_dict()["edges"]
    assert result["added"] == [
        {"id": "e4", "source": "fetch", "target": "shape", "source_handle": None}
    ]
    assert result["removed"] == [
        {"id": "e3", "source": "shape", "target": "gone", "source_handle": None}
    ]
    assert result["changed"] == [
        {
            "id": "e2",
            "fields": ["source_handle"],
            "before": {"id": "e2", "source": "check", "target": "shape", "source_handle": "true"},
            "after": {"id": "e2", "source": "check", "target": "shape", "source_handle": "false"},
        }
    ]


def test_a_renumbered_edge_joining_the_same_handles_is_not_a_change():
    new = new_definition()
    new["edges"][0]["id"] = "xy-edge__fetch-check"
    assert diff_definitions(OLD, new).identical


def test_it_lists_changed_settings_keys():
    new = new_definition()
    new["settings"] = {"max_concurrency": 2, "timeout_seconds": 60}
    assert diff_definitions(OLD, new).as_dict()["settings"] == [
        "max_concurrency",
        "timeout_seconds",
    ]


def test_malformed_definitions_are_read_tolerantly():
    broken = {
        "nodes": [7, {"type": "delay"}, {"id": "a", "type": "delay", "data": "x"}],
        "edges": [{"source": "a"}, "x", {"source": "a", "target": "b"}],
        "settings": [],
    }
    result = diff_definitions(broken, None).as_dict()
    assert result["nodes"]["removed"] == [{"id": "a", "type": "delay", "label": ""}]
    assert result["edges"]["removed"] == [
        {"id": "a->b", "source": "a", "target": "b", "source_handle": None}
    ]
    assert diff_definitions([], "nonsense").identical
