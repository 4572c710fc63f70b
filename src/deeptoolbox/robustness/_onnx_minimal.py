"""TEMPORARY minimal ONNX -> ``torch.nn.Sequential`` conversion for VNN-COMP-style networks.

:func:`verify_vnnlib` loads models with ``deeptoolbox.interop.import_onnx`` when that exists and
gives a network the bounds support; this module is the fallback. It handles only chains of
Gemm, MatMul (+ Add/Sub of a constant), Add/Sub/Mul/Div by a constant (input
normalization), Neg, Conv (1-D/2-D, symmetric padding), Relu, LeakyRelu,
Sigmoid, Tanh, Flatten, Reshape (to a constant shape), Identity, Dropout and Softmax, which is
what most VNN-COMP benchmarks use. Replace it by the interop importer once that covers these
graphs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.robustness._graph import ScaleShift, UnsupportedLayerError, scale_shift

__all__ = ["load_onnx_sequential"]


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _linear(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.array(weight), dtype=torch.float32))
        layer.bias.copy_(torch.tensor(
            np.zeros(weight.shape[0]) if bias is None else np.array(np.broadcast_to(bias, weight.shape[:1])),
            dtype=torch.float32,
        ))  # fmt: skip
    return layer


def _gemm(node, constants) -> nn.Module:
    a = _attributes(node)
    if a.get("transA", 0):
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}': Gemm with transA=1 is not supported."
        )
    b = constants[node.input[1]] * a.get("alpha", 1.0)
    weight = b if a.get("transB", 0) else b.T
    bias = constants[node.input[2]] * a.get("beta", 1.0) if len(node.input) > 2 else None
    return _linear(weight, None if bias is None else bias.reshape(-1))


def _conv(node, constants) -> nn.Module:
    a = _attributes(node)
    weight = constants[node.input[1]]
    dims = weight.ndim - 2
    pads = list(a.get("pads", [0] * 2 * dims))
    if pads[:dims] != pads[dims:] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}': Conv with asymmetric or automatic padding ({pads}) is not "
            "supported by the minimal importer."
        )
    kind = {1: nn.Conv1d, 2: nn.Conv2d}.get(dims)
    if kind is None:
        raise UnsupportedLayerError(f"ONNX node '{node.name}': {dims}-D Conv is not supported.")
    groups = a.get("group", 1)
    layer = kind(
        weight.shape[1] * groups, weight.shape[0], weight.shape[2:],
        stride=tuple(a.get("strides", [1] * dims)), padding=tuple(pads[:dims]),
        dilation=tuple(a.get("dilations", [1] * dims)), groups=groups,
    )  # fmt: skip
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.array(weight)))
        bias = constants[node.input[2]] if len(node.input) > 2 else np.zeros(weight.shape[0])
        layer.bias.copy_(torch.tensor(np.array(bias), dtype=torch.float32))
    return layer


def _with_constant(node, op: str, constants, modules) -> list[nn.Module]:
    """x + c, x - c, c - x, x * c, x / c: folded into the bias of the layer before for an
    addition after MatMul/Gemm/Conv, else an element-wise ScaleShift (input normalization)."""
    first = node.input[0] in constants
    if first == (node.input[1] in constants):
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}' ({op}): the minimal importer handles {op} of the layer "
            "chain with one constant only."
        )
    value = constants[node.input[0 if first else 1]]
    last = modules[-1] if modules else None
    if op in ("Add", "Sub") and not first and isinstance(last, nn.Linear | nn.Conv1d | nn.Conv2d):
        _add_constant(modules, -value if op == "Sub" else value, node)
        return []
    layer = scale_shift(op, torch.tensor(np.array(value, dtype=np.float32)), not first)
    if layer is None:
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}': {op} with the layer input as divisor (or a zero divisor) "
            "is not affine; verification does not support it."
        )
    return [layer]


def _add_constant(modules: list[nn.Module], value: np.ndarray, node) -> None:
    last = modules[-1] if modules else None
    if not isinstance(last, nn.Linear | nn.Conv1d | nn.Conv2d):
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}' ({node.op_type}): adding a constant is supported only right "
            "after MatMul/Gemm/Conv by the minimal importer."
        )
    flat = np.asarray(value, dtype=np.float32).reshape(-1)
    if flat.size not in (1, last.bias.numel()):
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}': constant of size {value.shape} does not match the "
            f"{last.bias.numel()} outputs of the layer before."
        )
    with torch.no_grad():
        last.bias.add_(torch.tensor(np.array(flat)))


def _activation(op: str, node) -> nn.Module | None:
    simple = {"Relu": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh}
    if op in simple:
        return simple[op]()
    if op == "LeakyRelu":
        return nn.LeakyReLU(_attributes(node).get("alpha", 0.01))
    if op == "Softmax":
        return nn.Softmax(dim=_attributes(node).get("axis", -1))
    return None


def _shape_op(node, constants, modules) -> None:
    if node.op_type == "Flatten":
        if _attributes(node).get("axis", 1) != 1:
            raise UnsupportedLayerError(f"ONNX node '{node.name}': Flatten needs axis=1.")
        modules.append(nn.Flatten())
        return
    shape = [int(v) for v in constants[node.input[1]]]
    modules.append(L.Reshape(tuple(shape[1:])) if len(shape) > 1 else nn.Flatten())


def load_onnx_sequential(path: str | Path) -> tuple[nn.Sequential, tuple[int, ...]]:
    """Convert a chain-shaped ONNX model; returns the model and its input size without batch.

    Example:
        >>> import tempfile, os, torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "m.onnx")
        ...     torch.onnx.export(model, (torch.zeros(1, 3),), p, dynamo=False)
        ...     net, shape = load_onnx_sequential(p)
        >>> shape, bool(torch.allclose(net(torch.ones(1, 3)), model(torch.ones(1, 3))))
        ((3,), True)
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise UnsupportedLayerError(
            f"ONNX model '{Path(path).name}' has {len(inputs)} inputs; verification needs one."
        )
    dims = [d.dim_value or 1 for d in inputs[0].type.tensor_type.shape.dim]
    current, modules = inputs[0].name, []
    for node in model.graph.node:
        op = node.op_type
        if op == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(_attributes(node)["value"])
            continue
        if current not in node.input:
            raise UnsupportedLayerError(
                f"ONNX node '{node.name}' ({op}) does not continue the chain of layers; the "
                "minimal importer handles only chain-shaped models."
            )
        modules.extend(_convert(node, op, constants, modules))
        current = node.output[0]
    return nn.Sequential(*modules).eval(), tuple(dims[1:]) if len(dims) > 1 else tuple(dims)


def _convert(node, op: str, constants, modules) -> list[nn.Module]:
    if op == "Gemm":
        return [_gemm(node, constants)]
    if op == "MatMul" and node.input[1] in constants:
        return [_linear(constants[node.input[1]].T, None)]
    if op == "Conv":
        return [_conv(node, constants)]
    if op in ("Add", "Sub", "Mul", "Div") and len(node.input) == 2:
        return _with_constant(node, op, constants, modules)
    if op == "Neg":
        return [ScaleShift(torch.tensor(-1.0), torch.tensor(0.0))]
    if op in ("Flatten", "Reshape"):
        _shape_op(node, constants, modules)
        return []
    if op in ("Identity", "Dropout"):
        return []
    layer = _activation(op, node)
    if layer is None:
        raise UnsupportedLayerError(
            f"ONNX node '{node.name}' ({op}) is not supported by the minimal importer used by "
            "verify_vnnlib (Gemm, MatMul, Add, Sub, Mul, Div, Neg, Conv, Relu, LeakyRelu, Sigmoid, Tanh, "
            "Flatten, Reshape, Identity, Dropout, Softmax)."
        )
    return [layer]
