"""A Triton Inference Server / KServe model repository for one network.

``export(net, repository, format="triton")`` writes::

    repository/
      NAME/
        config.pbtxt      inputs and outputs (names, dtypes, dims), max_batch_size, dynamic batching
        labels.txt        class names, one a line (classification networks)
        metadata.json     the deployment metadata (sizes, layout, normalization, versions)
        VERSION/
          model.onnx      the network, checked in onnxruntime

The configuration is read from the written ONNX file itself, so its names, dtypes and dims
are those Triton will find. Other models in the repository, and other versions of this model,
are left in place.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from torch import nn

from deeptoolbox._version import __version__
from deeptoolbox.deploy._export import (
    METADATA_FILE,
    ExportSettings,
    is_deployment_folder,
    write_verified,
)
from deeptoolbox.deploy._metadata import deployment_metadata, tensor_description
from deeptoolbox.deploy._staging import staged_folder
from deeptoolbox.errors import OptionError
from deeptoolbox.network._network import Network

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.onnx"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# ONNX TensorProto element types -> Triton DataType names (model_config.proto)
TRITON_TYPES = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16",
    6: "TYPE_INT32", 7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16",
    11: "TYPE_FP64", 12: "TYPE_UINT32", 13: "TYPE_UINT64", 16: "TYPE_BF16",
}  # fmt: skip


def _model_name(net: nn.Module, name: str | None) -> str:
    chosen = name if name is not None else str(getattr(net, "name", "") or "model")
    if not isinstance(chosen, str) or not _NAME.match(chosen):
        raise OptionError(
            "export: a Triton model name must be letters, digits, '_', '.' or '-' (not starting "
            f"with '.' or '-'); it names a folder. Received: name={chosen!r}. Example: "
            "name='digits'."
        )
    return chosen


def write_triton_repository(
    net: nn.Module,
    repository: Path,
    settings: ExportSettings,
    *,
    name: str | None,
    max_wait_ms: float,
) -> Path:
    """Write ``net`` into the model repository ``repository``; returns the model's folder."""
    model_name = _model_name(net, name)
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int | float) or max_wait_ms < 0:
        raise OptionError(
            f"export: `max_wait_ms` must be a number >= 0. Received: {max_wait_ms!r}."
        )
    if repository.exists() and not repository.is_dir():
        raise OptionError(
            f"export: format='triton' writes a model repository (a folder); '{repository}' is a "
            "file."
        )
    target = repository / model_name
    onnx_settings = ExportSettings(**{**settings.__dict__, "format": "onnx"})
    with staged_folder(target, is_deployment_folder) as temporary:
        _keep_other_versions(target, temporary, settings.version)
        model_path = temporary / str(settings.version) / MODEL_FILE
        model_path.parent.mkdir()
        write_verified(net, model_path, onnx_settings)
        inputs, outputs = onnx_signature(model_path)
        labels = _label_output(net, outputs)
        config = triton_config(model_name, inputs, outputs, settings.max_batch_size,
                               max_wait_ms, labels)  # fmt: skip
        (temporary / CONFIG_FILE).write_text(config, encoding="utf-8")
        if labels is not None:
            (temporary / LABELS_FILE).write_text("\n".join(net.classes) + "\n", encoding="utf-8")
        _write_metadata(net, temporary, settings, inputs, outputs)
    return target


def _keep_other_versions(target: Path, temporary: Path, version: int) -> None:
    if not target.is_dir():
        return
    for folder in target.iterdir():
        if folder.is_dir() and folder.name.isdigit() and folder.name != str(version):
            shutil.copytree(folder, temporary / folder.name)


