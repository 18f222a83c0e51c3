// A version diff (GET /api/v1/workflows/{id}/diff/{other_id}) drawn on the canvas: marks
// for the nodes and edges of this version, ghosts for what only the other version has.
import { toFlowEdge, toFlowNode } from "./definition.js";

function ids(list) {
  return (list || []).map((item) => (typeof item === "object" && item !== null ? item.id ?? item.node_id ?? item.edge_id : item));
}

function changeNote(item) {
  if (typeof item !== "object" || item === null) return "";
  const fields = item.fields || item.changed || item.changes || [];
  if (Array.isArray(fields)) return fields.map((f) => (typeof f === "object" ? f.field || f.name : f)).join(", ");
  return Object.keys(fields).join(", ");
}

function part(result, kind) {
  const group = result[kind] || {};
  return {
    added: group.added ?? result[`added_${kind}`] ?? [],
    removed: group.removed ?? result[`removed_${kind}`] ?? [],
    changed: group.changed ?? result[`changed_${kind}`] ?? [],
    moved: group.moved ?? result[`moved_${kind}`] ?? [],
  };
}

export function diffOverlay(result, otherDefinition, currentNodes) {
  const nodes = part(result, "nodes");
  const edges = part(result, "edges");
  const nodeMarks = new Map();
  const edgeMarks = new Map();
  for (const id of ids(nodes.moved)) nodeMarks.set(id, { kind: "moved", note: "position" });
  for (const item of nodes.changed) {
    const id = ids([item])[0];
    const note = changeNote(item);
    const onlyMoved = item && (item.position_only || note === "position");
    nodeMarks.set(id, { kind: onlyMoved ? "moved" : "changed", note });
  }
  for (const id of ids(nodes.added)) nodeMarks.set(id, { kind: "added", note: "" });
  for (const id of ids(edges.added)) edgeMarks.set(id, "added");
  for (const id of ids(edges.changed)) edgeMarks.set(id, "changed");

  const removedNodes = new Set(ids(nodes.removed));
  const removedEdges = new Set(ids(edges.removed));
  const ghostNodes = (otherDefinition.nodes || [])
    .filter((n) => n && removedNodes.has(n.id))
    .map((n) => {
      const flow = toFlowNode(n);
      return {
        ...flow,
        id: flow.id,
        draggable: false,
        connectable: false,
        data: { ...flow.data, ghost: true, diff: "removed" },
      };
    });
  const present = new Set([...currentNodes.map((n) => n.id), ...ghostNodes.map((n) => n.id)]);
  const ghostEdges = (otherDefinition.edges || [])
    .filter((e) => e && removedEdges.has(e.id) && present.has(e.source) && present.has(e.target))
    .map((e) => {
      const flow = toFlowEdge(e);
      return { ...flow, id: `removed:${flow.id}`, className: "fm-diff-removed", data: { ...flow.data, ghost: true } };
    });
  const count = (list) => list.length;
  const summary = [
    `${count(nodes.added)} added`,
    `${count(nodes.removed)} removed`,
    `${nodeMarks.size - count(nodes.added)} changed`,
    `${count(edges.added) + count(edges.removed) + count(edges.changed)} edge changes`,
  ].join(", ");
  return { nodeMarks, edgeMarks, ghostNodes, ghostEdges, summary };
}
