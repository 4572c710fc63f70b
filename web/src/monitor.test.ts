import { describe, expect, it } from "vitest";
import { addEvents, emptySeries, formatSeconds, RunEvent } from "./monitor";

describe("monitor series", () => {
  it("puts one point per iteration and validation on its iteration", () => {
    const events: RunEvent[] = [
      { event: "start" },
      { event: "iteration", iteration: 1, loss: 2, learn_rate: 0.1, metrics: { accuracy: 0.5 } },
      { event: "validation", iteration: 2, validation: { loss: 1.5, accuracy: 0.6 } },
      { event: "iteration", iteration: 2, loss: 1, learn_rate: 0.1, metrics: {} },
    ];
    const s = addEvents(emptySeries(), events);
    expect(s.iterations).toEqual([1, 2]);
    expect(s.loss).toEqual([2, 1]);
    expect(s.accuracy).toEqual([0.5, null]);
    expect(s.validationLoss).toEqual([null, 1.5]);
    expect(s.validationAccuracy).toEqual([null, 0.6]);
    const more = addEvents(s, [{ event: "iteration", iteration: 3, loss: 0.5 }]);
    expect(more.iterations).toEqual([1, 2, 3]);
    expect(s.iterations).toEqual([1, 2]); // the old series is left alone
  });

  it("formats durations", () => {
    expect(formatSeconds(65)).toBe("1:05");
    expect(formatSeconds(3725)).toBe("1:02:05");
    expect(formatSeconds(null)).toBe("-");
  });
});
