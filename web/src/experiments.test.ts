import { describe, expect, it } from "vitest";
import { cellText, parameterTable, sortRows } from "./experiments";

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
