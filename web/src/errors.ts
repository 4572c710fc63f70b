// Error texts from the server's answers (pure: unit-tested).
/** A 422's list of problems as text: "trials: Input should be greater than or equal to 1". */
export function validationText(detail: unknown): string {
  if (!Array.isArray(detail)) return JSON.stringify(detail);
  return detail
    .map((p: { loc?: unknown[]; msg?: string }) => `${(p.loc ?? []).filter((l) => l !== "body").join(".")}: ${p.msg ?? ""}`)
    .join("; ");
}
