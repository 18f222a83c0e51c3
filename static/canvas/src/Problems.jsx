// The validation problems: listed under the canvas, drawn on their nodes and edges.

/**
 * The problems as the canvas uses them: each with node_id or edge_id when it is about one.
 * The API locates a problem as ["definition", "nodes" | "edges", <id or index>, ...]; an
 * index (an element without a usable id) is looked up in `definition`.
 */
export function locateProblems(problems, definition) {
  return problems.map((problem) => {
    if (problem.node_id || problem.edge_id) return problem;
    const loc = (problem.loc || []).filter((part) => part !== "definition");
    const kind = loc[0] === "nodes" ? "node_id" : loc[0] === "edges" ? "edge_id" : null;
    if (!kind || loc.length < 2) return problem;
    let id = loc[1];
    if (typeof id === "number") {
      const element = (definition[loc[0]] || [])[id];
      id = element && element.id != null ? element.id : null;
    }
    return id == null ? problem : { ...problem, [kind]: String(id) };
  });
}

export function problemsByElement(problems) {
  const nodes = new Map();
  const edges = new Map();
  for (const problem of problems) {
    const [map, id] = problem.node_id ? [nodes, problem.node_id] : problem.edge_id ? [edges, problem.edge_id] : [null];
    if (!map) continue;
    if (!map.has(id)) map.set(id, []);
    map.get(id).push(problem.msg);
  }
  return { nodes, edges };
}

function where(problem) {
  if (problem.node_id) return `step ${problem.node_id}`;
  if (problem.edge_id) return `edge ${problem.edge_id}`;
  const loc = (problem.loc || []).filter((part) => part !== "definition");
  return loc.length ? loc.join(".") : "workflow";
}

export function Problems({ problems, onPick }) {
  if (!problems.length) return null;
  return (
    <section className="fm-problems" aria-label="Problems">
      <h3>
        {problems.length} problem{problems.length > 1 ? "s" : ""}
      </h3>
      <ul>
        {problems.map((problem, index) => (
          <li key={index} data-node-id={problem.node_id || undefined} data-edge-id={problem.edge_id || undefined}>
            <button type="button" className="link" onClick={() => onPick(problem)}>
              <code>{where(problem)}</code>
            </button>{" "}
            {problem.msg}
          </li>
        ))}
      </ul>
    </section>
  );
}
