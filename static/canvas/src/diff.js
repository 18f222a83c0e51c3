// A version diff drawn on the canvas. The diff is GET /api/v1/workflows/{other}/diff/{this}
// (workflows/diff.py: what this version changed from the other): marks for the nodes and
// edges of this version, ghosts for what only the other version has.
import { toFlowEdge, toFlowNode } from "./definition.js";

/** "label, config (url, method), moved" for one changed node of the diff. */
function changeNote(item) {
  const parts = item.fields.map((name) => {
    const keys = name === "config" ? item.config_keys : name === "data" ? item.data_keys : null;
    return keys && keys.length ? `${name} (${keys.join(", ")})` : name;
  });
  if (item.moved) parts.push("moved");
  return parts.join(", ");
}

export function diffOverlay(diff, otherDefinition, currentNodes) {
  const { nodes, edges } = diff;
  const nodeMarks = new Map();
  for (const item of nodes.moved) nodeMarks.set(item.id, { kind: "moved", note: "moved" });
  for (const item of nodes.changed) nodeMarks.set(item.id, { kind: "changed", note: changeNote(item) });
  for (const item of nodes.added) nodeMarks.set(item.id, { kind: "added", note: "" });
  const edgeMarks = new Map();
  for (const item of edges.added) edgeMarks.set(item.id, "added");
  for (const item of edges.changed) edgeMarks.set(item.id, "changed");

  const removedNodes = new Set(nodes.removed.map((n) => n.id));
  const removedEdges = new Set(edges.removed.map((e) => e.id));
  const ghostNodes = (otherDefinition.nodes || [])
    .filter((n) => n && removedNodes.has(n.id))
    .map((n) => {
      const flow = toFlowNode(n);
      return { ...flow, draggable: false, connectable: false, data: { ...flow.data, ghost: true, diff: "removed" } };
    });
  const present = new Set([...currentNodes.map((n) => n.id), ...ghostNodes.map((n) => n.id)]);
  const ghostEdges = (otherDefinition.edges || [])
    .filter((e) => e && removedEdges.has(e.id) && present.has(e.source) && present.has(e.target))
    .map((e) => {
      const flow = toFlowEdge(e);
      return { ...flow, id: `removed:${flow.id}`, className: "fm-diff-removed", data: { ...flow.data, ghost: true } };
    });
  const summary = diff.identical
    ? "no differences"
    : [
        `${nodes.added.length} added`,
        `${nodes.removed.length} removed`,
        `${nodes.changed.length} changed`,
        `${nodes.moved.length} moved`,
        `${edges.added.length + edges.removed.length + edges.changed.length} edge changes`,
      ].join(", ");
  return { nodeMarks, edgeMarks, ghostNodes, ghostEdges, summary };
}
