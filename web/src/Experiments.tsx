import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import { api } from "./api";
import { cellText, ParameterRow, parameterTable, Row, sortRows } from "./experiments";

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
  counts: Record<string, number>;
  workers: number;
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
// sort) and a trial's details with its curves; a form that creates an experiment, Run (worker
// processes), Stop on a running trial and Cancel.
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
  const [creating, setCreating] = useState(false);
  const [workers, setWorkers] = useState(1);
  const query = `store=${encodeURIComponent(store)}`;
  const refresh = (name: string) =>
    api<Table>(`/api/experiments/${encodeURIComponent(name)}?${query}`).then(setTable).catch((e) => setError(e.message));
  const open = (name: string) => {
    setTrial(null);
    setSort(null);
    setCreating(false);
    refresh(name);
  };
  const active = table !== null && (table.workers > 0 || (table.counts.running ?? 0) > 0);
  useEffect(() => {
    if (!table || !active) return;
    const timer = setInterval(() => {
      refresh(table.name);
      load();
    }, 1000);
    return () => clearInterval(timer);
  }, [table?.name, active]); // eslint-disable-line react-hooks/exhaustive-deps
  const act = (path: string, body?: unknown) =>
    table &&
    api(`/api/experiments/${encodeURIComponent(table.name)}/${path}`, { method: "POST", body: body ?? {} })
      .then(() => refresh(table.name))
      .catch((e) => setError(e.message));
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
        <button onClick={() => { setCreating(true); setTable(null); }} data-testid="exp-new">New experiment</button>
        {error ? <div className="field-error" data-testid="exp-error">{error}</div> : null}
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
            <div className="buttons">
              <label>workers <input type="number" min={1} max={64} value={workers} onChange={(e) => setWorkers(Number(e.target.value))} data-testid="exp-workers" style={{ width: 48 }} /></label>{" "}
              <button onClick={() => act(`run?${query}`, { store, workers })} disabled={(table.counts.queued ?? 0) === 0} data-testid="exp-run">Run</button>
              <button onClick={() => act(`cancel?${query}`)} disabled={!active} data-testid="exp-cancel">Cancel</button>
              <span className="hint" data-testid="exp-status">{table.workers} worker{table.workers === 1 ? "" : "s"} · {Object.entries(table.counts).map(([k, v]) => `${v} ${k}`).join(", ")}</span>
            </div>
            <table className="results" data-testid="results">
              <thead>
                <tr>
                  {columns.map((c) => (
                    <th key={c} onClick={() => setSort({ column: c, ascending: sort?.column === c ? !sort.ascending : true })} data-testid={`sort-${c}`}>
                      {c}{sort?.column === c ? (sort.ascending ? " ▲" : " ▼") : ""}
                    </th>
                  ))}
                  <th />
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={String(row.trial)} onClick={() => openTrial(row.trial)} className={trial?.trial === row.trial ? "chosen" : ""} data-testid={`row-${row.trial}`}>
                    {columns.map((c) => <td key={c}>{cellText(row[c])}</td>)}
                    <td>{row.status === "running" ? <button className="stop" onClick={(e) => { e.stopPropagation(); act(`trials/${row.trial}/stop?${query}`); }} data-testid={`stop-trial-${row.trial}`}>Stop</button> : null}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {trial ? <TrialDetails trial={trial} metric={table.metric} /> : null}
          </>
        ) : creating ? (
          <NewExperiment store={store} onCreated={(name) => { load(); open(name); }} />
        ) : (
          <p className="hint">Choose an experiment, or create one with New experiment. Experiments are also defined and run from Python (deeptoolbox.experiments) or the `deeptoolbox experiment` command.</p>
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

const STRATEGIES = ["exhaustive", "random", "bayesian"];
const KINDS: ParameterRow["kind"][] = ["values", "uniform", "integer", "choice"];

// Create an experiment: a setup function given as file.py:function (inside the app's folder)
// or package.module:function, a parameter table, a strategy and the metric to optimize.
function NewExperiment({ store, onCreated }: { store: string; onCreated: (name: string) => void }) {
  const [name, setName] = useState("");
  const [setup, setSetup] = useState("");
  const [metric, setMetric] = useState("validation_accuracy");
  const [direction, setDirection] = useState("maximize");
  const [strategy, setStrategy] = useState("exhaustive");
  const [trials, setTrials] = useState(10);
  const [rows, setRows] = useState<ParameterRow[]>([{ name: "", kind: "values", text: "", log: false }]);
  const [error, setError] = useState("");
  const change = (index: number, update: Partial<ParameterRow>) =>
    setRows(rows.map((row, i) => (i === index ? { ...row, ...update } : row)));
  const create = () => {
    let parameters: Record<string, unknown>;
    try {
      parameters = parameterTable(rows);
    } catch (e) {
      setError((e as Error).message);
      return;
    }
    const body = { name, setup, metric, direction, strategy, parameters, store, trials: strategy === "exhaustive" ? null : trials };
    api("/api/experiments", { body })
      .then(() => onCreated(name))
      .catch((e) => setError(e.message));
  };
  return (
    <div className="run-panel new-experiment" data-testid="exp-form">
      <h3>New experiment</h3>
      <label className="field"><span>name</span><input value={name} onChange={(e) => setName(e.target.value)} data-testid="exp-name" /></label>
      <label className="field"><span>setup function (file.py:function in the app's folder, or module:function)</span><input value={setup} onChange={(e) => setSetup(e.target.value)} data-testid="exp-setup" /></label>
      <label className="field"><span>metric</span><input value={metric} onChange={(e) => setMetric(e.target.value)} data-testid="exp-metric" /></label>
      <label className="field"><span>direction</span>
        <select value={direction} onChange={(e) => setDirection(e.target.value)} data-testid="exp-direction">
          <option>maximize</option><option>minimize</option>
        </select>
      </label>
      <label className="field"><span>strategy</span>
        <select value={strategy} onChange={(e) => setStrategy(e.target.value)} data-testid="exp-strategy">
          {STRATEGIES.map((s) => <option key={s}>{s}</option>)}
        </select>
      </label>
      {strategy !== "exhaustive" ? (
        <label className="field"><span>trials</span><input type="number" min={1} value={trials} onChange={(e) => setTrials(Number(e.target.value))} data-testid="exp-trials" /></label>
      ) : null}
      <table className="results parameters">
        <thead><tr><th>parameter</th><th>kind</th><th>values (a, b, …) or range (low, high)</th><th>log</th><th /></tr></thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              <td><input value={row.name} onChange={(e) => change(i, { name: e.target.value })} data-testid={`param-name-${i}`} /></td>
              <td>
                <select value={row.kind} onChange={(e) => change(i, { kind: e.target.value as ParameterRow["kind"] })} data-testid={`param-kind-${i}`}>
                  {KINDS.map((k) => <option key={k}>{k}</option>)}
                </select>
              </td>
              <td><input value={row.text} onChange={(e) => change(i, { text: e.target.value })} data-testid={`param-values-${i}`} /></td>
              <td><input type="checkbox" checked={row.log} disabled={row.kind !== "uniform" && row.kind !== "integer"} onChange={(e) => change(i, { log: e.target.checked })} /></td>
              <td><button onClick={() => setRows(rows.filter((_, j) => j !== i))} disabled={rows.length === 1}>×</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="buttons">
        <button onClick={() => setRows([...rows, { name: "", kind: "values", text: "", log: false }])} data-testid="param-add">Add parameter</button>
        <button onClick={create} data-testid="exp-create">Create</button>
      </div>
      {error ? <div className="field-error" data-testid="exp-form-error">{error}</div> : null}
    </div>
  );
}
