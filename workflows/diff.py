"""What changed between two workflow definitions (two versions, or a draft and its parent).

`diff_definitions(old, new)` compares nodes by id and edges by id:

* nodes added, removed, and changed: which of ``type``, ``label``, ``config`` (with the
  changed config keys), other ``data`` fields (with their keys) differ, and whether the
  node also moved. A node whose only change is its position is listed in ``moved``
  instead, so a visual diff can tell "rearranged" from "edited".
* edges added, removed, and changed (same id, different source, target or handle).
  An edge whose id changed but which still joins the same handles is the same edge, not
  a removal plus an addition (the canvas may renumber edges).
* the ``settings`` keys whose values differ.

Definitions are read as tolerantly as the engine's graph reads them (drafts may be
invalid): entries that are not objects or have no string id are skipped, and for a
duplicated id the last entry wins. React Flow's view state on nodes (``selected``,
``measured``, ...) is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

NODE_FIELDS = ("type", "label", "config", "data")
EDGE_FIELDS = ("source", "target", "source_handle")


@dataclass(frozen=True)
class NodeRef:
    id: str
    type: str
    label: str


@dataclass(frozen=True)
class NodeChange:
    id: str
    type: str
    label: str
    fields: list[str]
    """Which of type, label, config, data changed."""
    config_keys: list[str]
    """Config keys added, removed or changed."""
    data_keys: list[str]
    """Other data keys (on_error, max_attempts, ...) added, removed or changed."""
    moved: bool


@dataclass(frozen=True)
class NodeMove:
    id: str
    type: str
    label: str
    before: dict | None
    after: dict | None


@dataclass(frozen=True)
class EdgeRef:
    id: str
    source: str
    target: str
    source_handle: str | None


@dataclass(frozen=True)
class EdgeChange:
    id: str
    fields: list[str]
    """Which of source, target, source_handle changed."""
    before: EdgeRef
    after: EdgeRef


@dataclass
class DefinitionDiff:
    nodes_added: list[NodeRef] = field(default_factory=list)
    nodes_removed: list[NodeRef] = field(default_factory=list)
    nodes_changed: list[NodeChange] = field(default_factory=list)
    nodes_moved: list[NodeMove] = field(default_factory=list)
    edges_added: list[EdgeRef] = field(default_factory=list)
    edges_removed: list[EdgeRef] = field(default_factory=list)
    edges_changed: list[EdgeChange] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    """Settings keys added, removed or changed."""

    @property
    def identical(self) -> bool:
        return not any(asdict(self).values())

    def as_dict(self) -> dict:
        """The JSON shape of the API: nodes/edges grouped, plus `identical`."""
        return {
            "nodes": {
                "added": [asdict(n) for n in self.nodes_added],
                "removed": [asdict(n) for n in self.nodes_removed],
                "changed": [asdict(n) for n in self.nodes_changed],
                "moved": [asdict(n) for n in self.nodes_moved],
            },
            "edges": {
                "added": [asdict(e) for e in self.edges_added],
                "removed": [asdict(e) for e in self.edges_removed],
                "changed": [asdict(e) for e in self.edges_changed],
            },
            "settings": list(self.settings),
            "identical": self.identical,
        }


def _entries(definition: Any, key: str) -> list[dict]:
    if not isinstance(definition, Mapping):
        return []
    items = definition.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _nodes(definition: Any) -> dict[str, dict]:
    return {n["id"]: n for n in _entries(definition, "nodes") if isinstance(n.get("id"), str)}


def _edges(definition: Any) -> dict[str, EdgeRef]:
    out: dict[str, EdgeRef] = {}
    for raw in _entries(definition, "edges"):
        source, target = raw.get("source"), raw.get("target")
        if not (isinstance(source, str) and isinstance(target, str)):
            continue
        handle = raw.get("sourceHandle")
        edge_id = raw.get("id")
        edge_id = str(edge_id) if edge_id not in (None, "") else f"{source}->{target}"
        out[edge_id] = EdgeRef(edge_id, source, target, None if handle is None else str(handle))
    return out


def _data(node: Mapping) -> dict:
    data = node.get("data")
    return data if isinstance(data, dict) else {}


def _config(node: Mapping) -> dict:
    config = _data(node).get("config")
    return config if isinstance(config, dict) else {}


def _label(node: Mapping) -> str:
    label = _data(node).get("label")
    return label if isinstance(label, str) else ""


def _ref(node: Mapping) -> NodeRef:
    return NodeRef(node["id"], str(node.get("type") or ""), _label(node))


def _changed_keys(old: Mapping, new: Mapping, skip: frozenset[str] = frozenset()) -> list[str]:
    keys = [k for k in old if k not in skip] + [k for k in new if k not in old and k not in skip]
    return [str(k) for k in keys if k not in old or k not in new or old[k] != new[k]]


_NOT_DATA = frozenset({"label", "config"})


def _node_change(old: dict, new: dict) -> NodeChange | NodeMove | None:
    fields = []
    if old.get("type") != new.get("type"):
        fields.append("type")
    if _label(old) != _label(new):
        fields.append("label")
    config_keys = _changed_keys(_config(old), _config(new))
    if config_keys:
        fields.append("config")
    data_keys = _changed_keys(_data(old), _data(new), _NOT_DATA)
    if data_keys:
        fields.append("data")
    moved = old.get("position") != new.get("position")
    if fields:
        ref = _ref(new)
        return NodeChange(ref.id, ref.type, ref.label, fields, config_keys, data_keys, moved)
    if moved:
        ref = _ref(new)
        before, after = old.get("position"), new.get("position")
        return NodeMove(
            ref.id,
            ref.type,
            ref.label,
            before if isinstance(before, dict) else None,
            after if isinstance(after, dict) else None,
        )
    return None


def _ends(edge: EdgeRef) -> tuple[str, str, str | None]:
    return edge.source, edge.target, edge.source_handle


def diff_definitions(old: Any, new: Any) -> DefinitionDiff:
    """What changed going from definition `old` to definition `new` (see the module)."""
    diff = DefinitionDiff()
    old_nodes, new_nodes = _nodes(old), _nodes(new)
    for node_id, node in new_nodes.items():
        if node_id not in old_nodes:
            diff.nodes_added.append(_ref(node))
            continue
        change = _node_change(old_nodes[node_id], node)
        if isinstance(change, NodeChange):
            diff.nodes_changed.append(change)
        elif isinstance(change, NodeMove):
            diff.nodes_moved.append(change)
    diff.nodes_removed.extend(_ref(n) for i, n in old_nodes.items() if i not in new_nodes)

    old_edges, new_edges = _edges(old), _edges(new)
    added = [e for i, e in new_edges.items() if i not in old_edges]
    removed = [e for i, e in old_edges.items() if i not in new_edges]
    # a renumbered edge that joins the same handles is the same edge: pair them off
    removed_by_ends: dict[tuple, list[EdgeRef]] = {}
    for edge in removed:
        removed_by_ends.setdefault(_ends(edge), []).append(edge)
    paired: set[str] = set()
    for edge in added:
        candidates = removed_by_ends.get(_ends(edge))
        if candidates:
            paired.add(candidates.pop(0).id)
        else:
            diff.edges_added.append(edge)
    diff.edges_removed.extend(e for e in removed if e.id not in paired)
    for edge_id, edge in new_edges.items():
        before = old_edges.get(edge_id)
        if before is None or before == edge:
            continue
        fields = [f for f in EDGE_FIELDS if getattr(before, f) != getattr(edge, f)]
        diff.edges_changed.append(EdgeChange(edge_id, fields, before, edge))

    old_settings = old.get("settings") if isinstance(old, Mapping) else None
    new_settings = new.get("settings") if isinstance(new, Mapping) else None
    diff.settings.extend(
        _changed_keys(
            old_settings if isinstance(old_settings, dict) else {},
            new_settings if isinstance(new_settings, dict) else {},
        )
    )
    return diff
