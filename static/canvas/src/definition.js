// The workflow definition (SPEC §2) <-> React Flow nodes and edges. The definition is stored
// verbatim, so every field of a node or edge the canvas does not know is kept as it was.

const NODE_ID = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;
const RESERVED = new Set(["input", "state", "item", "index", "event", "run", "loop", "true", "false", "none", "null"]);

export function toFlowNode(node) {
  const { id, type, position, data, ...extra } = node;
  return {
    id: String(id),
    type: type === "condition" ? "condition" : "step",
    position: position && typeof position.x === "number" ? { x: position.x, y: position.y } : { x: 0, y: 0 },
    data: { stepType: type, data: data || {}, extra },
  };
}

export function toFlowEdge(edge) {
  const { id, source, target, sourceHandle, ...extra } = edge;
  const flow = { id: String(id), source: String(source), target: String(target), data: { extra } };
  if (sourceHandle) flow.sourceHandle = String(sourceHandle);
  return flow;
}

export function toFlow(definition) {
  const nodes = Array.isArray(definition.nodes) ? definition.nodes.filter((n) => n && n.id != null) : [];
  const ids = new Set(nodes.map((n) => String(n.id)));
  const edges = Array.isArray(definition.edges)
    ? definition.edges.filter((e) => e && e.id != null && ids.has(String(e.source)) && ids.has(String(e.target)))
    : [];
  return { nodes: nodes.map(toFlowNode), edges: edges.map(toFlowEdge) };
}

function roundPosition(position) {
  return { x: Math.round(position.x), y: Math.round(position.y) };
}

export function toDefinition(base, nodes, edges, viewport) {
  const out = { ...base };
  out.nodes = nodes
    .filter((n) => !n.data.ghost)
    .map((n) => ({
      ...n.data.extra,
      id: n.id,
      type: n.data.stepType,
      position: roundPosition(n.position),
      data: n.data.data,
    }));
  out.edges = edges
    .filter((e) => !(e.data && e.data.ghost))
    .map((e) => {
      const edge = { ...(e.data ? e.data.extra : {}), id: e.id, source: e.source, target: e.target };
      if (e.sourceHandle) edge.sourceHandle = e.sourceHandle;
      return edge;
    });
  out.viewport = viewport || base.viewport || { x: 0, y: 0, zoom: 1 };
  out.settings = base.settings || {};
  return out;
}

function stable(value) {
  if (Array.isArray(value)) return value.map(stable);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const key of Object.keys(value).sort()) out[key] = stable(value[key]);
  return out;
}

/** The definition without the viewport, keys sorted (PostgreSQL's jsonb reorders them):
 * what "unsaved changes" compares. */
export function contentKey(definition) {
  const { viewport, ...rest } = definition;
  return JSON.stringify(stable(rest));
}

/** A node id that is valid in templates and not taken, from `wanted` (a type or a name). */
export function freshId(wanted, taken) {
  let base = String(wanted || "step").replace(/[^A-Za-z0-9_]/g, "_").slice(0, 90);
  if (!base || /^[0-9]/.test(base)) base = `step_${base}`;
  for (let n = 1; ; n += 1) {
    const id = `${base}_${n}`;
    if (!taken.has(id) && NODE_ID.test(id) && !RESERVED.has(id)) return id;
  }
}

export function edgeId(source, target, sourceHandle, taken) {
  const base = sourceHandle ? `${source}-${sourceHandle}-${target}` : `${source}-${target}`;
  let id = base;
  for (let n = 2; taken.has(id); n += 1) id = `${base}-${n}`;
  return id;
}
