import { useEffect, useRef, useState } from "react";
import { api, token } from "./api";
import { SignalLabeler } from "./SignalLabeler";
import { Box, Corner, boxFromDrag, classForKey, corners, fillPolygon, fromBase64, moveBox, pageAction, paintDisc, resizeBox, selectImages, toBase64 } from "./labeler";

interface ImageInfo {
  file: string;
  label: string | null;
  boxes: Box[];
}

interface View {
  folder: string;
  mode: string;
  classes: string[];
  images: ImageInfo[];
  can_undo: boolean;
  can_redo: boolean;
  label_file: string;
  mask_classes: string[];
  masks: string[];
  proposals: Proposal[];
  proposal_status: string;  // what the last network run proposed ("" when none ran)
  proposal_notes: Record<string, string>;  // file: why the network proposed nothing for it
}

interface Proposal {
  file: string;
  kind?: "label" | "boxes" | "mask";
  label?: string;
  boxes?: (Box & { score: number })[];
  classes?: string[];
  confidence: number;
  source: string;
  given?: string;
}

// What a proposal says, in its list entry.
function describeProposal(p: Proposal): string {
  if (p.kind === "boxes") return `${p.boxes?.length ?? 0} boxes`;
  if (p.kind === "mask") return `mask: ${(p.classes ?? []).join(", ")}`;
  return "";
}

const MASK_COLORS = [[0, 0, 0, 0], [31, 95, 191, 140], [217, 100, 28, 140], [58, 143, 74, 140], [106, 63, 181, 140], [181, 57, 122, 140], [200, 180, 30, 140], [30, 170, 190, 140], [120, 120, 120, 140], [230, 60, 60, 140]];

type Point = { x: number; y: number };
type Drag =
  | { kind: "draw"; start: Point; end: Point }
  | { kind: "move"; index: number; start: Point; end: Point }
  | { kind: "resize"; index: number; corner: Corner; start: Point; end: Point };

// The Labeler page (MATLAB's Image Labeler): the folder's images, one shown with zoom; class
// buttons (keys 1-9) label the selected images (Ctrl/Shift-click selects several), saved at
// once to class folders or labels.csv; in Boxes mode, drag to draw a box of the current class,
// drag a box to move it, Delete removes the selected one (saved as COCO boxes.json). Undo: Z.
export function Labeler() {
  const [signals, setSignals] = useState<boolean | null>(null);
  useEffect(() => {
    api<{ active: boolean }>("/api/signals")
      .then((r) => setSignals(r.active))
      .catch(() => setSignals(false));
  }, []);
  if (signals === null) return <div className="labeler">loading...</div>;
  return signals ? <SignalLabeler /> : <ImageLabeler />;
}

