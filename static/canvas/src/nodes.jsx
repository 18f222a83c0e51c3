// The node boxes: one component for every step type; condition nodes get two labeled
// outputs ("true" and "false") whose edges carry that sourceHandle.
import { Handle, Position } from "@xyflow/react";

function classes(data, selected) {
  const out = ["fm-node"];
  if (selected) out.push("fm-selected");
  if (data.problems && data.problems.length) out.push("fm-invalid");
  if (data.run) out.push(`fm-status-${data.run.status}`);
  if (data.diff) out.push(`fm-diff-${data.diff}`);
  return out.join(" ");
}

function Badges({ data }) {
  const run = data.run;
  return (
    <>
      {run && (
        <span className="fm-badge fm-badge-status" data-step-status={run.status}>
          {run.status}
        </span>
      )}
      {run && run.attempt > 1 && (
        <span className="fm-badge fm-badge-retry" title="attempt">
          retry {run.attempt - 1}
        </span>
      )}
      {data.diff && <span className={`fm-badge fm-badge-diff`}>{data.diff}</span>}
    </>
  );
}

function Body({ id, data }) {
  const label = (data.data && data.data.label) || id;
  const problems = data.problems || [];
  return (
    <>
      <div className="fm-node-title">{label}</div>
      <div className="fm-node-meta">
        <code>{id}</code> · {data.stepType}
      </div>
      <div className="fm-node-badges">
        <Badges data={data} />
      </div>
      {problems.length > 0 && (
        <div className="fm-node-problem" role="alert">
          {problems[0]}
          {problems.length > 1 ? ` (+${problems.length - 1})` : ""}
        </div>
      )}
      {data.diffNote && <div className="fm-node-diffnote">{data.diffNote}</div>}
    </>
  );
}

export function StepNode({ id, data, selected }) {
  return (
    <div className={classes(data, selected)} data-node-type={data.stepType}>
      <Handle type="target" position={Position.Left} />
      <Body id={id} data={data} />
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

export function ConditionNode({ id, data, selected }) {
  return (
    <div className={`${classes(data, selected)} fm-condition`} data-node-type={data.stepType}>
      <Handle type="target" position={Position.Left} />
      <Body id={id} data={data} />
      <Handle type="source" id="true" position={Position.Right} style={{ top: "30%" }} className="fm-handle-true" />
      <span className="fm-handle-label fm-handle-label-true">true</span>
      <Handle type="source" id="false" position={Position.Right} style={{ top: "75%" }} className="fm-handle-false" />
      <span className="fm-handle-label fm-handle-label-false">false</span>
    </div>
  );
}

export const nodeTypes = { step: StepNode, condition: ConditionNode };
