// The mapping between the server's graph (GET /api/graph) and the canvas (React Flow nodes
// and edges), and from canvas gestures back to designer edits. Pure functions: unit-tested.

export type Shape = (number | null)[] | null;

export interface LayerIssue {
  severity: "error" | "warning";
  message: string;
}

export interface GraphLayer {
  name: string;
  type: string;
  category: string;
  config: Record<string, unknown> | null;
  inputs: string[];
  input_sizes: Shape[];
  output_size: Shape;
  learnables: number | null; // null: unknown until the layer's input size is known
  frozen: boolean;
  learn_rate_factor: number;
  issues: LayerIssue[];
}

export interface GraphConnection {
  source: string;
  destination: string;
  port: string;
}

export interface Graph {
  name: string;
  layers: GraphLayer[];
  connections: GraphConnection[];
  issues: { severity: string; layer: string | null; message: string }[];
  classes: string[] | null;
  total_learnables: number;
  unsized?: string[]; // layers whose learnables are unknown (not in total_learnables)
  ok: boolean;
  table: string;
  can_undo: boolean;
  can_redo: boolean;
  notes?: string[];
}

export interface Position {
  x: number;
  y: number;
}

export interface LayerNodeData extends Record<string, unknown> {
  layer: GraphLayer;
  sizeText: string;
  status: "ok" | "warning" | "error";
}

export interface FlowNode {
  id: string;
  type: "layer";
  position: Position;
  width: number;
  height: number;
  data: LayerNodeData;
  selected?: boolean;
}

export interface FlowEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle: "out";
  targetHandle: string;
}

export const NODE_WIDTH = 190;
export const NODE_HEIGHT = 64;

/** "(4, 24, 24)" for a size, "(?, 3)" with a free length, "-" when unknown. */
export function formatShape(shape: Shape): string {
  if (shape === null || shape === undefined) return "-";
  return "(" + shape.map((d) => (d === null ? "?" : String(d))).join(", ") + ")";
}

/** "1.2k", "3.4M" for learnable counts. */
export function formatCount(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1e6) return (n / 1e3).toFixed(n < 1e4 ? 1 : 0) + "k";
  return (n / 1e6).toFixed(n < 1e7 ? 2 : 1) + "M";
}

/** A layer's learnables on the canvas: "–" when unknown (input size not known yet), ""
 * for none, else the short count. */
export function learnablesText(n: number | null): string {
  if (n === null || n === undefined) return "–";
  return n ? formatCount(n) : "";
}

/** "1 error", "0 errors", "2,610 learnables": the count then the word, plural unless 1. */
export function countText(n: number, word: string): string {
  return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
}

/** The Designer's summary bar, each part separate so the bar can wrap between them:
 * ["12 layers", "1,234 learnables (+ 2 of unknown size)", "1 error", "1 warning"]. The
 * error part reads "no errors" for a network without errors; the warning part is left out
 * when there are none. */
export function summaryParts(graph: Graph): string[] {
  const unsized = graph.unsized?.length ?? 0;
  const errors = graph.issues.filter((i) => i.severity === "error").length;
  const warnings = graph.issues.filter((i) => i.severity === "warning").length;
  const parts = [
    countText(graph.layers.length, "layer"),
    countText(graph.total_learnables, "learnable") + (unsized ? ` (+ ${unsized} of unknown size)` : ""),
    errors ? countText(errors, "error") : "no errors",
  ];
  if (warnings) parts.push(countText(warnings, "warning"));
  return parts;
}

export function layerStatus(layer: GraphLayer): "ok" | "warning" | "error" {
  if (layer.issues.some((i) => i.severity === "error")) return "error";
  return layer.issues.length ? "warning" : "ok";
}

export function edgeId(c: GraphConnection): string {
  return `${c.source}->${c.destination}/${c.port}`;
}

/** The server graph as React Flow nodes and edges; layers keep the positions given. */
export function toFlow(
  graph: Graph,
  positions: Record<string, Position>,
  selected: string | null = null,
): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const nodes = graph.layers.map((layer, index) => ({
    id: layer.name,
    type: "layer" as const,
    position: positions[layer.name] ?? { x: 0, y: index * (NODE_HEIGHT + 30) },
    width: NODE_WIDTH, // fixed sizes: the minimap and layout need no measuring
    height: NODE_HEIGHT,
    data: {
      layer,
      sizeText: formatShape(layer.output_size),
      status: layerStatus(layer),
    },
    selected: layer.name === selected,
  }));
  const edges = graph.connections.map((c) => ({
    id: edgeId(c),
    source: c.source,
    target: c.destination,
    sourceHandle: "out" as const,
    targetHandle: c.port,
  }));
  return { nodes, edges };
}

