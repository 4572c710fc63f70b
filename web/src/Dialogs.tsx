import { useEffect, useState } from "react";
import { api } from "./api";
import { Graph } from "./graph";

interface FileEntry {
  name: string;
  folder: boolean;
  path: string;
}

type Run = (path: string, body?: unknown) => Promise<Graph | null>;

// Open: a model file or saved-network folder inside the app's root, or an upload.
export function FilesDialog({ onClose, run, onGraph }: { onClose: () => void; run: Run; onGraph: (g: Graph) => void }) {
  const [folder, setFolder] = useState(".");
  const [entries, setEntries] = useState<FileEntry[]>([]);
  const [error, setError] = useState("");
  useEffect(() => {
    api<{ entries: FileEntry[] }>(`/api/files?folder=${encodeURIComponent(folder)}`)
      .then((r) => setEntries(r.entries))
      .catch((e) => setError(e.message));
  }, [folder]);
  const open = async (path: string) => {
    if (await run("/api/open", { path })) onClose();
  };
  const upload = async (file: File) => {
    try {
      onGraph(await api<Graph>(`/api/upload?filename=${encodeURIComponent(file.name)}`, { method: "POST", raw: file }));
    } catch (e) {
      setError((e as Error).message);
      return;
    }
    onClose();
  };
  return (
    <div className="dialog" data-testid="open-dialog">
      <h3>Open a network</h3>
      <p>Folder: <code>{folder}</code> {folder !== "." ? <button onClick={() => setFolder(".")}>top</button> : null}</p>
      <ul className="files">
        {entries.map((e) => (
          <li key={e.path}>
            <a onClick={() => (e.folder && !e.name.endsWith(".zip") ? setFolder(e.path) : open(e.path))}>{e.folder ? "📁 " : ""}{e.name}</a>
            {e.folder ? <button onClick={() => open(e.path)}>open as saved network</button> : null}
          </li>
        ))}
      </ul>
      <p>or upload: <input type="file" accept=".zip,.onnx,.keras,.h5" onChange={(e) => e.target.files?.[0] && upload(e.target.files[0])} /></p>
      {error ? <div className="field-error">{error}</div> : null}
      <button onClick={onClose}>Close</button>
    </div>
  );
}

interface PretrainedModel {
  name: string;
  family: string;
  parameters: number | null;
  input_size: number[];
  top1: number | null;
  cached: boolean;
}

// Start from a pretrained architecture of the hub: with its weights when the cache has them,
// else with random weights (the server says where the weights file goes).
export function PretrainedDialog({ onClose, run }: { onClose: () => void; run: Run }) {
  const [models, setModels] = useState<PretrainedModel[]>([]);
  const [cache, setCache] = useState("");
  const [search, setSearch] = useState("");
  const [error, setError] = useState("");
  useEffect(() => {
    api<{ models: PretrainedModel[]; cache: string }>("/api/pretrained")
      .then((r) => {
        setModels(r.models);
        setCache(r.cache);
      })
      .catch((e) => setError(e.message));
  }, []);
  const shown = models.filter((m) => `${m.name} ${m.family}`.toLowerCase().includes(search.toLowerCase()));
  const open = async (name: string) => {
    if (await run("/api/pretrained", { name })) onClose();
  };
  return (
    <div className="dialog pretrained" data-testid="pretrained-dialog">
      <h3>Start from a pretrained network</h3>
      <p className="hint">Weights come from the cache <code>{cache}</code>; architectures without cached weights open with random weights.</p>
      <input placeholder="search" value={search} onChange={(e) => setSearch(e.target.value)} data-testid="pretrained-search" />
      <table className="results">
        <thead><tr><th>name</th><th>family</th><th>parameters</th><th>input</th><th>top-1</th><th>weights</th></tr></thead>
        <tbody>
          {shown.map((m) => (
            <tr key={m.name} onClick={() => open(m.name)} data-testid={`pretrained-${m.name}`}>
              <td><a className="link">{m.name}</a></td>
              <td>{m.family}</td>
              <td>{m.parameters === null ? "" : `${(m.parameters / 1e6).toFixed(1)} M`}</td>
              <td>{m.input_size.join("×")}</td>
              <td>{m.top1 === null ? "" : `${m.top1}%`}</td>
              <td>{m.cached ? "cached" : "random"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {error ? <div className="field-error">{error}</div> : null}
      <button onClick={onClose}>Close</button>
    </div>
  );
}

// Save as a toolbox file (.zip), ONNX or Python code, inside the app's root.
export function SaveDialog({ onClose }: { onClose: () => void }) {
  const [path, setPath] = useState("network.zip");
  const [format, setFormat] = useState("toolbox");
  const [result, setResult] = useState("");
  const save = async () => {
    try {
      const r = await api<{ path: string }>("/api/save", { body: { path, format } });
      setResult(`saved ${r.path}`);
    } catch (e) {
      setResult((e as Error).message);
    }
  };
  return (
    <div className="dialog" data-testid="save-dialog">
      <h3>Save the network</h3>
      <label className="field"><span>path (inside the app's folder)</span><input value={path} onChange={(e) => setPath(e.target.value)} data-testid="save-path" /></label>
      <label className="field">
        <span>format</span>
        <select value={format} onChange={(e) => {
          setFormat(e.target.value);
          setPath(path.replace(/\.(zip|onnx|py)$/, { toolbox: ".zip", onnx: ".onnx", python: ".py" }[e.target.value]!));
        }} data-testid="save-format">
          <option value="toolbox">toolbox file (.zip)</option>
          <option value="onnx">ONNX</option>
          <option value="python">Python code</option>
        </select>
      </label>
      <button onClick={save} data-testid="save-confirm">Save</button> <button onClick={onClose}>Close</button>
      <p data-testid="save-result">{result}</p>
    </div>
  );
}

// Python code that rebuilds the network (to_python), to copy or download.
export function CodeDialog({ onClose }: { onClose: () => void }) {
  const [code, setCode] = useState("");
  useEffect(() => {
    api<{ code: string }>("/api/python").then((r) => setCode(r.code));
  }, []);
  const href = URL.createObjectURL(new Blob([code], { type: "text/x-python" }));
  return (
    <div className="dialog wide" data-testid="code-dialog">
      <h3>Python code that rebuilds this network</h3>
      <textarea readOnly value={code} data-testid="python-code" />
      <a href={href} download="build_network.py">Download</a> <button onClick={onClose}>Close</button>
    </div>
  );
}
