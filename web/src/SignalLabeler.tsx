import { useEffect, useRef, useState } from "react";
import { api } from "./api";
import { classForKey, regionFromDrag, zoomView } from "./labeler";

interface Region {
  start: number;
  end: number;
  label: string;
}

interface SignalsView {
  folder: string;
  classes: string[];
  sample_rate: number;
  can_undo: boolean;
  signals: { file: string; regions: Region[] }[];
}

interface Wave {
  start: number;
  end: number;
  duration: number;
  min: number[][];
  max: number[][];
}

const WIDTH = 900;
const HEIGHT = 240;
const COLORS = ["rgba(31,95,191,0.25)", "rgba(217,100,28,0.25)", "rgba(58,143,74,0.25)", "rgba(106,63,181,0.25)", "rgba(181,57,122,0.25)"];

// The Labeler's signal mode (MATLAB's Signal Labeler): a waveform drawn as min/max per pixel
// column (the server reduces 10^6 samples to 900 columns), zoom and pan; drag to add a region
// of the current class (keys 1-9), click a region and press Delete to remove it; Undo: Z.
export function SignalLabeler() {
  const [view, setView] = useState<SignalsView | null>(null);
  const [error, setError] = useState("");
  const [current, setCurrent] = useState(0);
  const [wave, setWave] = useState<Wave | null>(null);
  const [window_, setWindow] = useState<{ start: number; end: number } | null>(null);
  const [label, setLabel] = useState("");
  const [drag, setDrag] = useState<{ x0: number; x1: number } | null>(null);
  const [picked, setPicked] = useState<number | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const call = (path: string, body: unknown) =>
    api<SignalsView>(path, { method: "POST", body })
      .then((v) => {
        setView(v);
        setError("");
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    api<SignalsView>("/api/signals")
      .then((v) => {
        setView(v);
        setLabel(v.classes[0] ?? "");
      })
      .catch((e) => setError(e.message));
  }, []);
  const signal = view?.signals[current];
  useEffect(() => {
    if (!signal) return;
    const range = window_ ? `&start=${window_.start}&end=${window_.end}` : "";
    api<Wave>(`/api/signals/waveform?file=${encodeURIComponent(signal.file)}&bins=${WIDTH}${range}`)
      .then(setWave)
      .catch((e) => setError(e.message));
  }, [signal?.file, window_]); // eslint-disable-line react-hooks/exhaustive-deps
  const regions = signal?.regions ?? [];
  useEffect(() => {
    const target = canvas.current;
    if (!target || !wave || !view) return;
    const context = target.getContext("2d")!;
    context.clearRect(0, 0, WIDTH, HEIGHT);
    const toX = (t: number) => ((t - wave.start) / (wave.end - wave.start)) * WIDTH;
    regions.forEach((r, i) => {
      context.fillStyle = COLORS[Math.max(view.classes.indexOf(r.label), 0) % COLORS.length];
      context.fillRect(toX(r.start), 0, toX(r.end) - toX(r.start), HEIGHT);
      context.fillStyle = picked === i ? "#d9641c" : "#333";
      context.fillText(r.label, toX(r.start) + 3, 12);
    });
    if (drag) {
      context.fillStyle = "rgba(0,0,0,0.12)";
      context.fillRect(Math.min(drag.x0, drag.x1), 0, Math.abs(drag.x1 - drag.x0), HEIGHT);
    }
    const channels = wave.min.length;
    const band = HEIGHT / channels;
    context.strokeStyle = "#1f5fbf";
    for (let c = 0; c < channels; c++) {
      const lo = Math.min(...wave.min[c]), hi = Math.max(...wave.max[c]);
      const y = (v: number) => c * band + band - ((v - lo) / (hi - lo || 1)) * (band - 4) - 2;
      const step = WIDTH / wave.min[c].length;
      context.beginPath();
      wave.min[c].forEach((v, i) => {
        context.moveTo(i * step + 0.5, y(v));
        context.lineTo(i * step + 0.5, y(wave.max[c][i]) - 0.5);
      });
      context.stroke();
    }
  }, [wave, regions, drag, picked, view]);
  const save = (next: Region[]) => signal && call("/api/signals/regions", { file: signal.file, regions: next });
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!view) return;
      const name = classForKey(event.key, view.classes);
      if (name !== null) setLabel(name);
      else if ((event.key === "Delete" || event.key === "Backspace") && picked !== null) {
        save(regions.filter((_, i) => i !== picked));
        setPicked(null);
      } else if (event.key === "z" || event.key === "Z") call("/api/signals/undo", {});
      else return;
      event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });
  if (!view) return <div className="labeler">{error || "loading..."}</div>;
  const span = wave ? { start: wave.start, end: wave.end } : { start: 0, end: 1 };
  const x = (e: React.MouseEvent) => e.clientX - canvas.current!.getBoundingClientRect().left;
  const up = () => {
    if (!drag) return;
    const region = regionFromDrag(drag.x0, drag.x1, WIDTH, span, label);
    setDrag(null);
    if (region) return save([...regions, region]);
    const t = span.start + (drag.x0 / WIDTH) * (span.end - span.start); // a click picks a region
    const hit = regions.findIndex((r) => r.start <= t && t <= r.end);
    setPicked(hit >= 0 ? hit : null);
  };
  return (
    <div className="labeler">
      <aside className="label-list">
        <div className="hint">{view.folder} · regions.csv · {view.sample_rate} Hz</div>
        {view.signals.map((s, i) => (
          <div key={s.file} className={"label-item" + (i === current ? " selected" : "")} data-testid={`signal-${i}`}
            onClick={() => { setCurrent(i); setWindow(null); setPicked(null); }}>
            <span>{s.file}</span>
            <span className="badge" data-testid={`regions-of-${i}`}>{s.regions.length} regions</span>
          </div>
        ))}
      </aside>
      <section className="label-main">
        <div className="toolbar">
          <button onClick={() => wave && setWindow(zoomView(span, 0.5, wave.duration))} data-testid="signal-zoom-in">Zoom +</button>
          <button onClick={() => wave && setWindow(zoomView(span, 2, wave.duration))} data-testid="signal-zoom-out">Zoom −</button>
          <button onClick={() => wave && setWindow(zoomView({ start: span.start - (span.end - span.start) / 2, end: span.end - (span.end - span.start) / 2 }, 1, wave.duration))}>◀</button>
          <button onClick={() => wave && setWindow(zoomView({ start: span.start + (span.end - span.start) / 2, end: span.end + (span.end - span.start) / 2 }, 1, wave.duration))}>▶</button>
          <button onClick={() => call("/api/signals/undo", {})} disabled={!view.can_undo} data-testid="signal-undo">Undo (Z)</button>
          <span className="summary" data-testid="signal-window">{span.start.toFixed(2)}–{span.end.toFixed(2)} s of {wave?.duration.toFixed(2)} s</span>
        </div>
        {error ? <div className="message error" data-testid="labeler-error">{error}</div> : null}
        <div className="buttons">
          {view.classes.map((c, i) => (
            <button key={c} onClick={() => setLabel(c)} className={label === c ? "active" : ""} data-testid={`region-class-${c}`}>{i < 9 ? `${i + 1} · ` : ""}{c}</button>
          ))}
        </div>
        <canvas ref={canvas} width={WIDTH} height={HEIGHT} className="signal-canvas" data-testid="signal-canvas"
          onMouseDown={(e) => setDrag({ x0: x(e), x1: x(e) })}
          onMouseMove={(e) => drag && setDrag({ ...drag, x1: x(e) })}
          onMouseUp={up} />
        <table className="results" data-testid="region-table">
          <tbody>
            {regions.map((r, i) => (
              <tr key={i} className={picked === i ? "running" : ""}><td>{r.label}</td><td>{r.start.toFixed(3)} s</td><td>{r.end.toFixed(3)} s</td></tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