/** Layers of the graph that have no position yet. */
export function unplaced(graph: Graph, positions: Record<string, Position>): string[] {
  return graph.layers.map((l) => l.name).filter((name) => !(name in positions));
}

export interface ConnectGesture {
  source: string | null;
  target: string | null;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

/** The designer edit for a connection drawn on the canvas (output port -> input port). */
export function connectEdit(gesture: ConnectGesture): Record<string, string> | null {
  if (!gesture.source || !gesture.target) return null;
  const port = gesture.targetHandle ? `/${gesture.targetHandle}` : "";
  return { op: "connect", source: gesture.source, destination: `${gesture.target}${port}` };
}

/** The designer edit that removes a canvas edge. */
export function disconnectEdit(edge: { source: string; target: string; targetHandle?: string | null }) {
  const port = edge.targetHandle ? `/${edge.targetHandle}` : "";
  return { op: "disconnect", source: edge.source, destination: `${edge.target}${port}` };
}

export type FieldKind = "int" | "float" | "bool" | "str" | "json";

/** A property typed in the side panel as the JSON value the server expects. Text that does
 * not parse as the field's kind is sent as typed, so the toolbox's own validation answers. */
export function parseField(kind: FieldKind, text: string, required: boolean): unknown {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed === "None" || trimmed === "null") return required ? trimmed : null;
  if (kind === "int" && /^[-+]?\d+$/.test(trimmed)) return parseInt(trimmed, 10);
  if (kind === "float" && trimmed !== "" && !isNaN(Number(trimmed))) return Number(trimmed);
  if (kind === "bool") return trimmed === "true" || trimmed === "True";
  if (kind === "str") return trimmed;
  try {
    return JSON.parse(trimmed.replace(/^\((.*)\)$/, "[$1]"));
  } catch {
    return trimmed;
  }
}

/** How a config value shows in a text field. */
export function fieldText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** The name the server gave a layer just added: the one not there before. */
export function addedLayer(before: Graph, after: Graph): string | null {
  const old = new Set(before.layers.map((l) => l.name));
  const added = after.layers.find((l) => !old.has(l.name));
  return added ? added.name : null;
}

/** Positions after a rename: the layer keeps its place under the new name. */
export function renamePosition(
  positions: Record<string, Position>,
  from: string,
  to: string,
): Record<string, Position> {
  if (!(from in positions)) return positions;
  const moved = { ...positions, [to]: positions[from] };
  delete moved[from];
  return moved;
}

/** Exponential smoothing of a training curve (MATLAB's smoothed loss), nulls kept. */
export function smooth(values: (number | null)[], factor = 0.6): (number | null)[] {
  let last: number | null = null;
  return values.map((v) => {
    if (v === null || !isFinite(v)) return null;
    last = last === null ? v : factor * last + (1 - factor) * v;
    return last;
  });
}

export interface ElkGraph {
  id: string;
  layoutOptions: Record<string, string>;
  children: { id: string; width: number; height: number }[];
  edges: { id: string; sources: string[]; targets: string[] }[];
}

/** The graph in elkjs's input format (layered, top to bottom). */
export function toElk(graph: Graph): ElkGraph {
  return {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "DOWN",
      "elk.layered.spacing.nodeNodeBetweenLayers": "40",
      "elk.spacing.nodeNode": "30",
    },
    children: graph.layers.map((l) => ({ id: l.name, width: NODE_WIDTH, height: NODE_HEIGHT })),
    edges: graph.connections.map((c) => ({ id: edgeId(c), sources: [c.source], targets: [c.destination] })),
  };
}

/** Positions from an elkjs layout result. */
export function fromElk(result: { children?: { id: string; x?: number; y?: number }[] }) {
  const positions: Record<string, Position> = {};
  for (const child of result.children ?? []) positions[child.id] = { x: child.x ?? 0, y: child.y ?? 0 };
  return positions;
}

