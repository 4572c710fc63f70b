import { Handle, NodeProps, Position } from "@xyflow/react";
import { memo } from "react";
import { LayerNodeData, learnablesText } from "./graph";

// One layer on the canvas: name, type, output size and learnables; one handle per named
// input port on top and the output port below. Errors and frozen layers look different.
function LayerNodeView({ data, selected }: NodeProps & { data: LayerNodeData }) {
  const { layer, sizeText, status } = data;
  const classes = ["layer-node", `cat-${layer.category.toLowerCase()}`, `status-${status}`];
  if (layer.frozen) classes.push("frozen");
  if (selected) classes.push("selected");
  const ports = layer.inputs;
  return (
    <div className={classes.join(" ")} data-testid={`node-${layer.name}`} title={layer.issues.map((i) => i.message).join("\n")}>
      {ports.map((port, i) => (
        <Handle
          key={port}
          id={port}
          type="target"
          position={Position.Top}
          style={{ left: `${((i + 1) / (ports.length + 1)) * 100}%` }}
          data-testid={`in-${layer.name}-${port}`}
        >
          {ports.length > 1 ? <span className="port-label">{port}</span> : null}
        </Handle>
      ))}
      <div className="layer-title">
        <span className="layer-name">{layer.name}</span>
        {layer.frozen ? <span className="badge">frozen</span> : null}
        {layer.learn_rate_factor !== 1 ? <span className="badge">lr x{layer.learn_rate_factor}</span> : null}
      </div>
      <div className="layer-type">{layer.type}</div>
      <div className="layer-size" data-testid={`size-${layer.name}`}>
        {sizeText}
        {learnablesText(layer.learnables) ? (
          <span className="learnables" data-testid={`learnables-${layer.name}`} title={layer.learnables === null ? "learnables unknown until the input size is known" : "learnables"}>
            {" "}· {learnablesText(layer.learnables)}
          </span>
        ) : null}
      </div>
      <Handle id="out" type="source" position={Position.Bottom} data-testid={`out-${layer.name}`} />
    </div>
  );
}

export const LayerNode = memo(LayerNodeView);
