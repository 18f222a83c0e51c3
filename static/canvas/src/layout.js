// Auto-layout with dagre: left to right, in the order the graph runs.
import dagre from "@dagrejs/dagre";

const DEFAULT_SIZE = { width: 190, height: 64 };

export function layout(nodes, edges) {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90, marginx: 20, marginy: 20 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) {
    const size = node.measured && node.measured.width ? node.measured : DEFAULT_SIZE;
    graph.setNode(node.id, { width: size.width, height: size.height });
  }
  for (const edge of edges) {
    if (graph.hasNode(edge.source) && graph.hasNode(edge.target)) graph.setEdge(edge.source, edge.target);
  }
  dagre.layout(graph);
  return nodes.map((node) => {
    const placed = graph.node(node.id);
    if (!placed) return node;
    return {
      ...node,
      position: { x: Math.round(placed.x - placed.width / 2), y: Math.round(placed.y - placed.height / 2) },
    };
  });
}

/** True when every node sits at the origin (a definition made without a canvas). */
export function needsLayout(nodes) {
  return nodes.length > 1 && nodes.every((n) => n.position.x === 0 && n.position.y === 0);
}
