import { describe, expect, it } from "vitest";
import {
  addedLayer,
  connectEdit,
  countText,
  disconnectEdit,
  fieldText,
  formatCount,
  formatShape,
  learnablesText,
  fromElk,
  Graph,
  GraphLayer,
  parseField,
  quickLayout,
  reuseNodes,
  NODE_HEIGHT,
  NODE_WIDTH,
  openingView,
  renamePosition,
  smooth,
  summaryParts,
  toElk,
  toFlow,
  unplaced,
} from "./graph";

function layer(name: string, extra: Partial<GraphLayer> = {}): GraphLayer {
  return {
    name,
    type: "Dense",
    category: "Dense",
    config: { units: 2 },
    inputs: ["in"],
    input_sizes: [],
    output_size: [2],
    learnables: 10,
    frozen: false,
    learn_rate_factor: 1,
    issues: [],
    ...extra,
  };
}

const graph: Graph = {
  name: "net",
  layers: [
    layer("x", { type: "FeatureInput", inputs: [] }),
    layer("a"),
    layer("add", { inputs: ["in1", "in2"], output_size: null, issues: [{ severity: "error", message: "size" }] }),
  ],
  connections: [
    { source: "x", destination: "a", port: "in" },
    { source: "a", destination: "add", port: "in1" },
    { source: "x", destination: "add", port: "in2" },
  ],
  issues: [],
  classes: null,
  total_learnables: 20,
  ok: false,
  table: "",
  can_undo: false,
  can_redo: false,
};

describe("graph -> canvas", () => {
  it("maps layers to nodes with sizes, status and given positions", () => {
    const { nodes, edges } = toFlow(graph, { a: { x: 5, y: 7 } }, "a");
    expect(nodes.map((n) => n.id)).toEqual(["x", "a", "add"]);
    expect(nodes[1].position).toEqual({ x: 5, y: 7 });
    expect(nodes[1].selected).toBe(true);
    expect(nodes[1].data.sizeText).toBe("(2)");
    expect(nodes[2].data.status).toBe("error");
    expect(nodes[2].data.sizeText).toBe("-");
    expect(edges[2]).toEqual({ id: "x->add/in2", source: "x", target: "add", sourceHandle: "out", targetHandle: "in2" });
  });

  it("lists layers without a position", () => {
    expect(unplaced(graph, { x: { x: 0, y: 0 } })).toEqual(["a", "add"]);
  });

  it("formats sizes and counts", () => {
    expect(formatShape([3, null, 4])).toBe("(3, ?, 4)");
    expect(formatShape(null)).toBe("-");
    expect(formatCount(999)).toBe("999");
    expect(formatCount(23050)).toBe("23k");
    expect(formatCount(4010)).toBe("4.0k");
    expect(formatCount(11_689_512)).toBe("11.7M");
    expect(learnablesText(null)).toBe("–"); // unknown until the input size is known
    expect(learnablesText(0)).toBe("");
    expect(learnablesText(4010)).toBe("4.0k");
  });

  it("reads counts in the singular for one (summary bar)", () => {
    expect(countText(1, "error")).toBe("1 error");
    expect(countText(0, "error")).toBe("0 errors");
    expect(countText(2610, "learnable")).toBe("2,610 learnables");
    const one: Graph = {
      ...graph,
      layers: [layer("fc", { learnables: null, issues: [{ severity: "error", message: "no input" }] })],
      issues: [
        { severity: "error", layer: "fc", message: "no input" },
        { severity: "warning", layer: null, message: "no output" },
      ],
      total_learnables: 1,
      unsized: ["fc"],
    };
    expect(summaryParts(one)).toEqual(["1 layer", "1 learnable (+ 1 of unknown size)", "1 error", "1 warning"]);
    const clean: Graph = { ...graph, issues: [], total_learnables: 20, unsized: [] };
    expect(summaryParts(clean)).toEqual(["3 layers", "20 learnables", "no errors"]);
    const two: Graph = { ...graph, issues: [0, 1].map(() => ({ severity: "error", layer: "add", message: "size" })) };
    expect(summaryParts(two)).toEqual(["3 layers", "20 learnables", "2 errors"]);
  });

  it("builds an elk graph and reads positions back", () => {
    const elk = toElk(graph);
    expect(elk.children).toHaveLength(3);
    expect(elk.edges[1]).toEqual({ id: "a->add/in1", sources: ["a"], targets: ["add"] });
    expect(fromElk({ children: [{ id: "a", x: 10, y: 20 }, { id: "x" }] })).toEqual({
      a: { x: 10, y: 20 },
      x: { x: 0, y: 0 },
    });
  });
});

