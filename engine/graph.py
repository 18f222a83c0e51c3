"""The directed graph of a workflow definition.

A definition is the canvas JSON ``{"nodes": [...], "edges": [...]}`` (SPEC §2). `Graph`
reads it once, precomputes adjacency, and answers the questions the executor and the
validator ask: in what order to run, what is ready, what is upstream of a node, and which
nodes a condition skips. Everything here is plain Python, iterative (no recursion, so a
10,000-step chain is fine) and linear in the size of the graph, in the manner of
``graphlib``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

__all__ = ["CycleError", "Edge", "Graph"]


class CycleError(ValueError):
    """The graph has a cycle.

    `cycle` lists the node ids on one cycle, each an immediate predecessor of the next,
    with the first id repeated at the end (``["a", "b", "c", "a"]``; a self-loop is
    ``["a", "a"]``). As in ``graphlib``, the cycle is also the second item of `args`.
    """

    cycle: list[str]

    def __init__(self, cycle: list[str]) -> None:
        super().__init__(f"the workflow has a cycle: {' -> '.join(cycle)}", cycle)
        self.cycle = cycle


@dataclass(frozen=True, slots=True)
class Edge:
    """An edge of the definition: `handle` is the ``sourceHandle`` ("true"/"false" out of
    a condition node), or None."""

    id: str
    source: str
    target: str
    handle: str | None = None


class Graph:
    """An immutable view of a workflow definition as a directed graph.

    Edges whose source or target is not a node are left out (validation reports them).
    Parallel edges are kept: a node is only dead when every one of its edges is.
    """

    __slots__ = (
        "_children",
        "_edge_index",
        "_in",
        "_out",
        "_out_index",
        "_parents",
        "_roots",
        "edges",
        "node_ids",
        "nodes",
    )

    node_ids: tuple[str, ...]
    nodes: dict[str, dict]
    edges: tuple[Edge, ...]

    def __init__(self, nodes: Mapping[str, dict], edges: Iterable[Edge]) -> None:
        """Build from nodes (id -> raw node dict, in definition order) and edges."""
        self.nodes = dict(nodes)
        self.node_ids = tuple(self.nodes)
        self.edges = tuple(e for e in edges if e.source in self.nodes and e.target in self.nodes)

        in_: dict[str, list[Edge]] = {n: [] for n in self.node_ids}
        out: dict[str, list[Edge]] = {n: [] for n in self.node_ids}
        # Edges are identified by position, so duplicated ids or parallel edges still count.
        self._edge_index: dict[str, list[int]] = {}
        self._out_index: dict[str, list[int]] = {n: [] for n in self.node_ids}
        for i, edge in enumerate(self.edges):
            in_[edge.target].append(edge)
            out[edge.source].append(edge)
            self._edge_index.setdefault(edge.id, []).append(i)
            self._out_index[edge.source].append(i)

        self._in = {n: tuple(es) for n, es in in_.items()}
        self._out = {n: tuple(es) for n, es in out.items()}
        self._parents = {n: tuple(dict.fromkeys(e.source for e in es)) for n, es in in_.items()}
        self._children = {n: tuple(dict.fromkeys(e.target for e in es)) for n, es in out.items()}
        self._roots = tuple(n for n in self.node_ids if not self._in[n])

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> Graph:
        """Read a canvas definition, tolerating what validation reports instead.

        Nodes without a string id are ignored; for a duplicated id the last node wins
        (keeping the position of the first). Edges to or from a missing node are ignored;
        an edge without an id gets ``"<source>-><target>"``.
        """
        nodes: dict[str, dict] = {}
        for raw in definition.get("nodes") or ():
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                nodes[raw["id"]] = raw

        edges: list[Edge] = []
        for raw in definition.get("edges") or ():
            if not isinstance(raw, dict):
                continue
            source, target = raw.get("source"), raw.get("target")
            if not (isinstance(source, str) and isinstance(target, str)):
                continue
            handle = raw.get("sourceHandle")
            edge_id = raw.get("id")
            edges.append(
                Edge(
                    id=str(edge_id) if edge_id not in (None, "") else f"{source}->{target}",
                    source=source,
                    target=target,
                    handle=None if handle is None else str(handle),
                )
            )
        return cls(nodes, edges)

    def __len__(self) -> int:
        return len(self.node_ids)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __repr__(self) -> str:
        return f"<Graph: {len(self.node_ids)} nodes, {len(self.edges)} edges>"

    # -- adjacency ---------------------------------------------------------------------

    def node_type(self, node_id: str) -> str:
        """The node's ``type`` ("" if it has none)."""
        return str(self.nodes[node_id].get("type") or "")

    def parents(self, node_id: str) -> tuple[str, ...]:
        """The distinct sources of the node's incoming edges, in edge order."""
        return self._parents[node_id]

    def children(self, node_id: str) -> tuple[str, ...]:
        """The distinct targets of the node's outgoing edges, in edge order."""
        return self._children[node_id]

    def in_edges(self, node_id: str) -> tuple[Edge, ...]:
        """The edges into the node, in edge order."""
        return self._in[node_id]

    def out_edges(self, node_id: str) -> tuple[Edge, ...]:
        """The edges out of the node, in edge order."""
        return self._out[node_id]

    def join_policy(self, node_id: str) -> str:
        """The node's `data.join`: "any" (the first parent to complete starts it) or "all"
        (the default: every parent done). Anything else reads as "all" (validation
        reports it)."""
        data = self.nodes[node_id].get("data")
        return "any" if isinstance(data, dict) and data.get("join") == "any" else "all"

    def join_any_nodes(self) -> frozenset[str]:
        """The nodes with `join: any` that have parents (for a root the policy is moot)."""
        return frozenset(n for n in self.node_ids if self._in[n] and self.join_policy(n) == "any")

    def roots(self) -> tuple[str, ...]:
        """The nodes without incoming edges, in definition order."""
        return self._roots

    # -- order ---------------------------------------------------------------------------

    def find_cycle(self) -> list[str] | None:
        """One cycle (first id repeated at the end, as in `CycleError.cycle`), or None.

        Depth-first search from every node in definition order, so a cycle that no root
        reaches is found too.
        """
        done: set[str] = set()
        for start in self.node_ids:
            if start in done:
                continue
            path = [start]
            on_path = {start: 0}  # node -> index in path
            stack = [iter(self._children[start])]
            while stack:
                for child in stack[-1]:
                    if child in on_path:
                        return [*path[on_path[child] :], child]
                    if child not in done:
                        on_path[child] = len(path)
                        path.append(child)
                        stack.append(iter(self._children[child]))
                        break
                else:
                    stack.pop()
                    node = path.pop()
                    del on_path[node]
                    done.add(node)
        return None

    def levels(self) -> list[list[str]]:
        """Execution levels: level 0 holds the roots, level k the nodes whose longest path
        from a root has k edges; each level is in definition order.

        These are the rounds of Kahn's algorithm. Raises `CycleError` naming a cycle.
        """
        remaining = {n: len(self._in[n]) for n in self.node_ids}
        level = dict.fromkeys(self.node_ids, 0)
        queue = deque(self._roots)
        seen = 0
        while queue:
            node = queue.popleft()
            seen += 1
            next_level = level[node] + 1
            for edge in self._out[node]:
                target = edge.target
                level[target] = max(level[target], next_level)
                remaining[target] -= 1
                if remaining[target] == 0:
                    queue.append(target)
        if seen < len(self.node_ids):
            cycle = self.find_cycle()
            assert cycle is not None
            raise CycleError(cycle)

        result: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for node in self.node_ids:
            result[level[node]].append(node)
        return result

    def topological_order(self) -> list[str]:
        """Every node after all of its parents (Kahn's algorithm).

        Stable: nodes are taken round by round (see `levels`) and, within a round, in
        definition order. Raises `CycleError` naming a cycle.
        """
        return [node for level in self.levels() for node in level]

    def ready(
        self, finished: AbstractSet[str], started: AbstractSet[str] = frozenset()
    ) -> list[str]:
        """The nodes, in definition order, not in `finished` or `started` whose parents are
        all in `finished`."""
        return [
            node
            for node in self.node_ids
            if node not in finished
            and node not in started
            and all(parent in finished for parent in self._parents[node])
        ]

    # -- reachability --------------------------------------------------------------------

    def _reach(self, node_id: str, step: dict[str, tuple[str, ...]]) -> set[str]:
        seen: set[str] = set()
        stack = list(step[node_id])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(step[node])
        seen.discard(node_id)  # only there on a cycle through it
        return seen

    def upstream(self, node_id: str) -> set[str]:
        """All ancestors of the node, not the node itself."""
        return self._reach(node_id, self._parents)

    def downstream(self, node_id: str) -> set[str]:
        """All descendants of the node, not the node itself."""
        return self._reach(node_id, self._children)

    # -- dead-path elimination -----------------------------------------------------------

    def dead_nodes(
        self, dead_edge_ids: Iterable[str], already_dead: Iterable[str] = ()
    ) -> set[str]:
        """The nodes that die when the given edges (and the out-edges of `already_dead`)
        are dead.

        A node dies when all of its incoming edges are dead; every out-edge of a dead node
        is dead; this propagates. A node with one live incoming edge stays alive. Returns
        only the newly dead nodes, never those in `already_dead`. Unknown ids are ignored.
        Linear: each edge is killed at most once and counted against its target.
        """
        dead = {n for n in already_dead if n in self.nodes}
        newly_dead: set[str] = set()
        pending: list[int] = []
        for edge_id in dead_edge_ids:
            pending.extend(self._edge_index.get(edge_id, ()))
        for node in dead:
            pending.extend(self._out_index[node])

        killed: set[int] = set()
        dead_in: dict[str, int] = {}
        while pending:
            index = pending.pop()
            if index in killed:
                continue
            killed.add(index)
            target = self.edges[index].target
            if target in dead:
                continue
            dead_in[target] = count = dead_in.get(target, 0) + 1
            if count == len(self._in[target]):
                dead.add(target)
                newly_dead.add(target)
                pending.extend(self._out_index[target])
        return newly_dead

    def exclusive_branch(self, condition_id: str, handle: str) -> set[str]:
        """The nodes skipped when branch `handle` of the condition loses: everything that
        only the edges out of the condition with that handle lead to. A node also reached
        another way (the merge of a diamond) is not in it."""
        return self.dead_nodes(e.id for e in self._out[condition_id] if e.handle == handle)

    # -- weights -------------------------------------------------------------------------

    def critical_path(self, durations: Mapping[str, float]) -> tuple[list[str], float]:
        """The heaviest path, each node weighing ``durations.get(id, 0.0)``: the node ids
        on it in order and its total.

        Ties go to the path with more nodes, then to the earlier parent (edge order) and
        the earlier end (topological order). ``([], 0.0)`` for an empty graph. Raises
        `CycleError` naming a cycle.
        """
        best: dict[str, tuple[float, int]] = {}  # node -> (weight, node count) ending there
        previous: dict[str, str | None] = {}
        end: str | None = None
        for node in self.topological_order():
            via: str | None = None
            score: tuple[float, int] = (0.0, 0)
            for parent in self._parents[node]:
                if best[parent] > score:
                    via, score = parent, best[parent]
            best[node] = (score[0] + float(durations.get(node, 0.0)), score[1] + 1)
            previous[node] = via
            if end is None or best[node] > best[end]:
                end = node
        if end is None:
            return [], 0.0
        path: list[str] = []
        node: str | None = end
        while node is not None:
            path.append(node)
            node = previous[node]
        path.reverse()
        return path, best[end][0]
