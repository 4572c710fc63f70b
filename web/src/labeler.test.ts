import { describe, expect, it } from "vitest";
import { boxFromDrag, classForKey, fillPolygon, fromBase64, moveBox, paintDisc, pixelToTime, regionFromDrag, selectImages, toBase64, zoomView } from "./labeler";

const files = ["a.png", "b.png", "c.png", "d.png"];

describe("labeler", () => {
  it("maps keys 1-9 to the classes in order", () => {
    expect(classForKey("1", ["cat", "dog"])).toBe("cat");
    expect(classForKey("2", ["cat", "dog"])).toBe("dog");
    expect(classForKey("3", ["cat", "dog"])).toBeNull();
    expect(classForKey("0", ["cat"])).toBeNull();
    expect(classForKey("a", ["cat"])).toBeNull();
  });

  it("selects one image, toggles with ctrl, takes a range with shift", () => {
    expect(selectImages(["a.png"], "c.png", files, "a.png", {})).toEqual(["c.png"]);
    expect(selectImages(["a.png"], "c.png", files, "a.png", { toggle: true })).toEqual(["a.png", "c.png"]);
    expect(selectImages(["a.png", "c.png"], "a.png", files, "c.png", { toggle: true })).toEqual(["c.png"]);
    expect(selectImages(["d.png"], "b.png", files, "d.png", { range: true })).toEqual(["b.png", "c.png", "d.png"]);
  });

  it("turns a drag into an image-pixel box clipped to the image", () => {
    const size = { width: 20, height: 10 };
    expect(boxFromDrag({ x: 40, y: 30 }, { x: 10, y: 4 }, 2, size, "car")).toEqual({ x: 5, y: 2, width: 15, height: 8, label: "car" });
    expect(boxFromDrag({ x: 30, y: 10 }, { x: 100, y: 100 }, 2, size, "car")).toEqual({ x: 15, y: 5, width: 5, height: 5, label: "car" });
    expect(boxFromDrag({ x: 3, y: 3 }, { x: 4, y: 30 }, 2, size, "car")).toBeNull();
  });

  it("moves a box and keeps it inside the image", () => {
    const box = { x: 2, y: 2, width: 5, height: 4, label: "car" };
    expect(moveBox(box, 6, -2, 2, { width: 20, height: 10 })).toEqual({ ...box, x: 5, y: 1 });
    expect(moveBox(box, 100, 100, 2, { width: 20, height: 10 })).toEqual({ ...box, x: 15, y: 6 });
  });
});

describe("masks", () => {
  it("paints a disc of pixels whose centres are within the radius", () => {
    const mask = new Uint8Array(5 * 5);
    paintDisc(mask, 5, 5, 2.5, 2.5, 1, 3);
    expect(Array.from(mask).filter((v) => v === 3).length).toBe(5); // the centre and its 4 neighbours
    expect(mask[2 * 5 + 2]).toBe(3);
    expect(mask[0]).toBe(0);
  });

  it("fills a polygon by pixel centres", () => {
    const mask = new Uint8Array(6 * 4);
    fillPolygon(mask, 6, 4, [{ x: 1, y: 1 }, { x: 5, y: 1 }, { x: 5, y: 3 }, { x: 1, y: 3 }], 2);
    const rows = [0, 1, 2, 3].map((y) => Array.from(mask.subarray(y * 6, y * 6 + 6)).join(""));
    expect(rows).toEqual(["000000", "022220", "022220", "000000"]);
  });

  it("round-trips bytes through base64", () => {
    const bytes = Uint8Array.from([0, 1, 2, 255, 7]);
    expect(Array.from(fromBase64(toBase64(bytes)))).toEqual([0, 1, 2, 255, 7]);
    expect(toBase64(Uint8Array.from([0, 1, 2]))).toBe("AAEC");
  });
});

describe("signal regions", () => {
  it("turns pixel columns into times and a drag into a region", () => {
    expect(pixelToTime(450, 900, 10, 20)).toBe(15);
    expect(pixelToTime(-5, 900, 10, 20)).toBe(10);
    expect(regionFromDrag(900, 90, 900, { start: 0, end: 100 }, "spike")).toEqual({ start: 10, end: 100, label: "spike" });
    expect(regionFromDrag(5, 6, 900, { start: 0, end: 100 }, "spike")).toBeNull();
  });

  it("zooms around the centre and stays inside the signal", () => {
    expect(zoomView({ start: 0, end: 100 }, 0.5, 100)).toEqual({ start: 25, end: 75 });
    expect(zoomView({ start: 0, end: 50 }, 4, 100)).toEqual({ start: 0, end: 100 });
    expect(zoomView({ start: 80, end: 100 }, 2, 100)).toEqual({ start: 60, end: 100 });
  });
});
