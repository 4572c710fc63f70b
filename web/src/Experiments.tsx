import { MouseEvent as ReactMouseEvent, useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import { api } from "./api";
import { alignCurves, axisTitle, Brush, brushBetween, brushedLines, cellText, filterPlaceholder, filterRows, historyMetrics, linePositions, MISSING, parallelAxis, parallelLayout, ParameterRow, parameterTable, Row, RowFilter, sortRows } from "./experiments";

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
  const [filter, setFilter] = useState<RowFilter>({ text: "", metric: "", min: null, max: null });
  const [selected, setSelected] = useState<number[]>([]);
  const [comparing, setComparing] = useState<Trial[] | null>(null);
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
    setSelected([]);
    setComparing(null);
    setFilter({ text: "", metric: "", min: null, max: null });
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
  const fetchTrial = (number: unknown) =>
    api<Trial>(`/api/experiments/${encodeURIComponent(table!.name)}/trials/${number}?${query}`);
  const openTrial = (number: unknown) => table && fetchTrial(number).then((t) => { setTrial(t); setComparing(null); }).catch((e) => setError(e.message));
  const compare = () =>
    table && Promise.all(selected.map(fetchTrial)).then((t) => { setComparing(t); setTrial(null); }).catch((e) => setError(e.message));
  const toggle = (number: number) => setSelected(selected.includes(number) ? selected.filter((n) => n !== number) : [...selected, number]);
  const columns = table ? table.columns.filter((c) => c !== "artifacts" && c !== "started") : [];
  const numericColumns = table ? columns.filter((c) => c !== "trial" && !table.parameters.includes(c) && table.rows.some((r) => typeof r[c] === "number")) : [];
  const rangeMetric = filter.metric || table?.metric || "";
  const textColumns = table ? [...table.parameters, "status", "annotation"] : [];
  const kept = table ? filterRows(table.rows, { ...filter, metric: rangeMetric }, textColumns) : [];
  const rows = sort ? sortRows(kept, sort.column, sort.ascending) : kept;
  const bound = (text: string) => (text.trim() === "" || Number.isNaN(Number(text)) ? null : Number(text));
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
            <div className="buttons filters">
              <label>filter <input value={filter.text} placeholder={filterPlaceholder(table.parameters, table.rows)} onChange={(e) => setFilter({ ...filter, text: e.target.value })} data-testid="filter-text" /></label>{" "}
              <select value={rangeMetric} onChange={(e) => setFilter({ ...filter, metric: e.target.value })} data-testid="filter-metric">
                {[...new Set([table.metric, ...numericColumns])].map((c) => <option key={c}>{c}</option>)}
              </select>{" "}
              <label>from <input type="number" step="any" style={{ width: 80 }} onChange={(e) => setFilter({ ...filter, min: bound(e.target.value) })} data-testid="filter-min" /></label>{" "}
              <label>to <input type="number" step="any" style={{ width: 80 }} onChange={(e) => setFilter({ ...filter, max: bound(e.target.value) })} data-testid="filter-max" /></label>{" "}
              <span className="hint" data-testid="filter-count">{rows.length} of {table.rows.length} shown</span>{" "}
              <button onClick={compare} disabled={selected.length < 2} data-testid="exp-compare">Compare {selected.length} selected</button>
            </div>
            <table className="results" data-testid="results">
              <thead>
                <tr>
                  <th title="select to compare" />
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
                    <td onClick={(e) => e.stopPropagation()}><input type="checkbox" checked={selected.includes(Number(row.trial))} onChange={() => toggle(Number(row.trial))} data-testid={`select-${row.trial}`} /></td>
                    {columns.map((c) => (
                      <td key={c}>
                        {cellText(row[c])}
                        {/* Stop sits in the status cell, in sight however many metric columns follow */}
                        {c === "status" && row.status === "running" ? <>{" "}<button className="stop" onClick={(e) => { e.stopPropagation(); act(`trials/${row.trial}/stop?${query}`); }} data-testid={`stop-trial-${row.trial}`}>Stop</button></> : null}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            {trial ? <TrialDetails key={trial.trial} trial={trial} metric={table.metric} experiment={table.name} store={store} onSaved={() => refresh(table.name)} /> : null}
            {comparing ? <Compare trials={comparing} metric={table.metric} parameters={table.parameters} /> : null}
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

const COLORS = ["#1f5fbf", "#d9641c", "#3a8f4a", "#6a3fb5", "#b5397a", "#1b9aaa", "#8c6d1f", "#555"];

// A uPlot chart of aligned series (x first) in a div; redrawn when the data change.
function Chart({ title, labels, data, testid }: { title: string; labels: string[]; data: (number | null)[][]; testid: string }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!holder.current || data[0].length === 0) return;
    const chart = new uPlot(
      { title, width: 460, height: 230, scales: { x: { time: false } }, series: [{ label: "iteration" }, ...labels.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: data[i + 1].filter((v) => v !== null).length < 30, size: 7, fill: COLORS[i % COLORS.length] } }))] },
      data as uPlot.AlignedData,
      holder.current,
    );
    return () => chart.destroy();
  }, [JSON.stringify([title, labels, data])]); // eslint-disable-line react-hooks/exhaustive-deps
  return <div ref={holder} className="plot" data-testid={testid} />;
}

