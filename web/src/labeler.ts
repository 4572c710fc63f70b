// The Labeler page's logic, apart from React: keyboard shortcuts, multi-select, and boxes
// drawn with the mouse (screen pixels to image pixels, kept inside the image).

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  label: string;
}

// Keys 1-9 give the first nine classes.
export function classForKey(key: string, classes: string[]): string | null {
  if (!/^[1-9]$/.test(key)) return null;
  return classes[Number(key) - 1] ?? null;
}

// Click: only this image; Ctrl/Cmd-click: add or remove it; Shift-click: the range from the
// last clicked image (the anchor) to this one.
export function selectImages(
  selected: string[],
  file: string,
  files: string[],
  anchor: string | null,
  modifiers: { toggle?: boolean; range?: boolean },
): string[] {
  if (modifiers.range && anchor !== null && files.includes(anchor)) {
    const [a, b] = [files.indexOf(anchor), files.indexOf(file)].sort((p, q) => p - q);
    return files.slice(a, b + 1);
  }
  if (modifiers.toggle) return selected.includes(file) ? selected.filter((f) => f !== file) : [...selected, file];
  return [file];
}

// The box between two mouse positions (in displayed pixels, `scale` displayed pixels per image
// pixel), clipped to the image and rounded to whole pixels; null when smaller than 2 pixels.
export function boxFromDrag(
  start: { x: number; y: number },
  end: { x: number; y: number },
  scale: number,
  size: { width: number; height: number },
  label: string,
): Box | null {
  const clip = (v: number, most: number) => Math.min(Math.max(Math.round(v / scale), 0), most);
  const x0 = clip(Math.min(start.x, end.x), size.width);
  const x1 = clip(Math.max(start.x, end.x), size.width);
  const y0 = clip(Math.min(start.y, end.y), size.height);
  const y1 = clip(Math.max(start.y, end.y), size.height);
  if (x1 - x0 < 2 || y1 - y0 < 2) return null;
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0, label };
}

// A box moved by (dx, dy) displayed pixels, kept inside the image.
export function moveBox(box: Box, dx: number, dy: number, scale: number, size: { width: number; height: number }): Box {
  const x = Math.min(Math.max(Math.round(box.x + dx / scale), 0), size.width - box.width);
  const y = Math.min(Math.max(Math.round(box.y + dy / scale), 0), size.height - box.height);
  return { ...box, x, y };
}

// Pixel masks: a Uint8Array of class ids, row-major (0 is background).
export function paintDisc(mask: Uint8Array, width: number, height: number, cx: number, cy: number, radius: number, value: number): void {
  const r = Math.max(radius, 0.5);
  for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(height - 1, Math.ceil(cy + r)); y++)
    for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(width - 1, Math.ceil(cx + r)); x++)
      if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r) mask[y * width + x] = value;
}

// Every pixel whose centre lies inside the polygon (even-odd rule) gets `value`.
export function fillPolygon(mask: Uint8Array, width: number, height: number, points: { x: number; y: number }[], value: number): void {
  if (points.length < 3) return;
  for (let y = 0; y < height; y++) {
    const py = y + 0.5;
    for (let x = 0; x < width; x++) {
      const px = x + 0.5;
      let inside = false;
      for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
        const a = points[i], b = points[j];
        if (a.y > py !== b.y > py && px < ((b.x - a.x) * (py - a.y)) / (b.y - a.y) + a.x) inside = !inside;
      }
      if (inside) mask[y * width + x] = value;
    }
  }
}

export function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// Signals: a pixel column of a waveform view of [start, end] seconds, `width` pixels wide, as a
// time; a drag between two columns as a region, clipped to [0, duration], null when shorter
// than 2 pixels.
export function pixelToTime(x: number, width: number, start: number, end: number): number {
  return start + (Math.min(Math.max(x, 0), width) / width) * (end - start);
}

export function regionFromDrag(x0: number, x1: number, width: number, view: { start: number; end: number }, label: string) {
  if (Math.abs(x1 - x0) < 2) return null;
  const a = pixelToTime(Math.min(x0, x1), width, view.start, view.end);
  const b = pixelToTime(Math.max(x0, x1), width, view.start, view.end);
  const round = (t: number) => Math.round(t * 1e6) / 1e6;
  return { start: round(a), end: round(b), label };
}

// Zoom the view by `factor` (< 1 zooms in) around its centre, kept inside [0, duration].
export function zoomView(view: { start: number; end: number }, factor: number, duration: number) {
  const span = Math.min(Math.max((view.end - view.start) * factor, 1e-6), duration);
  const centre = (view.start + view.end) / 2;
  const start = Math.min(Math.max(centre - span / 2, 0), duration - span);
  return { start, end: start + span };
}

export type Corner = "nw" | "ne" | "sw" | "se";

// A box with one corner dragged by (dx, dy) displayed pixels: that corner moves (rounded to
// whole image pixels, kept inside the image), the opposite one stays; a corner dragged past
// the opposite one stops a pixel before it, so the box never turns over or vanishes.
export function resizeBox(box: Box, corner: Corner, dx: number, dy: number, scale: number, size: { width: number; height: number }): Box {
  const clip = (v: number, low: number, high: number) => Math.min(Math.max(v, low), high);
  let x0 = box.x, y0 = box.y, x1 = box.x + box.width, y1 = box.y + box.height;
  if (corner === "nw" || corner === "sw") x0 = clip(Math.round(x0 + dx / scale), 0, x1 - 1);
  else x1 = clip(Math.round(x1 + dx / scale), x0 + 1, size.width);
  if (corner === "nw" || corner === "ne") y0 = clip(Math.round(y0 + dy / scale), 0, y1 - 1);
  else y1 = clip(Math.round(y1 + dy / scale), y0 + 1, size.height);
  return { ...box, x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

// The corners of a box, in displayed pixels (where the resize handles are drawn).
export function corners(box: Box, scale: number): { corner: Corner; x: number; y: number }[] {
  const [x0, y0, x1, y1] = [box.x * scale, box.y * scale, (box.x + box.width) * scale, (box.y + box.height) * scale];
  return [
    { corner: "nw", x: x0, y: y0 },
    { corner: "ne", x: x1, y: y0 },
    { corner: "sw", x: x0, y: y1 },
    { corner: "se", x: x1, y: y1 },
  ];
}

// Keys that act on the whole page: undo (Z, Ctrl/Cmd+Z), redo (Ctrl/Cmd+Shift+Z, Ctrl/Cmd+Y),
// the next image (Right, Down) and the previous one (Left, Up); null for any other key.
export function pageAction(event: { key: string; ctrlKey?: boolean; metaKey?: boolean; shiftKey?: boolean }): "undo" | "redo" | "next" | "previous" | null {
  const command = Boolean(event.ctrlKey || event.metaKey);
  const key = event.key.toLowerCase();
  if (command && (key === "y" || (key === "z" && event.shiftKey))) return "redo";
  if (key === "z" && !event.shiftKey) return "undo";
  if (!command && (event.key === "ArrowRight" || event.key === "ArrowDown")) return "next";
  if (!command && (event.key === "ArrowLeft" || event.key === "ArrowUp")) return "previous";
  return null;
}
