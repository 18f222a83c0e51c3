// Mount the canvas islands: every element with data-flowmatrx-canvas="<id of its boot
// json_script>" gets the builder or the read-only run view, as its boot data says.
import { createRoot } from "react-dom/client";

import "@xyflow/react/dist/style.css";
import "./canvas.css";
import { BuilderIsland } from "./Builder.jsx";
import { RunIsland } from "./RunViewer.jsx";

function mount(element) {
  const script = document.getElementById(element.dataset.flowmatrxCanvas);
  if (!script) return;
  const boot = JSON.parse(script.textContent);
  boot.root_id = element.id;
  const Island = boot.mode === "run" ? RunIsland : BuilderIsland;
  createRoot(element).render(<Island boot={boot} />);
  element.dataset.mounted = "true";
  document.documentElement.classList.add("fm-canvas-ready");
}

function start() {
  document.querySelectorAll("[data-flowmatrx-canvas]").forEach(mount);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