describe("canvas -> edits", () => {
  it("turns a drawn connection into a connect edit with the named port", () => {
    expect(connectEdit({ source: "a", target: "add", sourceHandle: "out", targetHandle: "in2" })).toEqual({
      op: "connect",
      source: "a",
      destination: "add/in2",
    });
    expect(connectEdit({ source: "a", target: "b" })).toEqual({ op: "connect", source: "a", destination: "b" });
    expect(connectEdit({ source: null, target: "b" })).toBeNull();
  });

  it("turns a removed edge into a disconnect edit", () => {
    expect(disconnectEdit({ source: "x", target: "add", targetHandle: "in2" })).toEqual({
      op: "disconnect",
      source: "x",
      destination: "add/in2",
    });
  });

  it("parses property text by field kind", () => {
    expect(parseField("int", "16", true)).toBe(16);
    expect(parseField("int", "1.5", true)).toBe(1.5); // the server says it must be an int
    expect(parseField("int", "abc", true)).toBe("abc");
    expect(parseField("float", "0.25", false)).toBe(0.25);
    expect(parseField("bool", "false", false)).toBe(false);
    expect(parseField("json", "[3, 3]", true)).toEqual([3, 3]);
    expect(parseField("json", "(2, 2)", true)).toEqual([2, 2]);
    expect(parseField("json", "same", false)).toBe("same");
    expect(parseField("json", "", false)).toBeNull();
    expect(fieldText([3, 3])).toBe("[3,3]");
    expect(fieldText(null)).toBe("");
    expect(fieldText("same")).toBe("same");
  });

  it("finds the added layer and moves positions on rename", () => {
    const after = { ...graph, layers: [...graph.layers, layer("dense_1")] };
    expect(addedLayer(graph, after)).toBe("dense_1");
    expect(addedLayer(graph, graph)).toBeNull();
    expect(renamePosition({ a: { x: 1, y: 2 } }, "a", "b")).toEqual({ b: { x: 1, y: 2 } });
  });

  it("smooths a curve and keeps gaps", () => {
    expect(smooth([1, null, 3], 0.5)).toEqual([1, null, 2]);
  });
});

describe("large graphs", () => {
  it("lays layers out a row below their lowest input, rows centred", () => {
    const p = quickLayout(graph);
    expect(p.x.y).toBe(0);
    expect(p.a.y).toBe(NODE_HEIGHT + 40);
    expect(p.add.y).toBe(2 * (NODE_HEIGHT + 40)); // below a, not just below x
    expect(p.x.x).toBe(p.a.x);
  });
  it("puts parallel branches side by side and survives a cycle", () => {
    const branches: Graph = {
      ...graph,
      layers: [layer("x", { inputs: [] }), layer("b1"), layer("b2"), layer("c", { inputs: ["in1", "in2"] })],
      connections: [
        { source: "x", destination: "b1", port: "in" },
        { source: "x", destination: "b2", port: "in" },
        { source: "b1", destination: "c", port: "in1" },
        { source: "b2", destination: "c", port: "in2" },
        { source: "c", destination: "x", port: "in" }, // a cycle back to the input
      ],
    };
    const p = quickLayout(branches);
    expect(Object.keys(p).sort()).toEqual(["b1", "b2", "c", "x"]);
    expect(p.b1.y).toBe(p.b2.y);
    expect(p.b2.x - p.b1.x).toBe(190 + 30);
    expect(p.c.y).toBeGreaterThan(p.b1.y);
  });
  it("is fast on a DenseNet-sized graph", () => {
    const n = 2000;
    const layers = Array.from({ length: n }, (_, i) => layer(`l${i}`));
    const connections = layers.slice(1).flatMap((l, i) =>
      [i, Math.max(0, i - 5)].map((s, k) => ({ source: `l${s}`, destination: l.name, port: `in${k}` })),
    );
    const start = performance.now();
    const p = quickLayout({ ...graph, layers, connections });
    expect(performance.now() - start).toBeLessThan(500);
    expect(p.l1999.y).toBe(1999 * (NODE_HEIGHT + 40));
  });
  it("open a large graph on its input layer at a readable zoom, a small one fitted", () => {
    expect(openingView(graph, quickLayout(graph))).toBeNull(); // 3 layers: fit them all
    const layers = [layer("first"), layer("image", { type: "ImageInput", inputs: [] }),
      ...Array.from({ length: 199 }, (_, i) => layer(`l${i}`))];
    const connections = layers.slice(2).map((l, i) => ({ source: layers[i + 1].name, destination: l.name, port: "in" }));
    const big = { ...graph, layers, connections };
    const p = quickLayout(big);
    const view = openingView(big, p)!;
    expect(view.zoom).toBeGreaterThanOrEqual(0.6);
    expect(view).toEqual({ x: p.image.x + NODE_WIDTH / 2, y: p.image.y + NODE_HEIGHT / 2, zoom: view.zoom });
    const noInputType = { ...big, layers: big.layers.map((l) => ({ ...l, type: "Dense" })) };
    expect(openingView(noInputType, p)!.x).toBe(p.image.x + NODE_WIDTH / 2); // the first without inputs
  });
  it("keeps unchanged nodes so memoized nodes skip re-rendering", () => {
    const before = toFlow(graph, { x: { x: 0, y: 0 }, a: { x: 0, y: 100 }, add: { x: 0, y: 200 } }).nodes;
    const edited: Graph = { ...graph, layers: graph.layers.map((l) => (l.name === "a" ? { ...l, output_size: [3] } : { ...l })) };
    const after = reuseNodes(before, toFlow(edited, { x: { x: 0, y: 0 }, a: { x: 0, y: 100 }, add: { x: 0, y: 200 } }).nodes);
    expect(after[0]).toBe(before[0]); // equal content, same object
    expect(after[1]).not.toBe(before[1]); // its size changed
    expect(after[1].data.sizeText).toBe("(3)");
    expect(after[2]).toBe(before[2]);
    const moved = reuseNodes(before, toFlow(graph, { x: { x: 5, y: 0 }, a: { x: 0, y: 100 }, add: { x: 0, y: 200 } }, "add").nodes);
    expect(moved[0]).not.toBe(before[0]);
    expect(moved[2]).not.toBe(before[2]); // selected now
  });
});