function ImageLabeler() {
  const [view, setView] = useState<View | null>(null);
  const [error, setError] = useState("");
  const [current, setCurrent] = useState(0);
  const [selected, setSelected] = useState<string[]>([]);
  const [anchor, setAnchor] = useState<string | null>(null);
  const [zoom, setZoom] = useState(1);
  const [tool, setTool] = useState<"classes" | "boxes" | "mask">("classes");
  const [brush, setBrush] = useState<"brush" | "polygon">("brush");
  const [radius, setRadius] = useState(3);
  const [maskValue, setMaskValue] = useState(1);
  const [points, setPoints] = useState<{ x: number; y: number }[]>([]);
  const [painting, setPainting] = useState(false);
  const [maskVersion, setMaskVersion] = useState(0);
  const mask = useRef<Uint8Array | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [boxClass, setBoxClass] = useState("");
  const [size, setSize] = useState({ width: 0, height: 0 });
  const [drag, setDrag] = useState<Drag | null>(null);
  const [picked, setPicked] = useState<number | null>(null);
  const [newClass, setNewClass] = useState("");
  // the proposal of the shown image, as edited so far (a draft: saved only by Accept)
  const [draft, setDraft] = useState<{ file: string; boxes: Box[] } | null>(null);
  const [classDrafts, setClassDrafts] = useState<Record<string, string>>({});
  const proposalMask = useRef<{ file: string; mask: Uint8Array; edited: boolean } | null>(null);
  const overlay = useRef<HTMLCanvasElement>(null);
  const surface = useRef<HTMLDivElement>(null);
  const call = (path: string, body: unknown) =>
    api<View>(path, { method: "POST", body })
      .then((v) => {
        setView(v);
        setError("");
        return v;
      })
      .catch((e) => {
        setError(e.message);
        return null;
      });
  useEffect(() => {
    api<View>("/api/labeler")
      .then((v) => {
        setView(v);
        if (v.images.length) setSelected([v.images[0].file]);
        setBoxClass(v.classes[0] ?? "");
      })
      .catch((e) => setError(e.message));
  }, []);
  const image = view?.images[Math.min(current, (view?.images.length ?? 1) - 1)];
  const proposal = view?.proposals.find((p) => p.file === image?.file);
  useEffect(() => {  // a box proposal becomes the draft of its image; a mask one is fetched
    setDraft(proposal?.kind === "boxes" ? { file: proposal.file, boxes: (proposal.boxes ?? []).map((b) => ({ ...b })) } : null);
    proposalMask.current = null;
    setMaskVersion((v) => v + 1);
    if (proposal?.kind !== "mask") return;
    api<{ mask: string }>(`/api/labeler/proposals/mask?file=${encodeURIComponent(proposal.file)}`)
      .then((m) => {
        proposalMask.current = { file: proposal.file, mask: fromBase64(m.mask), edited: false };
        if (tool === "mask") mask.current = proposalMask.current.mask;
        setMaskVersion((v) => v + 1);
      })
      .catch((e) => setError(e.message));
  }, [proposal?.file, proposal?.kind, proposal?.confidence]); // eslint-disable-line react-hooks/exhaustive-deps
  const scale = size.width ? (zoom * 480) / Math.max(size.width, size.height) : 1;
  const show = (index: number, files?: string[]) => {
    if (!view || index < 0 || index >= view.images.length) return;
    setCurrent(index);
    setPicked(null);
    setSelected(files ?? [view.images[index].file]);
    setAnchor(view.images[index].file);
  };
  const label = (name: string) => {
    if (!view || !selected.length) return;
    const last = Math.max(...selected.map((f) => view.images.findIndex((im) => im.file === f)));
    const count = selected.length;
    call("/api/labeler/label", { files: selected, label: name }).then((v) => {
      if (!v) return;
      // class folders move files: follow the image by its name, then go to the next one
      const next = Math.min(last + 1, v.images.length - 1);
      setCurrent(count === 1 ? next : last);
      setSelected([v.images[count === 1 ? next : last].file]);
    });
  };
  useEffect(() => {
    mask.current = null;
    setPoints([]);
    if (tool !== "mask" || !image) return;
    if (proposalMask.current?.file === image.file) {  // repaint the proposed mask (a draft)
      mask.current = proposalMask.current.mask;
      setMaskVersion((v) => v + 1);
      return;
    }
    api<{ width: number; height: number; mask: string | null }>(`/api/labeler/mask?file=${encodeURIComponent(image.file)}`)
      .then((m) => {
        mask.current = m.mask ? fromBase64(m.mask) : new Uint8Array(m.width * m.height);
        setMaskVersion((v) => v + 1);
      })
      .catch((e) => setError(e.message));
  }, [image?.file, tool]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    const target = canvas.current;
    if (!target || !mask.current || !size.width) return;
    const context = target.getContext("2d")!;
    const pixels = context.createImageData(size.width, size.height);
    mask.current.forEach((v, i) => pixels.data.set(MASK_COLORS[v % MASK_COLORS.length], 4 * i));
    context.putImageData(pixels, 0, 0);
    context.fillStyle = "#d9641c";
    points.forEach((p) => context.fillRect(p.x - 0.5, p.y - 0.5, 1, 1));
  }, [maskVersion, size, points, tool]);
  useEffect(() => {  // a proposed mask, translucent over the image (outside Mask mode)
    const target = overlay.current;
    const proposed = proposalMask.current;
    if (!target || !proposed || !size.width || proposed.mask.length !== size.width * size.height) return;
    const context = target.getContext("2d")!;
    const pixels = context.createImageData(size.width, size.height);
    proposed.mask.forEach((v, i) => pixels.data.set(MASK_COLORS[v % MASK_COLORS.length], 4 * i));
    context.putImageData(pixels, 0, 0);
  }, [maskVersion, size, tool]);
  const saveMask = () => {
    if (!image || !mask.current) return;
    if (proposalMask.current?.file === image.file && mask.current === proposalMask.current.mask) {
      proposalMask.current.edited = true;  // a draft: Accept saves it
      return;
    }
    call("/api/labeler/mask", { file: image.file, mask: toBase64(mask.current) });
  };
  const closePolygon = () => {
    if (!mask.current || points.length < 3) return;
    fillPolygon(mask.current, size.width, size.height, points, maskValue);
    setPoints([]);
    setMaskVersion((v) => v + 1);
    saveMask();
  };
  const paintAt = (p: { x: number; y: number }) => {
    if (!mask.current) return;
    paintDisc(mask.current, size.width, size.height, p.x / scale, p.y / scale, radius, maskValue);
    setMaskVersion((v) => v + 1);
  };
  const editingDraft = draft !== null && draft.file === image?.file;
  const saveBoxes = (boxes: Box[]) => {
    if (!image) return;
    if (editingDraft) setDraft({ file: image.file, boxes });  // a draft: Accept saves it
    else call("/api/labeler/boxes", { file: image.file, boxes });
  };
  const undo = () => call("/api/labeler/undo", {});
  const redo = () => call("/api/labeler/redo", {});
  const accept = (p: Proposal) => {
    const body: Record<string, unknown> = { file: p.file };
    if (p.kind === "boxes" && draft?.file === p.file) body.boxes = draft.boxes.map(({ x, y, width, height, label }) => ({ x, y, width, height, label }));
    if (p.kind === "mask" && proposalMask.current?.file === p.file && proposalMask.current.edited) body.mask = toBase64(proposalMask.current.mask);
    if ((p.kind ?? "label") === "label" && classDrafts[p.file]) body.label = classDrafts[p.file];
    call("/api/labeler/proposals/accept", body);
  };
  const reject = (p: Proposal) => call("/api/labeler/proposals/decide", { file: p.file, accept: false });
  const boxesShown = editingDraft ? draft!.boxes : image?.boxes ?? [];
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!view || ["INPUT", "SELECT"].includes((event.target as HTMLElement).tagName)) return;
      const name = classForKey(event.key, view.classes);
      const action = pageAction(event);
      if (tool === "mask" && /^[0-9]$/.test(event.key)) setMaskValue(Math.min(Number(event.key), view.mask_classes.length - 1));
      else if (tool === "mask" && event.key === "Enter") closePolygon();
      else if (name !== null && tool === "classes") label(name);
      else if (name !== null && picked !== null && picked < boxesShown.length) {  // the selected box's class
        setBoxClass(name);
        saveBoxes(boxesShown.map((b, i) => (i === picked ? { ...b, label: name } : b)));
      } else if (name !== null) setBoxClass(name);
      else if (action === "next") show(current + 1);
      else if (action === "previous") show(current - 1);
      else if (action === "undo") undo();
      else if (action === "redo") redo();
      else if ((event.key === "Delete" || event.key === "Backspace") && picked !== null && image) {
        saveBoxes(boxesShown.filter((_, i) => i !== picked));
        setPicked(null);
      } else return;
      event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });
  if (!view) return <div className="labeler">{error ? <div className="message error" data-testid="labeler-error">{error}</div> : "loading..."}</div>;
  const at = (event: React.MouseEvent) => {
    const rect = surface.current!.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  };
  const drawn = drag?.kind === "draw" ? boxFromDrag(drag.start, drag.end, scale, size, boxClass) : null;
  const shown = boxesShown.map((b, i) => {
    if (drag?.kind === "move" && drag.index === i) return moveBox(b, drag.end.x - drag.start.x, drag.end.y - drag.start.y, scale, size);
    if (drag?.kind === "resize" && drag.index === i) return resizeBox(b, drag.corner, drag.end.x - drag.start.x, drag.end.y - drag.start.y, scale, size);
    return b;
  });
  const finish = () => {
    if (!drag || !image) return;
    if (drag.kind === "draw" && drawn) saveBoxes([...boxesShown, drawn]);
    if (drag.kind !== "draw" && (drag.end.x !== drag.start.x || drag.end.y !== drag.start.y)) saveBoxes(shown);
    setDrag(null);
  };
  const counts = view.classes.map((c) => view.images.filter((im) => im.label === c).length);
  return (
    <div className="labeler">
      <aside className="label-list" data-testid="label-list">
        <div className="hint">{view.folder} · {view.mode === "csv" ? view.label_file : "class folders"}</div>
        {view.images.map((im, i) => (
          <div
            key={im.file}
            className={"label-item" + (selected.includes(im.file) ? " selected" : "") + (i === current ? " current" : "")}
            data-testid={`image-${i}`}
            onClick={(e) => {
              const files = selectImages(selected, im.file, view.images.map((x) => x.file), anchor, { toggle: e.ctrlKey || e.metaKey, range: e.shiftKey });
              setCurrent(i);
              setSelected(files);
              if (!e.shiftKey) setAnchor(im.file);
            }}
          >
            <span>{im.file}</span>
            <span className="badge" data-testid={`label-of-${i}`}>{im.label ?? "—"}{im.boxes.length ? ` · ${im.boxes.length} boxes` : ""}{view.masks.includes(im.file) ? " · mask" : ""}</span>
          </div>
        ))}
      </aside>
      <section className="label-main">
        <div className="toolbar">
          <button onClick={() => setTool("classes")} className={tool === "classes" ? "active" : ""} data-testid="tool-classes">Classes</button>
          <button onClick={() => setTool("boxes")} className={tool === "boxes" ? "active" : ""} data-testid="tool-boxes">Boxes</button>
          <button onClick={() => setTool("mask")} className={tool === "mask" ? "active" : ""} data-testid="tool-mask">Mask</button>
          <button onClick={() => setZoom(zoom * 1.25)} data-testid="zoom-in">Zoom +</button>
          <button onClick={() => setZoom(zoom / 1.25)} data-testid="zoom-out">Zoom −</button>
          <button onClick={undo} disabled={!view.can_undo} data-testid="label-undo">Undo (Z)</button>
          <button onClick={redo} disabled={!view.can_redo} data-testid="label-redo">Redo (Ctrl+Y)</button>
          <span className="summary">{selected.length} selected · {image?.file}</span>
        </div>
        {error ? <div className="message error" data-testid="labeler-error">{error}</div> : null}
        {image && !proposal && view.proposal_notes[image.file] ? (
          <div className="message note" data-testid="no-proposal-note">{view.proposal_notes[image.file]}.</div>
        ) : null}
        {tool === "mask" ? (
          <div className="buttons" data-testid="mask-tools">
            <button onClick={() => setBrush("brush")} className={brush === "brush" ? "active" : ""} data-testid="mask-brush">Brush</button>
            <button onClick={() => setBrush("polygon")} className={brush === "polygon" ? "active" : ""} data-testid="mask-polygon">Polygon (Enter closes)</button>
            <label>radius <input type="number" min={1} max={50} value={radius} onChange={(e) => setRadius(Number(e.target.value))} data-testid="mask-radius" /></label>
            {view.mask_classes.map((c, i) => (
              <button key={c} onClick={() => setMaskValue(i)} className={maskValue === i ? "active" : ""} data-testid={`mask-class-${c}`}>
                {i} · {c}
              </button>
            ))}
          </div>
        ) : null}
        <div className="buttons">
          {view.classes.map((c, i) => (
            <button key={c} onClick={() => (tool === "classes" ? label(c) : setBoxClass(c))} className={tool === "boxes" && boxClass === c ? "active" : ""} data-testid={`class-${c}`}>
              {i < 9 ? `${i + 1} · ` : ""}{c} ({counts[i]})
            </button>
          ))}
          <input value={newClass} placeholder="new class" onChange={(e) => setNewClass(e.target.value)} data-testid="new-class" />
          <button onClick={() => call("/api/labeler/classes", { name: newClass }).then(() => setNewClass(""))} data-testid="add-class">Add class</button>
        </div>
        {image ? (
          <div className="label-canvas">
            <div
              ref={surface}
              className="label-surface"
              data-testid="label-surface"
              style={{ width: size.width * scale, height: size.height * scale, cursor: tool === "boxes" ? "crosshair" : "default" }}
              onMouseDown={(e) => {
                if (tool === "boxes") setDrag({ kind: "draw", start: at(e), end: at(e) });
                else if (tool === "mask" && brush === "brush") {
                  setPainting(true);
                  paintAt(at(e));
                } else if (tool === "mask") {
                  const p = at(e);
                  setPoints([...points, { x: p.x / scale, y: p.y / scale }]);
                }
              }}
              onMouseMove={(e) => (drag ? setDrag({ ...drag, end: at(e) }) : painting && paintAt(at(e)))}
              onMouseUp={() => {
                if (painting) {
                  setPainting(false);
                  saveMask();
                } else finish();
              }}
              onDoubleClick={() => tool === "mask" && brush === "polygon" && closePolygon()}
            >
              <img
                src={`/api/labeler/image?file=${encodeURIComponent(image.file)}&token=${encodeURIComponent(token)}`}
                onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
                style={{ width: size.width * scale, height: size.height * scale, imageRendering: "pixelated" }}
                draggable={false}
                data-testid="label-image"
              />
              {tool !== "mask" && proposal?.kind === "mask" ? (
                <canvas ref={overlay} width={size.width} height={size.height} className="label-mask label-proposed" data-testid="proposed-mask"
                  style={{ width: size.width * scale, height: size.height * scale }} />
              ) : null}
              {tool === "mask" ? (
                <canvas ref={canvas} width={size.width} height={size.height} className="label-mask" data-testid="label-mask"
                  style={{ width: size.width * scale, height: size.height * scale }} />
              ) : null}
              <svg className="label-boxes" width={size.width * scale} height={size.height * scale}>
                {[...shown, ...(drawn ? [drawn] : [])].map((b, i) => (
                  <g key={i} data-testid={`box-${i}`}
                    onMouseDown={(e) => {
                      if (tool !== "boxes" || i >= shown.length) return;
                      e.stopPropagation();
                      setPicked(i);
                      setDrag({ kind: "move", index: i, start: at(e), end: at(e) });
                    }}>
                    <rect x={b.x * scale} y={b.y * scale} width={b.width * scale} height={b.height * scale}
                      className={(picked === i ? "picked" : "") + (editingDraft ? " proposed" : "")} />
                    <text x={b.x * scale + 3} y={b.y * scale + 12}>
                      {b.label}{editingDraft && "score" in b ? ` ${(b as Box & { score: number }).score.toFixed(2)}` : ""}
                    </text>
                    {tool === "boxes" && picked === i && i < shown.length
                      ? corners(b, scale).map((c) => (
                          <rect key={c.corner} x={c.x - 4} y={c.y - 4} width={8} height={8} className="handle" data-testid={`handle-${i}-${c.corner}`}
                            onMouseDown={(e) => {
                              e.stopPropagation();
                              setDrag({ kind: "resize", index: i, corner: c.corner, start: at(e), end: at(e) });
                            }} />
                        ))
                      : null}
                  </g>
                ))}
              </svg>
            </div>
          </div>
        ) : (
          <div className="hint">No images in this folder.</div>
        )}
      </section>
      {view.proposals.length || view.proposal_status ? (
        <aside className="label-proposals" data-testid="proposals">
          <h3>Proposals ({view.proposals.length}) · least confident first</h3>
          {view.proposal_status ? <div className="hint" data-testid="proposals-status">{view.proposal_status}</div> : null}
          {view.proposals.map((p, i) => (
            <div key={p.file} className="label-item" data-testid={`proposal-${i}`}>
              <span onClick={() => show(view.images.findIndex((im) => im.file === p.file))} className="link" data-testid={`show-proposal-${i}`}>
                {p.file}: {p.given ? `${p.given} → ` : ""}
                {(p.kind ?? "label") === "label" ? (
                  <select value={classDrafts[p.file] ?? p.label} onClick={(e) => e.stopPropagation()}
                    onChange={(e) => setClassDrafts({ ...classDrafts, [p.file]: e.target.value })} data-testid={`class-of-proposal-${i}`}>
                    {[...new Set([p.label ?? "", ...view.classes])].map((c) => <option key={c} value={c}>{c}</option>)}
                  </select>
                ) : (
                  <b>{describeProposal(p)}</b>
                )}{" "}
                ({p.source === "label issue" ? `quality ${p.confidence.toFixed(2)}` : `${(100 * p.confidence).toFixed(0)}%`})
              </span>
              <span>
                <button onClick={() => accept(p)} data-testid={`accept-${i}`}>Accept</button>
                <button onClick={() => reject(p)} data-testid={`reject-${i}`}>Reject</button>
              </span>
            </div>
          ))}
        </aside>
      ) : null}
    </div>
  );
}
