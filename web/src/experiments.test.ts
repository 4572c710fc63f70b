import { describe, expect, it } from "vitest";
import { alignCurves, axisTitle, brushBetween, brushedLines, cellText, filterPlaceholder, filterRows, linePositions, MISSING, parallelLayout, historyMetrics, parallelAxis, parameterTable, RowFilter, sortRows } from "./experiments";

describe("results table", () => {
  const rows = [
    { trial: 0, loss: 0.5, status: "completed" },
    { trial: 1, loss: null, status: "failed" },
    { trial: 2, loss: 0.1, status: "completed" },
  ];
  it("sorts numbers both ways with missing values last", () => {
    expect(sortRows(rows, "loss", true).map((r) => r.trial)).toEqual([2, 0, 1]);
    expect(sortRows(rows, "loss", false).map((r) => r.trial)).toEqual([0, 2, 1]);
    expect(sortRows(rows, "status", true).map((r) => r.trial)).toEqual([0, 2, 1]);
    expect(rows[0].trial).toBe(0); // the input is left alone
  });
  it("formats cells", () => {
    expect(cellText(0.123456)).toBe("0.1235");
    expect(cellText(3)).toBe("3");
    expect(cellText(null)).toBe("");
    expect(cellText({ a: 1 })).toBe('{"a":1}');
  });
});

describe("new experiment parameter table", () => {
  it("reads values, choices and ranges", () => {
    expect(
      parameterTable([
        { name: "lr", kind: "uniform", text: "0.001, 0.1", log: true },
        { name: "width", kind: "values", text: "8, 16", log: false },
        { name: "act", kind: "choice", text: "relu, 'gelu', true", log: false },
        { name: "depth", kind: "integer", text: "1,4", log: false },
      ]),
    ).toEqual({
      lr: { type: "uniform", low: 0.001, high: 0.1, log: true },
      width: { type: "values", values: [8, 16] },
      act: { type: "choice", values: ["relu", "gelu", true] },
      depth: { type: "integer", low: 1, high: 4, log: false },
    });
  });
  it("names the row at fault", () => {
    expect(() => parameterTable([])).toThrow("at least one parameter");
    expect(() => parameterTable([{ name: "", kind: "values", text: "1", log: false }])).toThrow("parameter 1");
    expect(() => parameterTable([{ name: "lr", kind: "uniform", text: "0.1", log: false }])).toThrow("parameter lr");
    expect(() => parameterTable([{ name: "n", kind: "integer", text: "1.5, 3", log: false }])).toThrow("whole numbers");
    const twice = { name: "x", kind: "values" as const, text: "1", log: false };
    expect(() => parameterTable([twice, twice])).toThrow("used twice");
  });
});

describe("filtering the results table", () => {
  const rows = [
    { trial: 0, solver: "adam", lr: 0.1, status: "completed", loss: 0.5 },
    { trial: 1, solver: "sgdm", lr: 0.01, status: "failed", loss: null },
    { trial: 2, solver: "adam", lr: 0.01, status: "completed", loss: 0.1 },
    { trial: 3, solver: "sgdm", lr: 0.001, status: "completed", loss: 0.3 },
  ];
  const columns = ["solver", "lr", "status"];
  const none: RowFilter = { text: "", metric: "loss", min: null, max: null };
  const trials = (filter: Partial<typeof none>) => filterRows(rows, { ...none, ...filter }, columns).map((r) => r.trial);
  it("keeps everything without a filter", () => expect(trials({})).toEqual([0, 1, 2, 3]));
  it("matches text in any parameter or the status, every word", () => {
    expect(trials({ text: "ADAM" })).toEqual([0, 2]);
    expect(trials({ text: "sgdm completed" })).toEqual([3]);
    expect(trials({ text: "fail" })).toEqual([1]);
  });
  it("matches name=value on that column only", () => {
    expect(trials({ text: "lr=0.01" })).toEqual([1, 2]);
    expect(trials({ text: "status=complete" })).toEqual([]); // whole value
    expect(trials({ text: "solver=0.01" })).toEqual([]);
  });
  it("keeps a metric range, bounds included, missing values out", () => {
    expect(trials({ min: 0.1, max: 0.3 })).toEqual([2, 3]);
    expect(trials({ max: 0.4 })).toEqual([2, 3]);
    expect(trials({ min: 0.3, text: "adam" })).toEqual([0]);
  });
});

describe("the filter box's example", () => {
  const rows = [
    { trial: 0, width: 16, act: "leaky relu", status: "failed" },
    { trial: 1, width: 8, act: "gelu", status: "completed" },
  ];
  it("names the experiment's own parameters and a value of its rows", () => {
    expect(filterPlaceholder(["width", "act"], rows)).toBe("width=16  failed");
    expect(filterPlaceholder(["act"], rows)).toBe("act=gelu  completed"); // "leaky relu" has a space
    expect(filterPlaceholder(["depth"], rows)).toBe("failed"); // no such column: no name=value
    expect(filterPlaceholder([], [])).toBe("");
  });
  it("keeps a row when typed as the filter", () => {
    for (const parameters of [["width", "act"], ["act"], ["width"]]) {
      const text = filterPlaceholder(parameters, rows);
      const kept = filterRows(rows, { text, metric: "", min: null, max: null }, [...parameters, "status"]);
      expect(kept.length).toBeGreaterThan(0);
    }
  });
  it("matches a number written as the server sends it", () => {
    const numbers = [{ trial: 0, lr: 0.01, status: "completed" }];
    expect(filterPlaceholder(["lr"], numbers)).toBe("lr=0.01  completed");
    expect(filterRows(numbers, { text: "lr=0.01", metric: "", min: null, max: null }, ["lr", "status"])).toHaveLength(1);
  });
});

