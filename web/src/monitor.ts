// Training Monitor data: events of a run (as TrainingMonitorLog writes them) into plot series.

export interface RunEvent {
  event: "start" | "iteration" | "validation" | "end" | "error" | "unreadable";
  time?: number;
  iteration?: number;
  epoch?: number;
  max_epochs?: number;
  total_iterations?: number;
  loss?: number | null;
  learn_rate?: number | null;
  metrics?: Record<string, number> | null;
  validation?: Record<string, number> | null;
  elapsed?: number;
  remaining?: number | null;
  device?: string;
  stop_reason?: string | null;
  name?: string;
}

export interface Series {
  iterations: number[];
  loss: (number | null)[];
  accuracy: (number | null)[];
  learnRate: (number | null)[];
  validationLoss: (number | null)[];
  validationAccuracy: (number | null)[];
}

export function emptySeries(): Series {
  return { iterations: [], loss: [], accuracy: [], learnRate: [], validationLoss: [], validationAccuracy: [] };
}

/** Add events to the series: one point per logged iteration; a validation lands on the
 * point of its iteration (validation comes before that iteration's own event). */
export function addEvents(series: Series, events: RunEvent[]): Series {
  const s: Series = {
    iterations: [...series.iterations],
    loss: [...series.loss],
    accuracy: [...series.accuracy],
    learnRate: [...series.learnRate],
    validationLoss: [...series.validationLoss],
    validationAccuracy: [...series.validationAccuracy],
  };
  let pending: RunEvent | null = null;
  for (const e of events) {
    if (e.event === "validation") pending = e;
    if (e.event !== "iteration" || e.iteration === undefined) continue;
    s.iterations.push(e.iteration);
    s.loss.push(e.loss ?? null);
    s.accuracy.push(e.metrics?.accuracy ?? null);
    s.learnRate.push(e.learn_rate ?? null);
    const v = pending && pending.iteration === e.iteration ? pending.validation : null;
    s.validationLoss.push(v?.loss ?? null);
    s.validationAccuracy.push(v?.accuracy ?? null);
    pending = null;
  }
  return s;
}

export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return (h ? `${h}:` : "") + `${String(m).padStart(h ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
}
