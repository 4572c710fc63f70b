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
