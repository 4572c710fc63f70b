import { DragEvent, useMemo, useState } from "react";
import { FieldKind } from "./graph";

export interface LibraryField {
  name: string;
  kind: FieldKind;
  required: boolean;
  default: unknown;
}

export interface LibraryEntry {
  type: string;
  category: string;
  doc: string;
  fields: LibraryField[];
  inputs: string[];
}

// The layer library, grouped by category, with search. Drag an entry onto the canvas (or
// double-click it) to add the layer.
export function Palette({ library, onAdd }: { library: LibraryEntry[]; onAdd: (type: string) => void }) {
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const q = query.trim().toLowerCase();
    const byCategory = new Map<string, LibraryEntry[]>();
    for (const entry of library) {
      if (q && !entry.type.toLowerCase().includes(q) && !entry.doc.toLowerCase().includes(q)) continue;
      byCategory.set(entry.category, [...(byCategory.get(entry.category) ?? []), entry]);
    }
    return [...byCategory.entries()];
  }, [library, query]);
  const onDragStart = (event: DragEvent, type: string) => {
    event.dataTransfer.setData("application/deeptoolbox-layer", type);
    event.dataTransfer.effectAllowed = "move";
  };
  return (
    <aside className="palette" data-testid="palette">
      <input
        className="search"
        placeholder="Search layers"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        data-testid="palette-search"
      />
      {groups.map(([category, entries]) => (
        <div key={category} className="palette-group">
          <div className="palette-category">{category}</div>
          {entries.map((entry) => (
            <div
              key={entry.type}
              className={`palette-item cat-${category.toLowerCase()}`}
              draggable
              onDragStart={(e) => onDragStart(e, entry.type)}
              onDoubleClick={() => onAdd(entry.type)}
              title={entry.doc}
              data-testid={`palette-${entry.type}`}
            >
              {entry.type}
            </div>
          ))}
        </div>
      ))}
    </aside>
  );
}
