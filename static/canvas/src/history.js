// Undo/redo: snapshots of the nodes and edges taken before each change.
import { useCallback, useMemo, useRef, useState } from "react";

const LIMIT = 100;

export function useHistory(current, setNodes, setEdges) {
  const past = useRef([]);
  const future = useRef([]);
  const [sizes, setSizes] = useState([0, 0]);
  const sync = () => setSizes([past.current.length, future.current.length]);

  const record = useCallback(() => {
    past.current.push(current.current);
    if (past.current.length > LIMIT) past.current.shift();
    future.current = [];
    sync();
  }, [current]);

  const step = useCallback(
    (from, to) => {
      const snapshot = from.current.pop();
      if (!snapshot) return false;
      to.current.push(current.current);
      setNodes(snapshot.nodes);
      setEdges(snapshot.edges);
      sync();
      return true;
    },
    [current, setNodes, setEdges],
  );

  const undo = useCallback(() => step(past, future), [step]);
  const redo = useCallback(() => step(future, past), [step]);
  return useMemo(
    () => ({ record, undo, redo, canUndo: sizes[0] > 0, canRedo: sizes[1] > 0 }),
    [record, undo, redo, sizes],
  );
}