describe("parallel coordinates", () => {
  it("scales numbers linearly between their extremes", () => {
    const axis = parallelAxis("lr", [0.001, 0.1, 0.01, null]);
    expect(axis.position(0.001)).toBe(0);
    expect(axis.position(0.1)).toBe(1);
    expect(axis.position(0.01)).toBeCloseTo((0.01 - 0.001) / (0.1 - 0.001), 12);
    expect(axis.position(null)).toBeNull();
    expect(axis.ticks.map((t) => t.label)).toEqual(["0.001000", "0.1000"]);
  });
  it("puts a constant in the middle", () => {
    expect(parallelAxis("w", [8, 8]).position(8)).toBe(0.5);
  });
  it("spaces categories evenly in sorted order", () => {
    const axis = parallelAxis("solver", ["sgdm", "adam", "rmsprop", "adam"]);
    expect(axis.ticks).toEqual([{ at: 0, label: "adam" }, { at: 0.5, label: "rmsprop" }, { at: 1, label: "sgdm" }]);
    expect(axis.position("rmsprop")).toBe(0.5);
    expect(axis.position("lbfgs")).toBeNull();
  });
});

describe("parallel coordinates: every trial a line, brushing", () => {
  const axes = [parallelAxis("lr", [0.1, 0.01, 0.001]), parallelAxis("solver", ["adam", "sgdm", "adam"]), parallelAxis("accuracy", [0.9, null, 0.5])];
  const lines = [
    linePositions(axes, [0.1, "adam", 0.9]),
    linePositions(axes, [0.01, "sgdm", null]), // failed: no metric value
    linePositions(axes, [0.001, "adam", 0.5]),
  ];
  it("gives every trial a position on every axis, a missing value below the axis", () => {
    expect(lines).toEqual([[1, 0, 1], [(0.01 - 0.001) / (0.1 - 0.001), 1, MISSING], [0, 0, 0]]);
    expect(lines.every((l) => l.length === axes.length && l.every(Number.isFinite))).toBe(true);
  });
  it("keeps the lines inside every brushed range", () => {
    expect(brushedLines(lines, [null, null, null])).toEqual([true, true, true]);
    expect(brushedLines(lines, [brushBetween(0.5, 0), null, null])).toEqual([false, true, true]); // drag down or up
    expect(brushedLines(lines, [brushBetween(0, 0.5), { low: 0, high: 0 }, null])).toEqual([false, false, true]);
    expect(brushedLines(lines, [null, null, { low: 0.6, high: 1 }])).toEqual([true, false, false]);
    expect(brushedLines(lines, [null, null, { low: MISSING, high: 0 }])).toEqual([false, true, true]); // "none" brushable
    expect(brushedLines(lines, [brushBetween(0.99, 0.6), null, null])).toEqual([false, false, false]);
    expect(brushedLines(lines, [brushBetween(0.99, 0.6, 0.02), null, null])).toEqual([true, false, false]); // padded
  });
  it("lays out axes so every title and tick label fits inside the plot", () => {
    const long = [parallelAxis("x", [1, 2]), parallelAxis("best_validation_accuracy", [0.123456, 0.9])];
    const { width, x } = parallelLayout(long, 7);
    const title = axisTitle("best_validation_accuracy").length * 7;
    expect(x[0] - 7 / 2).toBeGreaterThanOrEqual(0);
    expect(x[1] + title / 2).toBeLessThanOrEqual(width); // the last title, centred on its axis
    expect(x[1] + 4 + "0.1235".length * 7).toBeLessThanOrEqual(width); // its tick labels, right of it
    expect(x[1] - x[0]).toBeGreaterThanOrEqual(title / 2); // neighbouring titles do not overlap
    expect(axisTitle("a".repeat(40))).toHaveLength(22);
  });
});

describe("comparing curves", () => {
  it("aligns trials on the union of their iterations", () => {
    const a: Record<string, number>[] = [{ iteration: 1, loss: 3 }, { iteration: 2, loss: 2 }, { iteration: 4, accuracy: 0.5 }];
    const b = [{ iteration: 2, loss: 1.5 }, { iteration: 3, loss: 1 }];
    expect(alignCurves([a, b], "loss")).toEqual([[1, 2, 3], [3, 2, null], [null, 1.5, 1]]);
    expect(historyMetrics([a, b])).toEqual(["loss", "accuracy"]);
  });
});

import { validationText } from "./errors";

describe("validation errors", () => {
  it("name the field of each problem", () => {
    const detail = [{ loc: ["body", "trials"], msg: "Input should be greater than or equal to 1" }, { loc: ["body", "strategy"], msg: "Input should be 'exhaustive', 'random' or 'bayesian'" }];
    expect(validationText(detail)).toBe("trials: Input should be greater than or equal to 1; strategy: Input should be 'exhaustive', 'random' or 'bayesian'");
  });
});
