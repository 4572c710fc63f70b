import { useEffect, useState } from "react";
import { fieldText, formatShape, Graph, GraphLayer, parseField } from "./graph";
import { LibraryEntry, LibraryField } from "./Palette";
import { ApiError } from "./api";

type Edit = (request: Record<string, unknown>) => Promise<Graph | null>;

// Properties of the selected layer (validated by the server: its errors show next to the
// field), its sizes and issues, and the transfer-learning edits.
export function SidePanel(props: {
  graph: Graph | null;
  layer: GraphLayer | null;
  library: LibraryEntry[];
  edit: Edit;
  editStrict: (request: Record<string, unknown>) => Promise<Graph>;
  rename: (from: string, to: string) => Promise<Graph | null>;
}) {
  const { graph, layer, library, edit, editStrict, rename } = props;
  return (
    <aside className="side" data-testid="side-panel">
      {layer ? (
        <LayerProperties key={layer.name} layer={layer} entry={library.find((e) => e.type === layer.type)} edit={edit} editStrict={editStrict} rename={rename} />
      ) : (
        <p className="hint">Select a layer to edit its properties. Drag layers from the library onto the canvas; connect an output port (bottom) to an input port (top).</p>
      )}
      {graph ? <TransferLearning graph={graph} selected={layer?.name ?? null} edit={edit} /> : null}
    </aside>
  );
}

function LayerProperties({ layer, entry, edit, editStrict, rename }: {
  layer: GraphLayer;
  entry: LibraryEntry | undefined;
  edit: Edit;
  editStrict: (request: Record<string, unknown>) => Promise<Graph>;
  rename: (from: string, to: string) => Promise<Graph | null>;
}) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [name, setName] = useState(layer.name);
  useEffect(() => setName(layer.name), [layer.name]);

  const setField = async (field: LibraryField, text: string) => {
    const value = parseField(field.kind, text, field.required);
    try {
      await editStrict({ op: "set", name: layer.name, config: { [field.name]: value } });
    } catch (err) {
      setErrors((e) => ({ ...e, [field.name]: (err as ApiError).message }));
      return;
    }
    setErrors((e) => ({ ...e, [field.name]: "" }));
  };

  return (
    <div className="properties" data-testid="properties">
      <h3>{layer.type}</h3>
      <label className="field">
        <span>name</span>
        <input
          value={name}
          data-testid="prop-name"
          onChange={(e) => setName(e.target.value)}
          onKeyDown={(e) => e.key === "Enter" && name !== layer.name && rename(layer.name, name)}
          onBlur={() => name !== layer.name && rename(layer.name, name)}
        />
      </label>
      {(entry?.fields ?? []).map((field) => (
        <FieldEditor key={field.name} field={field} value={layer.config?.[field.name]} error={errors[field.name]} onCommit={(t) => setField(field, t)} />
      ))}
      <div className="facts">
        <div>input: {layer.input_sizes.map(formatShape).join(", ") || "-"}</div>
        <div data-testid="prop-output-size">output: {formatShape(layer.output_size)}</div>
        <div data-testid="prop-learnables">
          learnables: {layer.learnables === null ? "– (unknown until the input size is known)" : layer.learnables.toLocaleString()}
        </div>
      </div>
      {layer.issues.map((issue, i) => (
        <div key={i} className={`issue ${issue.severity}`}>{issue.message}</div>
      ))}
      <div className="buttons">
        <button onClick={() => edit({ op: "duplicate", name: layer.name })} data-testid="duplicate">Duplicate</button>
        <button onClick={() => edit({ op: "remove", names: [layer.name] })} data-testid="delete">Delete</button>
      </div>
    </div>
  );
}

function FieldEditor({ field, value, error, onCommit }: {
  field: LibraryField;
  value: unknown;
  error?: string;
  onCommit: (text: string) => void;
}) {
  const [text, setText] = useState(fieldText(value));
  useEffect(() => setText(fieldText(value)), [value]);
  if (field.kind === "bool") {
    return (
      <label className="field">
        <span>{field.name}</span>
        <input type="checkbox" checked={Boolean(value)} onChange={(e) => onCommit(String(e.target.checked))} data-testid={`prop-${field.name}`} />
        {error ? <div className="field-error" data-testid={`error-${field.name}`}>{error}</div> : null}
      </label>
    );
  }
  return (
    <label className="field">
      <span>{field.name}{field.required ? " *" : ""}</span>
      <input
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => e.key === "Enter" && onCommit(text)}
        onBlur={() => text !== fieldText(value) && onCommit(text)}
        className={error ? "invalid" : ""}
        data-testid={`prop-${field.name}`}
      />
      {error ? <div className="field-error" data-testid={`error-${field.name}`}>{error}</div> : null}
    </label>
  );
}

function TransferLearning({ graph, selected, edit }: { graph: Graph; selected: string | null; edit: Edit }) {
  const [classes, setClasses] = useState("10");
  const [factor, setFactor] = useState("10");
  const frozen = graph.layers.filter((l) => l.frozen).length;
  return (
    <div className="transfer" data-testid="transfer">
      <h3>Transfer learning</h3>
      <label className="field">
        <span>classes (number or names)</span>
        <input value={classes} onChange={(e) => setClasses(e.target.value)} data-testid="tl-classes" />
      </label>
      <label className="field">
        <span>new head learn-rate factor</span>
        <input value={factor} onChange={(e) => setFactor(e.target.value)} data-testid="tl-factor" />
      </label>
      <button
        data-testid="tl-replace-head"
        onClick={() => {
          const list = classes.split(",").map((c) => c.trim()).filter(Boolean);
          const value = list.length === 1 && /^\d+$/.test(list[0]) ? parseInt(list[0], 10) : list;
          void edit({ op: "replace_head", classes: value, learn_rate_factor: Number(factor) });
        }}
      >
        Replace head
      </button>
      <button disabled={!selected} data-testid="tl-freeze" onClick={() => edit({ op: "freeze", up_to: selected })}>
        Freeze up to {selected ?? "(select a layer)"}
      </button>
      <button disabled={!frozen} data-testid="tl-unfreeze" onClick={() => edit({ op: "freeze" })}>
        Unfreeze all ({frozen} frozen)
      </button>
      {selected ? (
        <button data-testid="tl-factor-selected" onClick={() => edit({ op: "learn_rate_factor", names: [selected], factor: Number(factor) })}>
          Set learn-rate factor of {selected}
        </button>
      ) : null}
    </div>
  );
}
