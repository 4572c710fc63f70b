// Experiment Manager: sorting the results table (pure, unit-tested).

export type Row = Record<string, unknown>;

/** Rows sorted by a column; missing values (null) go last whatever the direction. */
export function sortRows(rows: Row[], column: string, ascending: boolean): Row[] {
  const sign = ascending ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = a[column];
    const y = b[column];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    return sign * String(x).localeCompare(String(y));
  });
}

/** How a cell shows: numbers to 4 significant digits. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** One row of the "new experiment" parameter table as the user typed it. */
export interface ParameterRow {
  name: string;
  kind: "values" | "uniform" | "integer" | "choice";
  text: string; // "0.1, 0.5" for values and choice; "low, high" for uniform and integer
  log: boolean;
}

/** A typed value: numbers, true/false/null, else the trimmed text. */
export function parseValue(text: string): unknown {
  const t = text.trim();
  if (t === "true" || t === "false") return t === "true";
  if (t === "null" || t === "None") return null;
  if (t !== "" && !Number.isNaN(Number(t))) return Number(t);
  return t.replace(/^["']|["']$/g, "");
}

/** The parameter table the server takes, or an error naming the row at fault. */
export function parameterTable(rows: ParameterRow[]): Record<string, unknown> {
  const table: Record<string, unknown> = {};
  for (const [index, row] of rows.entries()) {
    const name = row.name.trim();
    if (!name) throw new Error(`parameter ${index + 1}: give it a name`);
    if (name in table) throw new Error(`parameter ${name}: the name is used twice`);
    const parts = row.text.split(",").map((p) => p.trim()).filter((p) => p !== "");
    if (parts.length === 0) throw new Error(`parameter ${name}: give its values`);
    const values = parts.map(parseValue);
    if (row.kind === "values" || row.kind === "choice") {
      table[name] = { type: row.kind, values };
      continue;
    }
    const [low, high] = values;
    if (values.length !== 2 || typeof low !== "number" || typeof high !== "number")
      throw new Error(`parameter ${name}: a ${row.kind} range is "low, high" (two numbers)`);
    if (row.kind === "integer" && !(Number.isInteger(low) && Number.isInteger(high)))
      throw new Error(`parameter ${name}: an integer range needs whole numbers`);
    table[name] = { type: row.kind, low, high, log: row.log };
  }
  if (Object.keys(table).length === 0) throw new Error("add at least one parameter");
  return table;
}

/** What the results table shows: a text that some parameter, the status or the annotation
 * contains (case-insensitive; "name=value" matches that column only), and a range on a metric. */
export interface RowFilter {
  text: string;
  metric: string;
  min: number | null;
  max: number | null;
}

/** The filter box's example, from the experiment's own parameters and rows, so that typing
 * it keeps at least one row: "name=value status" of the first row with a parameter value
 * written without spaces (what filterRows matches), else that row's status alone. */
export function filterPlaceholder(parameters: string[], rows: Row[]): string {
  for (const row of rows) {
    for (const name of parameters) {
      const value = row[name];
      if (value === null || value === undefined || typeof value === "object") continue;
      const text = String(value);
      if (text === "" || /[\s=]/.test(text) || /[\s=]/.test(name)) continue;
      return [`${name}=${text}`, row.status].filter((w) => typeof w === "string" && w !== "").join("  ");
    }
  }
  const status = rows.find((r) => typeof r.status === "string")?.status;
  return typeof status === "string" ? status : "";
}

/** The rows a filter keeps (the input is left alone). Rows whose metric is missing are left
 * out as soon as a bound is given. */
export function filterRows(rows: Row[], filter: RowFilter, textColumns: string[]): Row[] {
  const words = filter.text.trim().toLowerCase().split(/\s+/).filter((w) => w !== "");
  return rows.filter((row) => {
    for (const word of words) {
      const [column, wanted] = word.includes("=") ? word.split("=", 2) : [null, word];
      const columns = column === null ? textColumns : textColumns.filter((c) => c.toLowerCase() === column);
      if (!columns.some((c) => {
        const text = cellText(row[c]).toLowerCase();
        return column === null ? text.includes(wanted) : text === wanted || String(row[c]).toLowerCase() === wanted;
      })) return false;
    }
    if (filter.min !== null || filter.max !== null) {
      const value = row[filter.metric];
      if (typeof value !== "number") return false;
      if (filter.min !== null && value < filter.min) return false;
      if (filter.max !== null && value > filter.max) return false;
    }
    return true;
  });
}

/** One axis of a parallel-coordinates plot: where a value sits from 0 (bottom) to 1 (top),
 * and the tick labels. Numbers scale linearly between their smallest and largest value (a
 * constant sits in the middle); other values are categories, evenly spaced in sorted order. */
export interface Axis {
  name: string;
  position: (value: unknown) => number | null;
  ticks: { at: number; label: string }[];
}

export function parallelAxis(name: string, values: unknown[]): Axis {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length > 0 && present.every((v) => typeof v === "number")) {
    const numbers = present as number[];
    const low = Math.min(...numbers);
    const high = Math.max(...numbers);
    const position = (v: unknown) => (typeof v !== "number" ? null : high === low ? 0.5 : (v - low) / (high - low));
    const ticks = high === low ? [{ at: 0.5, label: cellText(low) }] : [{ at: 0, label: cellText(low) }, { at: 1, label: cellText(high) }];
    return { name, position, ticks };
  }
  const categories = [...new Set(present.map((v) => cellText(v)))].sort();
  const at = (i: number) => (categories.length === 1 ? 0.5 : i / (categories.length - 1));
  const position = (v: unknown) => {
    const i = v === null || v === undefined ? -1 : categories.indexOf(cellText(v));
    return i < 0 ? null : at(i);
  };
  return { name, position, ticks: categories.map((label, i) => ({ at: at(i), label })) };
}

/** Where a trial without a value on an axis sits: just below the axis, on a "none" tick, so
 * that every compared trial is a whole line (a failed trial has no metric value). */
export const MISSING = -0.15;

/** A trial's height on each axis (0 bottom, 1 top; MISSING without a value). */
export function linePositions(axes: Axis[], values: unknown[]): number[] {
  return axes.map((axis, i) => axis.position(values[i]) ?? MISSING);
}

/** A brushed range of one axis, in axis positions (low <= high). */
export interface Brush {
  low: number;
  high: number;
}

/** The range between two heights a drag went through, widened by `pad` at both ends (a few
 * pixels' worth: a drag that starts on a line keeps it). */
export function brushBetween(a: number, b: number, pad = 0): Brush {
  return { low: Math.min(a, b) - pad, high: Math.max(a, b) + pad };
}

/** Which lines every brush keeps: a line is kept when, on each axis with a brush, its
 * position is inside the brushed range (bounds included); axes without a brush keep all. */
export function brushedLines(lines: number[][], brushes: (Brush | null)[]): boolean[] {
  const eps = 1e-9;
  return lines.map((line) => brushes.every((b, i) => b === null || (line[i] >= b.low - eps && line[i] <= b.high + eps)));
}

/** An axis title that fits: at most `limit` characters, else cut with an ellipsis. */
export function axisTitle(name: string, limit = 22): string {
  return name.length <= limit ? name : `${name.slice(0, limit - 1)}…`;
}

/** Horizontal layout of a parallel-coordinates plot whose texts all fit inside it: axis
 * titles are centred on their axis, tick labels drawn right of it. `charWidth` is the width
 * of one character of the labels (an estimate: SVG text is not measured before drawing). */
export function parallelLayout(axes: Axis[], charWidth = 7): { width: number; x: number[] } {
  const titles = axes.map((a) => axisTitle(a.name).length * charWidth);
  const ticks = axes.map((a) => Math.max(4 * charWidth, ...a.ticks.map((t) => t.label.length * charWidth)) + 6);
  const gaps = axes.slice(1).map((_, i) => Math.max(110, ticks[i] + 12, (titles[i] + titles[i + 1]) / 2 + 12));
  const left = Math.max(12, titles[0] / 2 + 6);
  const x = [left];
  gaps.forEach((gap) => x.push(x[x.length - 1] + gap));
  const last = axes.length - 1;
  const width = x[last] + Math.max(titles[last] / 2 + 6, ticks[last] + 6);
  return { width: Math.ceil(width), x };
}

/** Curves of several trials on one x axis (the union of their iterations), as uPlot wants
 * them: [x, trial 1 values, trial 2 values, ...], null where a trial has no point. */
export function alignCurves(histories: Record<string, number>[][], metric: string): (number | null)[][] {
  const points = histories.map((h) => new Map(h.filter((r) => typeof r[metric] === "number").map((r, i) => [r.iteration ?? i + 1, r[metric]])));
  const xs = [...new Set(points.flatMap((p) => [...p.keys()]))].sort((a, b) => a - b);
  return [xs, ...points.map((p) => xs.map((x) => p.get(x) ?? null))];
}

/** Metrics that a trial history records (not iteration or epoch), in first-seen order. */
export function historyMetrics(histories: Record<string, number>[][]): string[] {
  return [...new Set(histories.flatMap((h) => h.flatMap((r) => Object.keys(r))))].filter((k) => k !== "iteration" && k !== "epoch");
}
