import {
  Background,
  Connection,
  Controls,
  Edge,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import ELK from "elkjs/lib/elk.bundled.js";
import { DragEvent, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api } from "./api";
import {
  addedLayer,
  connectEdit,
  disconnectEdit,
  fromElk,
  Graph,
  LARGE_GRAPH,
  NODE_WIDTH,
  openingView,
  Position,
  quickLayout,
  renamePosition,
  reuseNodes,
  summaryParts,
  toElk,
  toFlow,
  unplaced,
} from "./graph";
import { LayerNode } from "./LayerNode";
import { Palette, LibraryEntry } from "./Palette";
import { CodeDialog, FilesDialog, PretrainedDialog, SaveDialog } from "./Dialogs";
import { SidePanel } from "./SidePanel";

const elk = new ELK();
const nodeTypes = { layer: LayerNode };

function DesignerCanvas() {
  const [graph, setGraph] = useState<Graph | null>(null);
  const [library, setLibrary] = useState<LibraryEntry[]>([]);
  const [positions, setPositions] = useState<Record<string, Position>>({});
  const [selected, setSelected] = useState<string | null>(null);
  const [message, setMessage] = useState<{ kind: "error" | "note"; text: string } | null>(null);
  const [dialog, setDialog] = useState<"open" | "pretrained" | "save" | "code" | null>(null);
  const flow = useReactFlow();
  const graphRef = useRef<Graph | null>(null);
  graphRef.current = graph;

  const [laidOut, setLaidOut] = useState(false);
  const layout = useCallback(
    async (g: Graph, fit = true) => {
      // elkjs on large graphs takes seconds and blocks the page: a linear layered layout there
      const placed = g.layers.length > LARGE_GRAPH ? quickLayout(g) : fromElk(await elk.layout(toElk(g) as any));
      setPositions(placed);
      setLaidOut(true);
      // a large graph fitted whole is unreadable: open on its input layer (Fit shows it all)
      const view = openingView(g, placed);
      if (fit) setTimeout(() => (view ? flow.setCenter(view.x, view.y, { zoom: view.zoom, duration: 0 }) : flow.fitView({ padding: 0.15, duration: 0, maxZoom: 1 })), 30);
    },
    [flow],
  );

  const show = useCallback(
    (next: Graph, extra: Record<string, Position> = {}, fresh = false) => {
      setGraph(next);
      setPositions((old) => {
        const merged = fresh ? {} : { ...old, ...extra }; // a new network is laid out afresh
        const missing = unplaced(next, merged);
        if (missing.length === next.layers.length && next.layers.length) {
          void layout(next);
          return merged;
        }
        const right = Math.max(0, ...Object.values(merged).map((p) => p.x)) + NODE_WIDTH + 40;
        missing.forEach((name, i) => (merged[name] = { x: right, y: 40 + i * 90 }));
        return merged;
      });
      setMessage(next.notes && next.notes.length ? { kind: "note", text: next.notes.join(" ") } : null);
    },
    [layout],
  );

  const run = useCallback(
    async (path: string, body?: unknown, extra: (before: Graph, after: Graph) => Record<string, Position> = () => ({})) => {
      try {
        const before = graphRef.current;
        const next = await api<Graph>(path, { method: "POST", body: body ?? {} });
        show(next, before ? extra(before, next) : {}, ["/api/open", "/api/new", "/api/pretrained"].includes(path));
        return next;
      } catch (err) {
        setMessage({ kind: "error", text: (err as Error).message });
        return null;
      }
    },
    [show],
  );

  const edit = useCallback((request: Record<string, unknown>) => run("/api/edit", request), [run]);
  const editStrict = useCallback(
    async (request: Record<string, unknown>) => {
      const next = await api<Graph>("/api/edit", { body: request }); // errors go to the caller
      show(next);
      return next;
    },
    [show],
  );

  useEffect(() => {
    api<Graph>("/api/graph").then((g) => show(g, {}, true));
    api<LibraryEntry[]>("/api/library").then(setLibrary);
  }, [show]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement).closest("input, textarea, select")) return;
      if ((e.ctrlKey || e.metaKey) && e.key === "z") void run("/api/undo");
      if ((e.ctrlKey || e.metaKey) && (e.key === "y" || (e.shiftKey && e.key === "Z"))) void run("/api/redo");
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [run]);

  // unchanged layers keep their node object, so the memoized LayerNode skips them: an edit's
  // answer or a drag redraws only what changed (all 432 nodes of DenseNet-121 otherwise)
  const previousNodes = useRef<ReturnType<typeof toFlow>["nodes"]>([]);
  const flowGraph = useMemo(() => {
    if (!graph) return { nodes: [], edges: [] };
    const next = toFlow(graph, positions, selected);
    const nodes = reuseNodes(previousNodes.current, next.nodes);
    previousNodes.current = nodes;
    return { nodes, edges: next.edges };
  }, [graph, positions, selected]);

  const onDrop = useCallback(
    async (event: DragEvent) => {
      event.preventDefault();
      const type = event.dataTransfer.getData("application/deeptoolbox-layer");
      if (!type) return;
      const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      let added: string | null = null;
      await run("/api/edit", { op: "add", type }, (before, after) => {
        added = addedLayer(before, after);
        return added ? { [added]: { x: at.x - NODE_WIDTH / 2, y: at.y - 20 } } : {};
      });
      if (added) setSelected(added);
    },
    [flow, run],
  );

  const addAtCenter = useCallback(
    (type: string) => {
      const center = flow.screenToFlowPosition({ x: window.innerWidth / 2, y: window.innerHeight / 2 });
      void run("/api/edit", { op: "add", type }, (before, after) => {
        const name = addedLayer(before, after);
        return name ? { [name]: center } : {};
      });
    },
    [flow, run],
  );

  const onConnect = useCallback((c: Connection) => {
    const request = connectEdit(c);
    if (request) void edit(request);
  }, [edit]);

  const onEdgesDelete = useCallback(
    (edges: Edge[]) => edges.forEach((e) => void edit(disconnectEdit(e))),
    [edit],
  );

  const onNodesDelete = useCallback(
    (nodes: { id: string }[]) => {
      if (nodes.length) void edit({ op: "remove", names: nodes.map((n) => n.id) });
      setSelected(null);
    },
    [edit],
  );

  const rename = useCallback(
    async (from: string, to: string) => {
      const next = await edit({ op: "rename", name: from, new_name: to });
      if (next) {
        setPositions((p) => renamePosition(p, from, to));
        setSelected(to);
      }
      return next;
    },
    [edit],
  );

  const layer = graph?.layers.find((l) => l.name === selected) ?? null;
  return (
    <div className="designer">
      <Palette library={library} onAdd={addAtCenter} />
      <section className="canvas-column">
        <div className="toolbar">
          <button onClick={() => run("/api/new", { name: "network" })} data-testid="new">New</button>
          <button onClick={() => setDialog("pretrained")} data-testid="pretrained">Pretrained…</button>
          <button onClick={() => setDialog("open")} data-testid="open">Open…</button>
          <button onClick={() => setDialog("save")} data-testid="save">Save…</button>
          <button onClick={() => setDialog("code")} data-testid="export-python">Python code</button>
          <span className="sep" />
          <button onClick={() => run("/api/undo")} disabled={!graph?.can_undo} data-testid="undo">Undo</button>
          <button onClick={() => run("/api/redo")} disabled={!graph?.can_redo} data-testid="redo">Redo</button>
          <button onClick={() => graph && layout(graph)} data-testid="layout">Auto layout</button>
          <button onClick={() => flow.fitView({ padding: 0.15, maxZoom: 1 })} data-testid="fit">Fit</button>
          <span className="summary" data-testid="summary">
            {graph
              ? summaryParts(graph).map((part, i) => (
                  <span key={i} className="summary-part">
                    {i ? " · " : ""}
                    {part}
                  </span>
                ))
              : null}
          </span>
        </div>
        {message ? (
          <div className={`message ${message.kind}`} data-testid="message" onClick={() => setMessage(null)}>
            {message.text}
          </div>
        ) : null}
        <div className="canvas" onDragOver={(e) => e.preventDefault()} onDrop={onDrop} data-testid="canvas" data-laid-out={laidOut ? "true" : "false"}>
          <ReactFlow
            nodes={flowGraph.nodes}
            edges={flowGraph.edges}
            nodeTypes={nodeTypes}
            onConnect={onConnect}
            onEdgesDelete={onEdgesDelete}
            onNodesDelete={onNodesDelete}
            onNodeClick={(_, node) => setSelected(node.id)}
            onPaneClick={() => setSelected(null)}
            onNodeDragStop={(_, node) => setPositions((p) => ({ ...p, [node.id]: node.position }))}
            onNodesChange={(changes) =>
              changes.forEach((c) => {
                if (c.type === "position" && c.position) setPositions((p) => ({ ...p, [c.id]: c.position! }));
              })
            }
            deleteKeyCode={["Delete", "Backspace"]}
            minZoom={0.05}
            onlyRenderVisibleElements
          >
            <Background gap={16} />
            <MiniMap pannable zoomable nodeColor={(n) => ((n.data as any).status === "error" ? "#e5484d" : "#8da4c4")} />
            <Controls />
          </ReactFlow>
        </div>
        <IssuesPanel graph={graph} onSelect={setSelected} />
      </section>
      <SidePanel graph={graph} layer={layer} library={library} edit={edit} editStrict={editStrict} rename={rename} />
      {dialog === "open" ? <FilesDialog onClose={() => setDialog(null)} run={run} onGraph={(g) => show(g, {}, true)} /> : null}
      {dialog === "pretrained" ? <PretrainedDialog onClose={() => setDialog(null)} run={run} /> : null}
      {dialog === "save" ? <SaveDialog onClose={() => setDialog(null)} /> : null}
      {dialog === "code" ? <CodeDialog onClose={() => setDialog(null)} /> : null}
    </div>
  );
}

function IssuesPanel({ graph, onSelect }: { graph: Graph | null; onSelect: (name: string) => void }) {
  if (!graph) return null;
  return (
    <div className="issues" data-testid="issues">
      <strong>Analysis</strong>
      {graph.issues.length === 0 ? <span className="ok"> no errors or warnings</span> : null}
      <ul>
        {graph.issues.map((issue, i) => (
          <li key={i} className={issue.severity} onClick={() => issue.layer && onSelect(issue.layer)}>
            <b>{issue.severity}</b> {issue.layer ? <code>{issue.layer}</code> : null} {issue.message}
          </li>
        ))}
      </ul>
      <details>
        <summary>analyze() table</summary>
        <pre data-testid="analysis-table">{graph.table}</pre>
      </details>
    </div>
  );
}

export function Designer() {
  return (
    <ReactFlowProvider>
      <DesignerCanvas />
    </ReactFlowProvider>
  );
}
