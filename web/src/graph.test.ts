import { describe, expect, it } from "vitest";
import {
  addedLayer,
  connectEdit,
  disconnectEdit,
  fieldText,
  formatCount,
  formatShape,
  fromElk,
  Graph,
  GraphLayer,
  parseField,
  renamePosition,
  smooth,
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