interface Confusion {
  classes: string[];
  matrix: number[][];
  accuracy: number;
  recall: (number | null)[];
  precision: (number | null)[];
}

// A trial: parameters, final metrics, its training curves (one panel per metric group), the
// validation confusion matrix when the trial stored predictions, and its editable annotation.
function TrialDetails({ trial, metric, experiment, store, onSaved }: { trial: Trial; metric: string; experiment: string; store: string; onSaved: () => void }) {
  const [confusion, setConfusion] = useState<Confusion | null>(null);
  const [confusionNote, setConfusionNote] = useState("");
  const [note, setNote] = useState(trial.annotation);
  const [saved, setSaved] = useState("");
  const base = `/api/experiments/${encodeURIComponent(experiment)}/trials/${trial.trial}`;
  useEffect(() => {
    api<Confusion>(`${base}/confusion?store=${encodeURIComponent(store)}`).then(setConfusion).catch((e) => setConfusionNote(e.message));
  }, [base, store]);
  const names = historyMetrics([trial.history]);
  const losses = names.filter((n) => /loss|error/i.test(n));
  const others = names.filter((n) => !losses.includes(n));
  const save = () =>
    api(`${base}/annotation`, { method: "PUT", body: { text: note, store } })
      .then(() => { setSaved("saved"); onSaved(); })
      .catch((e) => setSaved(e.message));
  const x = trial.history.map((h, i) => h.iteration ?? i + 1);
  const series = (group: string[]) => [x, ...group.map((n) => trial.history.map((h) => h[n] ?? null))];
  const largest = confusion ? Math.max(1, ...confusion.matrix.flat()) : 1;
  return (
    <div className="run-panel" data-testid="trial-details">
      <h3>Trial {trial.trial} · {trial.status} · {metric} = {trial.value === null ? "-" : trial.value.toPrecision(4)}</h3>
      <div>parameters: <code>{JSON.stringify(trial.params)}</code></div>
      <div>final metrics: <code>{JSON.stringify(trial.metrics)}</code></div>
      {trial.error ? <pre className="field-error">{trial.error}</pre> : null}
      <div className="plots">
        {losses.length ? <Chart title="loss" labels={losses} data={series(losses)} testid="trial-loss" /> : null}
        {others.length ? <Chart title={others.some((n) => /accuracy/.test(n)) ? "accuracy" : "metrics"} labels={others} data={series(others)} testid="trial-metrics" /> : null}
        {confusion ? (
          <div data-testid="confusion">
            <div className="hint">validation confusion matrix (rows: true class, columns: predicted) · accuracy {(100 * confusion.accuracy).toFixed(1)}%</div>
            <table className="results confusion">
              <thead><tr><th />{confusion.classes.map((c) => <th key={c}>{c}</th>)}<th>recall</th></tr></thead>
              <tbody>
                {confusion.matrix.map((row, i) => (
                  <tr key={i}>
                    <th>{confusion.classes[i]}</th>
                    {row.map((n, j) => <td key={j} style={{ background: `rgba(${i === j ? "31,95,191" : "217,100,28"},${n === 0 ? 0 : 0.15 + 0.7 * (n / largest)})` }}>{n}</td>)}
                    <td>{confusion.recall[i] === null ? "-" : `${(100 * (confusion.recall[i] as number)).toFixed(0)}%`}</td>
                  </tr>
                ))}
                <tr><th>precision</th>{confusion.precision.map((p, j) => <td key={j}>{p === null ? "-" : `${(100 * p).toFixed(0)}%`}</td>)}<td /></tr>
              </tbody>
            </table>
          </div>
        ) : <div className="hint" data-testid="confusion-none" title={confusionNote}>no confusion matrix: the trial stored no validation predictions</div>}
      </div>
      <label className="field">
        <span>annotation</span>
        <textarea value={note} rows={2} onChange={(e) => { setNote(e.target.value); setSaved(""); }} data-testid="trial-annotation" />
      </label>
      <button onClick={save} disabled={note === trial.annotation && saved === ""} data-testid="trial-annotation-save">Save note</button> <span className="hint" data-testid="trial-annotation-status">{saved}</span>
    </div>
  );
}

