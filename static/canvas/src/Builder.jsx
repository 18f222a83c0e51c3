// The builder: palette, canvas, toolbar, problems; the node form lives in #node-panel,
// server-rendered and loaded with htmx (the partner endpoints workflows:node_form[_save]).
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
} from "@xyflow/react";

import { makeApi } from "./api.js";
import { contentKey, edgeId, freshId, toDefinition, toFlow } from "./definition.js";
import { diffOverlay } from "./diff.js";
import { useHistory } from "./history.js";
import { layout, needsLayout } from "./layout.js";
import { nodeTypes } from "./nodes.jsx";
import { DRAG_TYPE, Palette } from "./Palette.jsx";
import { Problems, locateProblems, problemsByElement } from "./Problems.jsx";

const PASTE_OFFSET = 40;
/** Stands for a workflow id in the URL templates of the boot data. */
const PLACEHOLDER = "00000000-0000-0000-0000-000000000000";

function typingIn(target) {
  if (!target || !target.closest) return false;
  return Boolean(target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true'], #node-panel"));
}

function initialFlow(definition) {
  const flow = toFlow(definition);
  if (needsLayout(flow.nodes)) flow.nodes = layout(flow.nodes, flow.edges);
  return flow;
}

function Builder({ boot }) {
  const api = useMemo(() => makeApi(boot.csrf_token), [boot.csrf_token]);
  const urls = boot.urls;
  const flowApi = useReactFlow();
  const [workflow, setWorkflow] = useState(boot.workflow);
  const base = useRef(boot.definition);
  const [flow] = useState(() => initialFlow(boot.definition));
  const [nodes, setNodes] = useState(flow.nodes);
  const [edges, setEdges] = useState(flow.edges);
  const viewport = useRef(boot.definition.viewport || null);
  const [savedKey, setSavedKey] = useState(() =>
    contentKey(toDefinition(base.current, flow.nodes, flow.edges, viewport.current)),
  );
  const [problems, setProblems] = useState([]);
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(false);
  const [catalog, setCatalog] = useState({ steps: [], functions: [], error: null });
  const [versions, setVersions] = useState([]);
  const [diff, setDiff] = useState(null);
  const clipboard = useRef(null);
  const panelNode = useRef(null);

  const current = useRef({ nodes, edges });
  current.current = { nodes, edges };
  const history = useHistory(current, setNodes, setEdges);

  // A viewer's builder is read-only (the server refuses their edits anyway).
  const canEdit = boot.can_edit !== false;
  const isDraft = workflow.status === "draft" && canEdit;
  const locked = !isDraft || diff !== null;
  const definition = toDefinition(base.current, nodes, edges, viewport.current);
  const dirty = isDraft && contentKey(definition) !== savedKey;

  const say = (kind, text) => setMessage({ kind, text });

  // -- catalog, versions ------------------------------------------------------------------
  useEffect(() => {
    Promise.all([api.get(urls.catalog_steps), api.get(urls.catalog_functions)])
      .then(([steps, functions]) => setCatalog({ steps: steps.items, functions: functions.items, error: null }))
      .catch((error) => setCatalog({ steps: [], functions: [], error: `Palette unavailable: ${error.message}` }));
  }, [api, urls]);

  const loadVersions = useCallback(() => {
    api
      .get(urls.versions)
      .then((page) => setVersions(page.items))
      .catch(() => setVersions([]));
  }, [api, urls]);
  useEffect(loadVersions, [loadVersions]);

  // -- unsaved-changes guard ----------------------------------------------------------------
  useEffect(() => {
    const root = document.getElementById(boot.root_id);
    if (root) root.dataset.dirty = dirty ? "true" : "false";
    const title = document.title.replace(/^● /, "");
    document.title = dirty ? `● ${title}` : title;
    if (!dirty) return undefined;
    const guard = (event) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", guard);
    return () => window.removeEventListener("beforeunload", guard);
  }, [dirty, boot.root_id]);

  // -- the node form panel --------------------------------------------------------------------
  const showPanel = useCallback(
    (node) => {
      const panel = document.getElementById("node-panel");
      if (!panel) return;
      panelNode.current = node ? node.id : null;
      if (!node) {
        panel.innerHTML = '<p class="muted">Select a step to configure it.</p>';
        return;
      }
      // While comparing versions the canvas shows two definitions: no form, just the data.
      if (diff !== null || !window.htmx) {
        panel.innerHTML = "";
        const heading = document.createElement("h3");
        heading.textContent = `${node.id} (${node.data.stepType})`;
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(node.data.data, null, 2);
        panel.append(heading, pre);
        return;
      }
      const { nodes: all, edges: allEdges } = current.current;
      // The latest selection wins: htmx would drop a request while one is in flight.
      window.htmx.trigger(panel, "htmx:abort");
      window.htmx.ajax("POST", urls.node_form, {
        target: "#node-panel",
        swap: "innerHTML",
        headers: { "X-CSRFToken": boot.csrf_token },
        values: {
          node_id: node.id,
          step_type: node.data.stepType,
          node_data: JSON.stringify(node.data.data),
          definition: JSON.stringify(toDefinition(base.current, all, allEdges, viewport.current)),
        },
      });
    },
    [diff, urls, boot.csrf_token],
  );

  const selected = nodes.filter((n) => n.selected && !n.data.ghost);
  const selectedId = selected.length === 1 ? selected[0].id : null;
  useEffect(() => {
    if (selectedId === panelNode.current) return;
    showPanel(selectedId ? current.current.nodes.find((n) => n.id === selectedId) : null);
  }, [selectedId, showPanel]);

  useEffect(() => {
    const onSaved = (event) => {
      const detail = event.detail || {};
      if (!detail.node_id || typeof detail.data !== "object" || detail.data === null) return;
      if (locked) {
        say("error", "This version is read-only; the change was not applied.");
        return;
      }
      history.record();
      setNodes((all) =>
        all.map((n) => (n.id === detail.node_id ? { ...n, data: { ...n.data, data: detail.data } } : n)),
      );
    };
    document.body.addEventListener("flowmatrx:node-saved", onSaved);
    return () => document.body.removeEventListener("flowmatrx:node-saved", onSaved);
  }, [locked, history]);

  // -- editing ---------------------------------------------------------------------------------
  const onNodesChange = useCallback((changes) => setNodes((all) => applyNodeChanges(changes, all)), []);
  const onEdgesChange = useCallback((changes) => setEdges((all) => applyEdgeChanges(changes, all)), []);

  const addNode = useCallback(
    (item, position) => {
      if (locked) return;
      history.record();
      const taken = new Set(current.current.nodes.map((n) => n.id));
      const id = freshId(item.type === "function_call" ? item.config.function : item.type, taken);
      const node = {
        id,
        type: item.type === "condition" ? "condition" : "step",
        position,
        selected: true,
        data: { stepType: item.type, data: { label: item.label, config: { ...item.config } }, extra: {} },
      };
      setNodes((all) => [...all.map((n) => (n.selected ? { ...n, selected: false } : n)), node]);
      setEdges((all) => all.map((e) => (e.selected ? { ...e, selected: false } : e)));
    },
    [locked, history],
  );

  const addAtCenter = useCallback(
    (item) => {
      const pane = document.querySelector(`#${boot.root_id} .react-flow`);
      const box = pane ? pane.getBoundingClientRect() : { left: 0, top: 0, width: 400, height: 300 };
      addNode(item, flowApi.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 }));
    },
    [addNode, flowApi, boot.root_id],
  );

  const onDrop = useCallback(
    (event) => {
      const raw = event.dataTransfer.getData(DRAG_TYPE);
      if (!raw) return;
      event.preventDefault();
      let item;
      try {
        item = JSON.parse(raw);
      } catch {
        return;
      }
      addNode(item, flowApi.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [addNode, flowApi],
  );

  const isValidConnection = useCallback((connection) => {
    if (connection.source === connection.target) return false;
    return !current.current.edges.some(
      (e) =>
        e.source === connection.source &&
        e.target === connection.target &&
        (e.sourceHandle || null) === (connection.sourceHandle || null),
    );
  }, []);

  const onConnect = useCallback(
    (connection) => {
      if (locked) return;
      history.record();
      setEdges((all) => {
        const handle = connection.sourceHandle || null;
        const edge = {
          id: edgeId(connection.source, connection.target, handle, new Set(all.map((e) => e.id))),
          source: connection.source,
          target: connection.target,
          data: { extra: {} },
        };
        if (handle) edge.sourceHandle = handle;
        return [...all, edge];
      });
    },
    [locked, history],
  );

  const onBeforeDelete = useCallback(
    async ({ nodes: gone }) => {
      if (locked) return false;
      history.record();
      if (gone.some((n) => n.id === panelNode.current)) showPanel(null);
      return true;
    },
    [locked, history, showPanel],
  );

  const copy = useCallback(() => {
    const { nodes: all, edges: allEdges } = current.current;
    const picked = all.filter((n) => n.selected && !n.data.ghost);
    if (!picked.length) return;
    const ids = new Set(picked.map((n) => n.id));
    clipboard.current = {
      nodes: picked.map((n) => ({ id: n.id, type: n.type, position: n.position, data: n.data })),
      edges: allEdges.filter((e) => ids.has(e.source) && ids.has(e.target)),
    };
    say("info", `Copied ${picked.length} step${picked.length > 1 ? "s" : ""}.`);
  }, []);

  const paste = useCallback(() => {
    if (locked || !clipboard.current) return;
    history.record();
    const { nodes: all, edges: allEdges } = current.current;
    const taken = new Set(all.map((n) => n.id));
    const renamed = new Map();
    const pasted = clipboard.current.nodes.map((n) => {
      const id = freshId(n.id.replace(/_\d+$/, ""), taken);
      taken.add(id);
      renamed.set(n.id, id);
      return {
        ...n,
        id,
        selected: true,
        position: { x: n.position.x + PASTE_OFFSET, y: n.position.y + PASTE_OFFSET },
        data: structuredClone(n.data),
      };
    });
    const edgeIds = new Set(allEdges.map((e) => e.id));
    const pastedEdges = clipboard.current.edges.map((e) => {
      const source = renamed.get(e.source);
      const target = renamed.get(e.target);
      const id = edgeId(source, target, e.sourceHandle, edgeIds);
      edgeIds.add(id);
      return { ...e, id, source, target, selected: false };
    });
    clipboard.current = { nodes: pasted.map((n) => ({ ...n, selected: false })), edges: pastedEdges };
    setNodes([...all.map((n) => ({ ...n, selected: false })), ...pasted]);
    setEdges([...allEdges.map((e) => ({ ...e, selected: false })), ...pastedEdges]);
  }, [locked, history]);

  const selectAll = useCallback(() => {
    setNodes((all) => all.map((n) => ({ ...n, selected: true })));
    setEdges((all) => all.map((e) => ({ ...e, selected: true })));
  }, []);

  const autoLayout = useCallback(() => {
    if (locked) return;
    history.record();
    setNodes(layout(current.current.nodes, current.current.edges));
    window.requestAnimationFrame(() => flowApi.fitView({ duration: 200 }));
  }, [locked, history, flowApi]);

  // The restored graph may not have the node the panel shows: start from no selection.
  const travel = useCallback(
    (move) => {
      if (locked || !move()) return;
      setNodes((all) => all.map((n) => (n.selected ? { ...n, selected: false } : n)));
      showPanel(null);
    },
    [locked, showPanel],
  );
  const undo = useCallback(() => travel(history.undo), [travel, history]);
  const redo = useCallback(() => travel(history.redo), [travel, history]);

  // -- server actions ----------------------------------------------------------------------------
  const save = useCallback(async () => {
    if (!isDraft) return null;
    const doc = toDefinition(base.current, current.current.nodes, current.current.edges, viewport.current);
    setBusy(true);
    try {
      const saved = await api.put(urls.workflow, { definition: doc });
      base.current = saved.definition;
      setSavedKey(contentKey(doc));
      setProblems(locateProblems(saved.errors || [], doc));
      const count = (saved.errors || []).length;
      say(count ? "warning" : "ok", count ? `Saved, with ${count} problem${count > 1 ? "s" : ""}.` : "Saved.");
      return saved;
    } catch (error) {
      say("error", `Not saved: ${error.message}`);
      return null;
    } finally {
      setBusy(false);
    }
  }, [api, urls, isDraft]);

  const validate = useCallback(async () => {
    if (isDraft) {
      const saved = await save();
      if (saved && !(saved.errors || []).length) say("ok", "Saved and valid.");
      return;
    }
    try {
      const result = await api.post(urls.validate);
      setProblems(locateProblems(result.errors, base.current));
      say(result.valid ? "ok" : "warning", result.valid ? "Valid." : `${result.errors.length} problems.`);
    } catch (error) {
      say("error", error.message);
    }
  }, [api, urls, isDraft, save]);

  const publish = useCallback(async () => {
    if (dirty && !(await save())) return;
    setBusy(true);
    try {
      const published = await api.post(urls.publish);
      setProblems([]);
      setWorkflow({ ...workflow, status: published.status });
      showPanel(null);
      say("ok", `Published version ${published.version}.`);
      loadVersions();
    } catch (error) {
      if (error.errors.length) setProblems(locateProblems(error.errors, base.current));
      say("error", `Not published: ${error.message}`);
    } finally {
      setBusy(false);
    }
  }, [api, urls, dirty, save, workflow, loadVersions, showPanel]);

  const openBuilder = (id) => {
    window.location.assign(urls.builder_template.replace(PLACEHOLDER, id));
  };

  const newDraft = useCallback(async () => {
    try {
      const draft = await api.post(urls.new_version);
      openBuilder(draft.id);
    } catch (error) {
      const draft = error.status === 409 && versions.find((v) => v.status === "draft");
      if (draft) openBuilder(draft.id);
      else say("error", error.message);
    }
  }, [api, urls, versions]);

  const duplicate = useCallback(async () => {
    if (dirty && !(await save())) return;
    try {
      const copy = await api.post(urls.duplicate, {});
      openBuilder(copy.id);
    } catch (error) {
      say("error", `Not duplicated: ${error.message}`);
    }
  }, [api, urls, dirty, save]);

  const run = useCallback(async () => {
    if (dirty && !(await save())) return;
    const dialog = document.getElementById("run-dialog");
    if (dialog && dialog.showModal) dialog.showModal();
  }, [dirty, save]);

  const compare = useCallback(
    async (otherId) => {
      setNodes((all) => all.filter((n) => !n.data.ghost).map((n) => ({ ...n, selected: false })));
      setEdges((all) => all.filter((e) => !(e.data && e.data.ghost)));
      if (!otherId) {
        setDiff(null);
        return;
      }
      if (dirty && !(await save())) return;
      try {
        const [result, other] = await Promise.all([
          api.get(urls.diff_template.replace(PLACEHOLDER, otherId)),
          api.get(urls.workflow_template.replace(PLACEHOLDER, otherId)),
        ]);
        const overlay = diffOverlay(result, other.definition || {}, current.current.nodes);
        setNodes((all) => [...all, ...overlay.ghostNodes]);
        setEdges((all) => [...all, ...overlay.ghostEdges]);
        setDiff({ other, ...overlay });
        showPanel(null);
        say("info", `Compared with version ${other.version}: ${overlay.summary}.`);
      } catch (error) {
        setDiff(null);
        say("error", `No diff: ${error.message}`);
      }
    },
    [api, urls, dirty, save, showPanel],
  );

  // -- keyboard ------------------------------------------------------------------------------------
  useEffect(() => {
    const onKey = (event) => {
      if (typingIn(event.target)) return;
      const mod = event.ctrlKey || event.metaKey;
      if (!mod) return;
      const key = event.key.toLowerCase();
      const actions = {
        s: save,
        z: event.shiftKey ? redo : undo,
        y: redo,
        c: copy,
        v: paste,
        a: selectAll,
      };
      if (actions[key]) {
        event.preventDefault();
        actions[key]();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [save, undo, redo, copy, paste, selectAll]);

  // -- problems and diff drawn on the canvas -------------------------------------------------------
  const byElement = useMemo(() => problemsByElement(problems), [problems]);
  const shownNodes = useMemo(
    () =>
      nodes.map((n) => {
        const found = byElement.nodes.get(n.id);
        const marks = diff && diff.nodeMarks.get(n.id);
        if (!found && !marks) return n;
        return {
          ...n,
          data: {
            ...n.data,
            problems: found || undefined,
            diff: marks ? marks.kind : n.data.diff,
            diffNote: marks ? marks.note : n.data.diffNote,
          },
        };
      }),
    [nodes, byElement, diff],
  );
  const shownEdges = useMemo(
    () =>
      edges.map((e) => {
        const found = byElement.edges.get(e.id);
        const mark = diff && diff.edgeMarks.get(e.id);
        if (!found && !mark) return e;
        const classes = [e.className, found && "fm-invalid-edge", mark && `fm-diff-${mark}`].filter(Boolean);
        return { ...e, className: classes.join(" "), label: found ? found[0] : e.label };
      }),
    [edges, byElement, diff],
  );

  const focusElement = useCallback(
    (problem) => {
      if (problem.node_id) {
        setNodes((all) => all.map((n) => ({ ...n, selected: n.id === problem.node_id })));
        setEdges((all) => all.map((e) => ({ ...e, selected: false })));
        flowApi.fitView({ nodes: [{ id: problem.node_id }], duration: 200, maxZoom: 1.2 });
      } else if (problem.edge_id) {
        setNodes((all) => all.map((n) => ({ ...n, selected: false })));
        setEdges((all) => all.map((e) => ({ ...e, selected: e.id === problem.edge_id })));
      }
    },
    [flowApi],
  );

  const hasViewport = Boolean(boot.definition.viewport && boot.definition.viewport.zoom);
  const others = versions.filter((v) => v.id !== workflow.id);

  return (
    <div className="fm-builder" data-locked={locked ? "true" : "false"}>
      <div className="fm-toolbar" role="toolbar" aria-label="Builder">
        <span className={`status status-${workflow.status}`} data-workflow-status={workflow.status}>
          {workflow.status}
        </span>
        <span className="fm-save-state" data-save-state={dirty ? "dirty" : "clean"}>
          {dirty ? "Unsaved changes" : isDraft ? "All changes saved" : "Read-only"}
        </span>
        {isDraft ? (
          <>
            <button type="button" onClick={save} disabled={busy || locked} title="Ctrl+S">
              Save
            </button>
            <button type="button" onClick={validate} disabled={busy || locked}>
              Validate
            </button>
            <button type="button" onClick={publish} disabled={busy || locked}>
              Publish
            </button>
          </>
        ) : canEdit ? (
          <button type="button" onClick={newDraft} disabled={busy}>
            Edit as new draft
          </button>
        ) : null}
        <button type="button" onClick={undo} disabled={locked || !history.canUndo} title="Ctrl+Z">
          Undo
        </button>
        <button type="button" onClick={redo} disabled={locked || !history.canRedo} title="Ctrl+Y">
          Redo
        </button>
        <button type="button" onClick={autoLayout} disabled={locked}>
          Auto-layout
        </button>
        <button type="button" onClick={() => flowApi.fitView({ duration: 200 })}>
          Fit
        </button>
        {canEdit ? (
          <>
            <button type="button" onClick={run} disabled={busy || workflow.status === "archived"}>
              Run…
            </button>
            <button type="button" onClick={duplicate} disabled={busy}>
              Duplicate
            </button>
          </>
        ) : null}
        <label>
          Version{" "}
          <select
            aria-label="Version"
            value={workflow.id}
            onChange={(e) => e.target.value !== workflow.id && openBuilder(e.target.value)}
          >
            {versions.length === 0 && <option value={workflow.id}>v{workflow.version}</option>}
            {versions.map((v) => (
              <option key={v.id} value={v.id}>
                v{v.version} ({v.status})
              </option>
            ))}
          </select>
        </label>
        <label>
          Compare with{" "}
          <select aria-label="Compare with" value={diff ? diff.other.id : ""} onChange={(e) => compare(e.target.value)}>
            <option value="">—</option>
            {others.map((v) => (
              <option key={v.id} value={v.id}>
                v{v.version} ({v.status})
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className={`fm-message fm-message-${message ? message.kind : "none"}`} role="status" aria-live="polite">
        {message ? message.text : ""}
      </p>
      <div className="fm-body">
        <Palette
          steps={catalog.steps}
          functions={catalog.functions}
          error={catalog.error}
          onAdd={addAtCenter}
          disabled={locked}
          note={diff ? "Close the comparison to edit." : "This version is read-only."}
        />
        <div className="fm-canvas" onDragOver={(e) => e.preventDefault()} onDrop={onDrop}>
          <ReactFlow
            nodes={shownNodes}
            edges={shownEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            onBeforeDelete={onBeforeDelete}
            onNodeDragStart={() => history.record()}
            onMoveEnd={(_, vp) => {
              viewport.current = { x: Math.round(vp.x), y: Math.round(vp.y), zoom: vp.zoom };
            }}
            nodesDraggable={!locked}
            nodesConnectable={!locked}
            deleteKeyCode={locked ? null : ["Delete", "Backspace"]}
            defaultViewport={hasViewport ? boot.definition.viewport : undefined}
            fitView={!hasViewport}
            minZoom={0.2}
            maxZoom={2}
          >
            <Background gap={16} />
            <Controls />
            <MiniMap pannable zoomable />
          </ReactFlow>
        </div>
      </div>
      <Problems problems={problems} onPick={focusElement} />
      {diff && (
        <p className="fm-diff-legend">
          <span className="fm-diff-added">added</span> <span className="fm-diff-changed">changed</span>{" "}
          <span className="fm-diff-moved">moved</span> <span className="fm-diff-removed">removed</span> — compared
          with v{diff.other.version}.{" "}
          <button type="button" onClick={() => compare("")}>
            Close the comparison
          </button>
        </p>
      )}
    </div>
  );
}

export function BuilderIsland({ boot }) {
  return (
    <ReactFlowProvider>
      <Builder boot={boot} />
    </ReactFlowProvider>
  );
}
