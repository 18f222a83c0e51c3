// The read-only canvas of the run page: the run's version of the graph, each node coloured
// and badged by its step's status, following the run's JSON stream (/ws/runs/<id>):
// a snapshot on connect, then events; on reconnect ?after=<last seq>.
import { useEffect, useMemo, useRef, useState } from "react";
import { Background, Controls, ReactFlow, ReactFlowProvider } from "@xyflow/react";

import { toFlow } from "./definition.js";
import { layout, needsLayout } from "./layout.js";
import { nodeTypes } from "./nodes.jsx";

const RECONNECT_MS = 1000;
const CLOSED_FOR_GOOD = new Set([4401, 4404]);

const EVENT_STATUS = {
  "step.started": "running",
  "step.completed": "completed",
  "step.failed": "failed",
  "step.skipped": "skipped",
  "step.waiting": "waiting",
  "step.retrying": "retrying",
};

/** Statuses by step id from the snapshot's step runs (the latest attempt wins). */
export function statusesFromSteps(steps) {
  const out = {};
  for (const step of steps) {
    const known = out[step.step_id];
    if (!known || step.attempt >= known.attempt) out[step.step_id] = { status: step.status, attempt: step.attempt };
  }
  return out;
}

export function applyEvent(statuses, event) {
  const status = EVENT_STATUS[event.event_type];
  if (!status || !event.step_id) return statuses;
  const known = statuses[event.step_id] || { attempt: 1 };
  const attempt = Number(event.payload && event.payload.attempt) || known.attempt;
  return { ...statuses, [event.step_id]: { status, attempt } };
}

function socketUrl(path, after) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const query = after > 0 ? `?after=${after}` : "";
  return `${scheme}//${window.location.host}${path}${query}`;
}

function RunCanvas({ boot }) {
  const flow = useMemo(() => {
    const { nodes, edges } = toFlow(boot.definition);
    return { nodes: needsLayout(nodes) ? layout(nodes, edges) : nodes, edges };
  }, [boot.definition]);
  const [statuses, setStatuses] = useState({});
  const [runStatus, setRunStatus] = useState(boot.run_status);
  const [connection, setConnection] = useState("connecting");
  const lastSeq = useRef(0);

  useEffect(() => {
    let socket = null;
    let timer = null;
    let stopped = false;
    const connect = () => {
      socket = new WebSocket(socketUrl(boot.stream_url, lastSeq.current));
      socket.onopen = () => setConnection("live");
      socket.onmessage = (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        if (data.type === "snapshot") {
          lastSeq.current = Math.max(lastSeq.current, data.last_seq || 0);
          setStatuses(statusesFromSteps(data.steps || []));
          if (data.run) setRunStatus(data.run.status);
        } else if (data.type === "event" && data.seq > lastSeq.current) {
          lastSeq.current = data.seq;
          setStatuses((current) => applyEvent(current, data));
          if (data.event_type.startsWith("run.") && data.payload && data.payload.status) {
            setRunStatus(data.payload.status);
          }
        }
      };
      socket.onclose = (event) => {
        if (stopped) return;
        if (CLOSED_FOR_GOOD.has(event.code)) {
          setConnection("closed");
          return;
        }
        setConnection("reconnecting");
        timer = window.setTimeout(connect, RECONNECT_MS);
      };
    };
    connect();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      if (socket) socket.close();
    };
  }, [boot.stream_url]);

  const nodes = useMemo(
    () =>
      flow.nodes.map((n) => ({
        ...n,
        draggable: false,
        connectable: false,
        data: { ...n.data, run: statuses[n.id] || { status: "pending", attempt: 1 } },
      })),
    [flow.nodes, statuses],
  );
  const edges = useMemo(
    () =>
      flow.edges.map((e) => {
        const source = statuses[e.source];
        const target = statuses[e.target];
        // Taken: the source completed and the target went on (not skipped, not waiting to start).
        const taken = source && source.status === "completed" && target && !["pending", "skipped"].includes(target.status);
        return { ...e, animated: Boolean(source && source.status === "running"), className: taken ? "fm-edge-done" : "" };
      }),
    [flow.edges, statuses],
  );

  return (
    <div className="fm-run-canvas" data-canvas-run-status={runStatus} data-connection={connection}>
      <p className="fm-run-canvas-state">
        <span className={`status status-${runStatus}`}>{runStatus}</span>{" "}
        <span className="fm-muted" data-canvas-connection={connection}>
          {connection === "live" ? "live" : connection === "closed" ? "stream closed" : `${connection}…`}
        </span>
      </p>
      <div className="fm-canvas">
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={false}
          deleteKeyCode={null}
          fitView
          fitViewOptions={{ padding: 0.15 }}
          minZoom={0.2}
          maxZoom={1.5}
        >
          <Background gap={16} />
          <Controls showInteractive={false} />
        </ReactFlow>
      </div>
    </div>
  );
}

export function RunIsland({ boot }) {
  return (
    <ReactFlowProvider>
      <RunCanvas boot={boot} />
    </ReactFlowProvider>
  );
}