def onnx_signature(path: Path) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs of an ONNX file: ``{"name", "elem_type", "dims"}`` with -1 for free
    axes (the batch axis included).

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox import Network, layers as L, export_onnx
        >>> path = export_onnx(Network([L.FeatureInput(4), L.Dense(2, name="fc")]),
        ...                    os.path.join(tempfile.mkdtemp(), "n.onnx"))
        >>> inputs, outputs = onnx_signature(path)
        >>> inputs[0]["dims"], outputs[0]["name"], outputs[0]["dims"]
        ([-1, 4], 'fc', [-1, 2])
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return {"name": value.name, "elem_type": tensor.elem_type, "dims": dims}

    inputs = [describe(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [describe(v) for v in model.graph.output]


def _label_output(net: nn.Module, outputs: list[dict]) -> str | None:
    """The output that labels.txt belongs to: the only output, with one score per class."""
    classes = getattr(net, "classes", None)
    if classes is None or len(outputs) != 1:
        return None
    dims = outputs[0]["dims"]
    return outputs[0]["name"] if len(dims) == 2 and dims[1] == len(classes) else None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor_block(entry: dict, batched: bool, label: str | None) -> list[str]:
    data_type = TRITON_TYPES.get(entry["elem_type"])
    if data_type is None:
        raise OptionError(
            f"export: tensor '{entry['name']}' has ONNX element type {entry['elem_type']}, which "
            "Triton has no data type for."
        )
    dims = entry["dims"][1:] if batched else entry["dims"]
    lines = ["  {", f"    name: {_quoted(entry['name'])}", f"    data_type: {data_type}",
             f"    dims: [ {', '.join(str(d) for d in dims)} ]"]  # fmt: skip
    if label is not None and entry["name"] == label:
        lines.append(f"    label_filename: {_quoted(LABELS_FILE)}")
    return [*lines, "  }"]


def _joined(blocks: list[list[str]]) -> list[str]:
    """Blocks of a repeated field, separated by commas."""
    lines: list[str] = []
    for index, block in enumerate(blocks):
        lines += block[:-1] + [block[-1] + ("," if index < len(blocks) - 1 else "")]
    return lines


def triton_config(
    name: str,
    inputs: list[dict],
    outputs: list[dict],
    max_batch_size: int,
    max_wait_ms: float,
    label_output: str | None = None,
) -> str:
    """The text of ``config.pbtxt`` (Triton's ModelConfig in protobuf text format).

    The batch axis is left to Triton (``max_batch_size`` > 0, dims without it) when every
    input and output has a free first axis; otherwise batching is off and dims are complete.

    Example:
        >>> inputs = [{"name": "x", "elem_type": 1, "dims": [-1, 4]}]
        >>> outputs = [{"name": "y", "elem_type": 1, "dims": [-1, 2]}]
        >>> print(triton_config("m", inputs, outputs, 8, 5.0).splitlines()[2])
        name: "m"
    """
    batched = all(e["dims"] and e["dims"][0] == -1 for e in [*inputs, *outputs])
    lines = [
        f"# Triton Inference Server / KServe model configuration, written by deeptoolbox "
        f"{__version__}.",
        "# Inputs and outputs are read from the ONNX file; dims leave out the batch axis.",
        f"name: {_quoted(name)}",
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size if batched else 0}",
        "input [",
    ]
    lines += _joined([_tensor_block(e, batched, None) for e in inputs])
    lines += ["]", "output ["]
    lines += _joined([_tensor_block(e, batched, label_output) for e in outputs])
    lines.append("]")
    if batched:
        lines += ["dynamic_batching {",
                  f"  max_queue_delay_microseconds: {round(max_wait_ms * 1000)}", "}"]  # fmt: skip
    lines += ["instance_group [", "  {", "    kind: KIND_AUTO", "    count: 1", "  }", "]"]
    return "\n".join(lines) + "\n"


def _write_metadata(
    net: nn.Module, folder: Path, settings: ExportSettings, inputs, outputs
) -> None:
    described_inputs = described_outputs = None
    if not isinstance(net, Network):
        described_inputs = [tensor_description(e["name"], [None if d < 0 else d for d in e["dims"][1:]])
                            for e in inputs]  # fmt: skip
        described_outputs = [{"name": e["name"], "size": [None if d < 0 else d for d in e["dims"][1:]],
                              "dtype": "float32"} for e in outputs]  # fmt: skip
    metadata = deployment_metadata(
        net, model_file=f"{settings.version}/{MODEL_FILE}", model_format="triton",
        version=settings.version, inputs=described_inputs, outputs=described_outputs,
    )  # fmt: skip
    text = json.dumps(metadata, indent=2)
    (folder / METADATA_FILE).write_text(text + "\n", encoding="utf-8")
