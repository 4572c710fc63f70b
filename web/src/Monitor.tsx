import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api } from "./api";
import { smooth } from "./graph";
import { addEvents, emptySeries, formatSeconds, RunEvent, Series } from "./monitor";

interface RunInfo {
  id: string;
  name: string;
  started: number | null;
  running: boolean;
  stop_requested: boolean;
  stop_reason: string | null;
  iteration: number | null;
  state: "running" | "finished" | "stopped" | "failed";
  error: string | null;
  host: string | null;
}

// The Training Monitor: every run in the runs folder; each shown run gets live plots
// (loss raw and smoothed, validation, accuracy, learning rate), its info and a Stop button.
export function Monitor() {
  const [runs, setRuns] = useState<RunInfo[]>([]);
  const [folder, setFolder] = useState("");
  const [shown, setShown] = useState<string[] | null>(null);
  useEffect(() => {
    const poll = () =>
      api<{ folder: string; runs: RunInfo[] }>("/api/runs").then((r) => {
        setRuns(r.runs);
        setFolder(r.folder);
      });
    void poll();
    const timer = setInterval(poll, 1000);
    return () => clearInterval(timer);
  }, []);
  const visible = shown ?? runs.slice(0, 4).map((r) => r.id);
  const toggle = (id: string) => setShown(visible.includes(id) ? visible.filter((v) => v !== id) : [...visible, id]);
  return (
    <div className="monitor" data-testid="monitor">
      <aside className="runs">
        <h3>Runs</h3>
        <p className="hint">in <code>{folder}</code>; add <code>TrainingMonitorLog()</code> to <code>TrainingOptions(callbacks=...)</code>.</p>
        <ul>
          {runs.map((r) => (
            <li key={r.id} data-testid={`run-${r.name}`}>
              <label>
                <input type="checkbox" checked={visible.includes(r.id)} onChange={() => toggle(r.id)} />
                {r.name} <span className={`run-state ${r.state}`} data-testid={`state-${r.name}`}>{r.state}</span>
              </label>
            </li>
          ))}
        </ul>
      </aside>
      <section className="run-panels">
        {runs.filter((r) => visible.includes(r.id)).map((r) => (
          <RunPanel key={r.id} run={r} />
        ))}
        {runs.length === 0 ? <p className="hint">No training runs yet.</p> : null}
      </section>
    </div>
  );
}

function RunPanel({ run }: { run: RunInfo }) {
  const [series, setSeries] = useState<Series>(emptySeries());
  const [last, setLast] = useState<RunEvent | null>(null);
  const [end, setEnd] = useState<RunEvent | null>(null);
  const next = useRef(0);
  useEffect(() => {
    let active = true;
    const poll = async () => {
      const r = await api<{ events: RunEvent[]; next: number }>(`/api/runs/${run.id}/events?since=${next.current}`);
      if (!active || r.events.length === 0) return;
      next.current = r.next;
      setSeries((s) => addEvents(s, r.events));
      const iterations = r.events.filter((e) => e.event === "iteration");
      if (iterations.length) setLast(iterations[iterations.length - 1]);
      const ended = r.events.find((e) => e.event === "end");
      if (ended) setEnd(ended);
    };
    void poll();
    const timer = setInterval(() => void poll(), 700);
    return () => {
      active = false;
      clearInterval(timer);
    };
  }, [run.id]);
  const x = series.iterations;
  const live = run.state === "running";
  const hasAccuracy = series.accuracy.some((v) => v !== null);
  return (
    <div className="run-panel" data-testid={`panel-${run.name}`}>
      <div className="run-head">
        <h3>{run.name}</h3>
        <span className="info" data-testid={`info-${run.name}`}>
          epoch {last?.epoch ?? "-"}/{last?.max_epochs ?? "-"} · iteration {(live ? last?.iteration : run.iteration) ?? "-"}/{last?.total_iterations ?? "-"} · elapsed {formatSeconds(last?.elapsed)}
          {live ? ` · remaining ${formatSeconds(last?.remaining)}` : ""} · {last?.device ?? ""}{run.host ? ` on ${run.host}` : ""}
        </span>
        {!live || end ? (
          <span className={`ended ${run.state}`} data-testid={`ended-${run.name}`}>
            {run.state} at iteration {run.iteration ?? "-"}{run.state === "failed" ? `: ${run.error ?? ""}` : (run.stop_reason ?? end?.stop_reason) ? `: ${run.stop_reason ?? end?.stop_reason}` : ""}
          </span>
        ) : (
          <button className="stop" disabled={run.stop_requested} onClick={() => api(`/api/runs/${run.id}/stop`, { method: "POST" })} data-testid={`stop-${run.name}`}>
            {run.stop_requested ? "Stopping…" : "Stop"}
          </button>
        )}
      </div>
      <div className="plots">
        <Plot title="Loss" x={x} data={[series.loss, smooth(series.loss), series.validationLoss]} labels={["loss", "smoothed", "validation"]} colors={["#9fb8e0", "#1f5fbf", "#111"]} points={[false, false, true]} testid={`plot-loss-${run.name}`} />
        {hasAccuracy ? (
          <Plot title="Accuracy" x={x} data={[series.accuracy, smooth(series.accuracy), series.validationAccuracy]} labels={["accuracy", "smoothed", "validation"]} colors={["#f0b48a", "#d9641c", "#111"]} points={[false, false, true]} testid={`plot-accuracy-${run.name}`} />
        ) : null}
        <Plot title="Learning rate" x={x} data={[series.learnRate]} labels={["learn rate"]} colors={["#3a8f4a"]} points={[false]} testid={`plot-lr-${run.name}`} />
      </div>
      <div className="points" data-testid={`points-${run.name}`} data-count={x.length} hidden />
    </div>
  );
}

function Plot(props: {
  title: string;
  x: number[];
  data: (number | null)[][];
  labels: string[];
  colors: string[];
  points: boolean[];
  testid: string;
}) {
  const holder = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!holder.current) return;
    const options: uPlot.Options = {
      title: props.title,
      width: 380,
      height: 220,
      scales: { x: { time: false } },
      series: [
        { label: "iteration" },
        ...props.labels.map((label, i) => ({
          label,
          stroke: props.colors[i],
          width: props.points[i] ? 0 : 1.5,
          spanGaps: !props.points[i],
          points: { show: props.points[i], size: 7, fill: props.colors[i] },
        })),
      ],
    };
    chart.current = new uPlot(options, [props.x, ...props.data] as uPlot.AlignedData, holder.current);
    return () => chart.current?.destroy();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    chart.current?.setData([props.x, ...props.data] as uPlot.AlignedData);
  }, [props.x, props.data]);
  return <div ref={holder} className="plot" data-testid={props.testid} />;
}
