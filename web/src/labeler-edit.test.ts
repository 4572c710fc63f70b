import { describe, expect, it } from "vitest";
import { corners, pageAction, resizeBox } from "./labeler";

const size = { width: 40, height: 30 };
const box = { x: 10, y: 5, width: 8, height: 6, label: "car" };

describe("resizing a box by a corner", () => {
  it("moves the dragged corner only, in image pixels", () => {
    // scale 2: 6 displayed pixels are 3 image pixels
    expect(resizeBox(box, "se", 6, 4, 2, size)).toEqual({ x: 10, y: 5, width: 11, height: 8, label: "car" });
    expect(resizeBox(box, "nw", -6, -4, 2, size)).toEqual({ x: 7, y: 3, width: 11, height: 8, label: "car" });
    expect(resizeBox(box, "ne", 2, 2, 2, size)).toEqual({ x: 10, y: 6, width: 9, height: 5, label: "car" });
    expect(resizeBox(box, "sw", 2, -2, 2, size)).toEqual({ x: 11, y: 5, width: 7, height: 5, label: "car" });
  });

  it("keeps the box inside the image and at least a pixel wide", () => {
    expect(resizeBox(box, "se", 1000, 1000, 1, size)).toEqual({ x: 10, y: 5, width: 30, height: 25, label: "car" });
    expect(resizeBox(box, "nw", -1000, -1000, 1, size)).toEqual({ x: 0, y: 0, width: 18, height: 11, label: "car" });
    expect(resizeBox(box, "se", -1000, -1000, 1, size)).toEqual({ x: 10, y: 5, width: 1, height: 1, label: "car" });
    expect(resizeBox(box, "nw", 1000, 1000, 1, size)).toEqual({ x: 17, y: 10, width: 1, height: 1, label: "car" });
  });

  it("keeps the other corners of a box with fractional corners as they are", () => {
    const proposed = { x: 2.25, y: 3.5, width: 10.5, height: 4.25, label: "car" };
    const resized = resizeBox(proposed, "se", 3, 3, 1, size);
    expect([resized.x, resized.y, resized.x + resized.width, resized.y + resized.height]).toEqual([2.25, 3.5, 16, 11]);
  });

  it("puts the handles on the displayed corners", () => {
    expect(corners(box, 2)).toEqual([
      { corner: "nw", x: 20, y: 10 },
      { corner: "ne", x: 36, y: 10 },
      { corner: "sw", x: 20, y: 22 },
      { corner: "se", x: 36, y: 22 },
    ]);
  });
});

describe("page keys", () => {
  it("undo, redo with Ctrl+Shift+Z or Ctrl+Y, and the arrows", () => {
    expect(pageAction({ key: "z" })).toBe("undo");
    expect(pageAction({ key: "z", ctrlKey: true })).toBe("undo");
    expect(pageAction({ key: "Z", ctrlKey: true, shiftKey: true })).toBe("redo");
    expect(pageAction({ key: "z", metaKey: true, shiftKey: true })).toBe("redo");
    expect(pageAction({ key: "y", ctrlKey: true })).toBe("redo");
    expect(pageAction({ key: "y" })).toBeNull();
    expect(pageAction({ key: "Z", shiftKey: true })).toBeNull();
    expect(pageAction({ key: "ArrowDown" })).toBe("next");
    expect(pageAction({ key: "ArrowRight" })).toBe("next");
    expect(pageAction({ key: "ArrowUp" })).toBe("previous");
    expect(pageAction({ key: "ArrowLeft" })).toBe("previous");
    expect(pageAction({ key: "ArrowUp", ctrlKey: true })).toBeNull();
    expect(pageAction({ key: "1" })).toBeNull();
  });
});
