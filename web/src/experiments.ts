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