/** Above this many layers the designer lays the graph out with quickLayout instead of
 * elkjs: elkjs's layered layout takes seconds on DenseNet-121 (432 layers, 966 connections,
 * long concatenation edges) and blocks the page meanwhile. */
export const LARGE_GRAPH = 150;

/** The zoom a large graph opens at: readable, instead of the whole graph fitted very small. */
export const LARGE_GRAPH_ZOOM = 0.8;

/** Where the canvas opens for a freshly laid-out graph: null to fit the whole graph (up to
 * LARGE_GRAPH layers), else the centre of its input layer (the first layer of an *Input
 * type, or else the first without inputs) at LARGE_GRAPH_ZOOM. */
export function openingView(graph: Graph, positions: Record<string, Position>): { x: number; y: number; zoom: number } | null {
  if (graph.layers.length <= LARGE_GRAPH) return null;
  const placed = graph.layers.filter((l) => positions[l.name]);
  const input = placed.find((l) => /Input$/.test(l.type)) ?? placed.find((l) => l.inputs.length === 0) ?? placed[0];
  if (!input) return null;
  const at = positions[input.name];
  return { x: at.x + NODE_WIDTH / 2, y: at.y + NODE_HEIGHT / 2, zoom: LARGE_GRAPH_ZOOM };
}

/** A layered layout in linear time: each layer one row below the lowest of its inputs
 * (longest path from the inputs), the layers of a row side by side in network order,
 * rows centred. Cycles (an invalid graph) are broken by network order. */
export function quickLayout(graph: Graph): Record<string, Position> {
  const order = new Map(graph.layers.map((l, i) => [l.name, i]));
  const inputs = new Map<string, string[]>(graph.layers.map((l) => [l.name, []]));
  const outputs = new Map<string, string[]>(graph.layers.map((l) => [l.name, []]));
  for (const c of graph.connections) {
    if (!order.has(c.source) || !order.has(c.destination)) continue;
    inputs.get(c.destination)!.push(c.source);
    outputs.get(c.source)!.push(c.destination);
  }
  // Kahn's topological order, falling back to network order for what a cycle leaves over
  const waiting = new Map(graph.layers.map((l) => [l.name, inputs.get(l.name)!.length]));
  const ready = graph.layers.filter((l) => waiting.get(l.name) === 0).map((l) => l.name);
  const sorted: string[] = [];
  for (let i = 0; i < ready.length; i++) {
    const name = ready[i];
    sorted.push(name);
    for (const next of outputs.get(name)!) {
      const left = waiting.get(next)! - 1;
      waiting.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  const placed = new Set(sorted);
  sorted.push(...graph.layers.map((l) => l.name).filter((n) => !placed.has(n)));
  const row = new Map<string, number>();
  for (const name of sorted) {
    const above = inputs.get(name)!.filter((s) => row.has(s)).map((s) => row.get(s)!);
    row.set(name, above.length ? Math.max(...above) + 1 : 0);
  }
  const rows: string[][] = [];
  for (const name of sorted) (rows[row.get(name)!] ??= []).push(name);
  const widest = Math.max(0, ...rows.map((r) => r.length));
  const positions: Record<string, Position> = {};
  rows.forEach((names, r) => {
    names.sort((a, b) => order.get(a)! - order.get(b)!);
    const offset = ((widest - names.length) * (NODE_WIDTH + 30)) / 2;
    names.forEach((name, i) => (positions[name] = { x: offset + i * (NODE_WIDTH + 30), y: r * (NODE_HEIGHT + 40) }));
  });
  return positions;
}

/** The new nodes, keeping the previous object of every node whose layer, position and
 * selection did not change: the memoized layer nodes then skip re-rendering, so an edit's
 * answer redraws only the layers whose analysis changed. */
export function reuseNodes(previous: FlowNode[], next: FlowNode[]): FlowNode[] {
  const old = new Map(previous.map((n) => [n.id, n]));
  return next.map((node) => {
    const before = old.get(node.id);
    if (
      before &&
      before.selected === node.selected &&
      before.position.x === node.position.x &&
      before.position.y === node.position.y &&
      before.data.sizeText === node.data.sizeText &&
      before.data.status === node.data.status &&
      (before.data.layer === node.data.layer || JSON.stringify(before.data.layer) === JSON.stringify(node.data.layer))
    )
      return before;
    return node;
  });
}
