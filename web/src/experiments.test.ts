import { describe, expect, it } from "vitest";
import { cellText, sortRows } from "./experiments";

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