// Several trials side by side: their curves of one metric on one plot, and a parallel-
// coordinates plot of their parameters against the experiment's metric.
function Compare({ trials, metric, parameters }: { trials: Trial[]; metric: string; parameters: string[] }) {
  const names = historyMetrics(trials.map((t) => t.history));
  const [shown, setShown] = useState(names.includes(metric) ? metric : names[0] ?? metric);
  const data = alignCurves(trials.map((t) => t.history), shown);
  const valueOf = (t: Trial, name: string) => (name === metric ? t.value : t.params[name]);
  const axes = [...parameters, metric].map((name) => parallelAxis(name, trials.map((t) => valueOf(t, name))));
  const lines = trials.map((t) => linePositions(axes, axes.map((a) => valueOf(t, a.name))));
  const [brushes, setBrushes] = useState<(Brush | null)[]>(axes.map(() => null));
  const [drag, setDrag] = useState<{ axis: number; from: number; to: number } | null>(null);
  const kept = brushedLines(lines, brushes);
  const { width, x: axisX } = parallelLayout(axes);
  // the none mark sits below each axis (at MISSING) and the axis titles below it, clear of it
  const height = 260, top = 20, bottom = 64;
  const ay = (p: number) => top + (1 - p) * (height - top - bottom);
  const position = (event: ReactMouseEvent) => {
    const box = (event.currentTarget as SVGElement).closest("svg")!.getBoundingClientRect();
    return 1 - (event.clientY - box.top - top) / (height - top - bottom);
  };
  const finish = () => {
    if (!drag) return;
    const pad = 4 / (height - top - bottom); // 4 px
    const range = brushBetween(drag.from, drag.to, pad);
    const next = [...brushes];
    next[drag.axis] = range.high - range.low < 0.02 + 2 * pad ? null : range; // a click clears the axis
    setBrushes(next);
    setDrag(null);
  };
  const missing = (i: number) => lines.some((line) => line[i] === MISSING);
  const keptTrials = trials.filter((_, k) => kept[k]).map((t) => t.trial);
  return (
    <div className="run-panel" data-testid="compare">
      <h3>Comparing trials {trials.map((t) => t.trial).join(", ")}</h3>
      <label>metric <select value={shown} onChange={(e) => setShown(e.target.value)} data-testid="compare-metric">{names.map((n) => <option key={n}>{n}</option>)}</select></label>
      <div className="plots">
        <Chart title={`${shown} by trial`} labels={trials.map((t) => `trial ${t.trial}`)} data={data} testid="compare-curves" />
        <div>
          <svg width={width} height={height} className="parallel" data-testid="parallel" onMouseUp={finish} onMouseLeave={finish}
            onMouseMove={(e) => drag && setDrag({ ...drag, to: position(e) })}>
            {trials.map((t, k) => {
              const path = lines[k].map((p, i) => `${i ? "L" : "M"}${axisX[i]},${ay(p)}`).join(" ");
              return (
                <path key={t.trial} d={path} fill="none" stroke={kept[k] ? COLORS[k % COLORS.length] : "#c8ccd2"} strokeWidth={kept[k] ? 2 : 1}
                  className={kept[k] ? "kept" : "brushed-out"} data-testid={`parallel-${t.trial}`}><title>trial {t.trial}</title></path>
              );
            })}
            {axes.map((axis, i) => (
              <g key={axis.name}>
                <line x1={axisX[i]} x2={axisX[i]} y1={ay(0)} y2={ay(1)} stroke="#888" />
                <text x={axisX[i]} y={height - 10} textAnchor="middle" fontSize={11} fontWeight={axis.name === metric ? "bold" : "normal"} className="axis-title" data-testid={`title-${axis.name}`}>
                  {axisTitle(axis.name)}<title>{axis.name}</title>
                </text>
                {axis.ticks.map((t) => <text key={t.label} x={axisX[i] + 4} y={ay(t.at) + 4} fontSize={10} fill="#555">{t.label}</text>)}
                {missing(i) ? <text x={axisX[i] + 4} y={ay(MISSING) + 4} fontSize={10} fill="#999" data-testid={`none-${axis.name}`}>none</text> : null}
                {brushes[i] ? <rect x={axisX[i] - 6} width={12} y={ay(brushes[i]!.high)} height={ay(brushes[i]!.low) - ay(brushes[i]!.high)} fill="#1f5fbf" fillOpacity={0.2} stroke="#1f5fbf" data-testid={`brush-${axis.name}`} /> : null}
                {drag && drag.axis === i ? <rect x={axisX[i] - 6} width={12} y={ay(Math.max(drag.from, drag.to))} height={Math.abs(ay(drag.from) - ay(drag.to))} fill="#1f5fbf" fillOpacity={0.1} /> : null}
                <rect x={axisX[i] - 10} width={20} y={ay(1) - 4} height={ay(MISSING) - ay(1) + 8} fill="transparent" style={{ cursor: "ns-resize" }}
                  onMouseDown={(e) => { const p = position(e); setDrag({ axis: i, from: p, to: p }); }} data-testid={`axis-${axis.name}`} />
              </g>
            ))}
          </svg>
          <div className="hint" data-testid="parallel-kept">
            {brushes.some((b) => b !== null) ? `${keptTrials.length} of ${trials.length} trials in the brushed ranges: ${keptTrials.join(", ") || "none"} ` : "drag along an axis to keep the trials in a range; click the axis to clear it"}
            {brushes.some((b) => b !== null) ? <button onClick={() => setBrushes(axes.map(() => null))} data-testid="parallel-clear">Clear</button> : null}
          </div>
        </div>
      </div>
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
