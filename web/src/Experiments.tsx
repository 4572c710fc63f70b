import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import { api } from "./api";
import { cellText, Row, sortRows } from "./experiments";

interface ExperimentInfo {
  name: string;
  strategy: string;
  metric: string;
  direction: string;
  counts: Record<string, number>;
  best: number | null;
  best_trial: number | null;
}

interface Table {
  name: string;
  metric: string;
  direction: string;
  parameters: string[];
  columns: string[];
  rows: Row[];
}

interface Trial {
  trial: number;
  status: string;
  params: Record<string, unknown>;
  metrics: Record<string, number>;
  value: number | null;
  annotation: string;
  error: string | null;
  history: Record<string, number>[];
}

// The Experiment Manager page: experiments of a store, the results table (click a column to
// sort) and a trial's details with its curves.
export function Experiments() {
  const [store, setStore] = useState("experiments.db");
  const [experiments, setExperiments] = useState<ExperimentInfo[]>([]);
  const [error, setError] = useState("");
  const [table, setTable] = useState<Table | null>(null);
  const [sort, setSort] = useState<{ column: string; ascending: boolean } | null>(null);
  const [trial, setTrial] = useState<Trial | null>(null);
  const load = () =>
    api<{ experiments: ExperimentInfo[] }>(`/api/experiments?store=${encodeURIComponent(store)}`)
      .then((r) => {
        setExperiments(r.experiments);
        setError("");
      })
      .catch((e) => setError(e.message));
  useEffect(() => void load(), []); // eslint-disable-line react-hooks/exhaustive-deps
  const open = (name: string) => {
    setTrial(null);
    setSort(null);
    api<Table>(`/api/experiments/${encodeURIComponent(name)}?store=${encodeURIComponent(store)}`).then(setTable);
  };
  const openTrial = (number: unknown) =>
    table && api<Trial>(`/api/experiments/${encodeURIComponent(table.name)}/trials/${number}?store=${encodeURIComponent(store)}`).then(setTrial);
  const rows = table && sort ? sortRows(table.rows, sort.column, sort.ascending) : table?.rows ?? [];
  const columns = table ? table.columns.filter((c) => c !== "artifacts" && c !== "started") : [];
  return (
    <div className="experiments" data-testid="experiments">
      <aside className="runs">
        <h3>Experiments</h3>
        <label className="field">
          <span>store (inside the app's folder)</span>
          <input value={store} onChange={(e) => setStore(e.target.value)} onKeyDown={(e) => e.key === "Enter" && load()} data-testid="exp-store" />
        </label>
        {error ? <div className="field-error">{error}</div> : null}
        <ul>
          {experiments.map((e) => (
            <li key={e.name}>
              <a className="link" onClick={() => open(e.name)} data-testid={`exp-${e.name}`}>{e.name}</a>
              <div className="hint">{e.strategy} · {e.metric} ({e.direction}) · {Object.entries(e.counts).map(([k, v]) => `${v} ${k}`).join(", ")}</div>
            </li>
          ))}
        </ul>
      </aside>
      <section className="run-panels">
        {table ? (
          <>
            <h3>{table.name}: {table.rows.length} trials, metric {table.metric} ({table.direction})</h3>
            <table className="results" data-testid="results">
              <thead>
                <tr>
                  {columns.map((c) => (
                    <th key={c} onClick={() => setSort({ column: c, ascending: sort?.column === c ? !sort.ascending : true })} data-testid={`sort-${c}`}>
                      {c}{sort?.column === c ? (sort.ascending ? " ▲" : " ▼") : ""}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={String(row.trial)} onClick={() => openTrial(row.trial)} className={trial?.trial === row.trial ? "chosen" : ""} data-testid={`row-${row.trial}`}>
                    {columns.map((c) => <td key={c}>{cellText(row[c])}</td>)}
                  </tr>
                ))}
              </tbody>
            </table>
            {trial ? <TrialDetails trial={trial} metric={table.metric} /> : null}
          </>
        ) : (
          <p className="hint">Choose an experiment. Experiments are defined and run from Python (deeptoolbox.experiments) or the `deeptoolbox experiment` command.</p>
        )}
      </section>
    </div>
  );
}

function TrialDetails({ trial, metric }: { trial: Trial; metric: string }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!holder.current || trial.history.length === 0) return;
    const names = [...new Set(trial.history.flatMap((h) => Object.keys(h)))].filter((k) => k !== "iteration" && k !== "epoch");
    const x = trial.history.map((h, i) => h.iteration ?? i + 1);
    const data = [x, ...names.map((n) => trial.history.map((h) => h[n] ?? null))] as uPlot.AlignedData;
    const colors = ["#1f5fbf", "#d9641c", "#3a8f4a", "#6a3fb5", "#b5397a"];
    const chart = new uPlot(
      { title: `trial ${trial.trial}`, width: 420, height: 220, scales: { x: { time: false } }, series: [{ label: "iteration" }, ...names.map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 1.5 }))] },
      data,
      holder.current,
    );
    return () => chart.destroy();
  }, [trial]);
  return (
    <div className="run-panel" data-testid="trial-details">
      <h3>Trial {trial.trial} · {trial.status} · {metric} = {trial.value === null ? "-" : trial.value.toPrecision(4)}</h3>
      <div>parameters: <code>{JSON.stringify(trial.params)}</code></div>
      <div>final metrics: <code>{JSON.stringify(trial.metrics)}</code></div>
      {trial.annotation ? <div>annotation: {trial.annotation}</div> : null}
      {trial.error ? <pre className="field-error">{trial.error}</pre> : null}
      <div ref={holder} className="plot" />
    </div>
  );
}
