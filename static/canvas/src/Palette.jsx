// The palette: step types by category and registered functions, searchable. Drag an item
// onto the canvas (or double-click it) to add a node.
import { useMemo, useState } from "react";

export const DRAG_TYPE = "application/x-flowmatrx-step";

function matches(query, ...texts) {
  if (!query) return true;
  const q = query.toLowerCase();
  return texts.some((t) => t && String(t).toLowerCase().includes(q));
}

function Item({ item, onAdd, disabled }) {
  return (
    <li
      className="fm-palette-item"
      draggable={!disabled}
      data-step-type={item.type}
      data-function={item.config.function || undefined}
      title={item.description || item.label}
      onDragStart={(event) => {
        event.dataTransfer.setData(DRAG_TYPE, JSON.stringify(item));
        event.dataTransfer.effectAllowed = "move";
      }}
      onDoubleClick={() => !disabled && onAdd(item)}
    >
      <span className="fm-palette-label">{item.label}</span>
      <small>{item.type === "function_call" ? item.config.function : item.type}</small>
    </li>
  );
}

export function Palette({ steps, functions, error, onAdd, disabled, note }) {
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const byCategory = new Map();
    for (const step of steps) {
      if (!matches(query, step.label, step.type, step.description, step.category)) continue;
      if (!byCategory.has(step.category)) byCategory.set(step.category, []);
      byCategory.get(step.category).push({
        type: step.type,
        label: step.label,
        description: step.description,
        config: {},
      });
    }
    const fns = functions
      .filter((f) => matches(query, f.name, f.label, f.description))
      .map((f) => ({
        type: "function_call",
        label: f.label || f.name,
        description: f.description,
        config: { function: f.name },
      }));
    if (fns.length) byCategory.set("Functions", fns);
    return [...byCategory.entries()];
  }, [steps, functions, query]);

  return (
    <nav className="fm-palette" aria-label="Step palette">
      <input
        type="search"
        placeholder="Search steps"
        aria-label="Search steps"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      {error && <p className="fm-error">{error}</p>}
      {disabled && <p className="fm-muted">{note}</p>}
      {groups.map(([category, items]) => (
        <section key={category}>
          <h3>{category}</h3>
          <ul>
            {items.map((item) => (
              <Item key={`${item.type}:${item.config.function || ""}`} item={item} onAdd={onAdd} disabled={disabled} />
            ))}
          </ul>
        </section>
      ))}
      {!error && groups.length === 0 && steps.length > 0 && <p className="fm-muted">Nothing matches.</p>}
    </nav>
  );
}
