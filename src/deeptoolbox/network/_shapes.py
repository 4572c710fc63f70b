"""Size rules for any module in a network: deeptoolbox layers state theirs, other modules are probed."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from deeptoolbox.errors import NetworkError, SizeMismatchError
from deeptoolbox.layers._base import Layer, Shape, format_shape
from deeptoolbox.layers._input import InputLayer

_PROBE_LENGTHS = (7, 11)  # two different lengths reveal which output axes follow a free length


def input_ports(module: nn.Module) -> tuple[str, ...]:
    """Names of a module's input ports: a layer's ``input_names``, else one per positional
    argument of ``forward`` (``in`` when there is one, ``in1``, ``in2``... otherwise).

    Example:
        >>> from deeptoolbox.layers import Addition
        >>> input_ports(Addition(3))
        ('in1', 'in2', 'in3')
        >>> input_ports(torch.nn.Linear(2, 3))
        ('in',)
    """
    names = getattr(module, "input_names", None)
    if names is not None:
        return tuple(names)
    parameters = inspect.signature(module.forward).parameters.values()
    required = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(required) <= 1:
        return ("in",)
    return tuple(f"in{i}" for i in range(1, len(required) + 1))


def input_size_message(name: str, layer: InputLayer, shape: tuple[int, ...]) -> str:
    """What is wrong with a batch of size ``shape`` given to input layer ``name``, with a hint.

    Example:
        >>> from deeptoolbox.layers import FeatureInput
        >>> input_size_message("x", FeatureInput(3), (3,)).splitlines()[1]
        'Hint: the batch dimension is missing; add it with x.unsqueeze(0) for a tensor, x[None] or np.expand_dims(x, 0) for a numpy array.'
    """
    message = (
        f"Input layer '{name}' expects {layer.describe_input()}; received a batch of size {shape}."
    )
    return message + _size_hint(layer, shape)


def _size_hint(layer: InputLayer, shape: tuple[int, ...]) -> str:
    if len(shape) == len(layer.shape) and layer.accepts(shape):
        return (
            "\nHint: the batch dimension is missing; add it with x.unsqueeze(0) for a tensor, "
            "x[None] or np.expand_dims(x, 0) for a numpy array."
        )
    if len(shape) == 4 and len(layer.shape) == 3 and layer.accepts((shape[3], shape[1], shape[2])):
        return (
            "\nHint: the data look channels-last (N, H, W, C); use x.permute(0, 3, 1, 2) for a "
            "tensor, x.transpose(0, 3, 1, 2) for a numpy array."
        )
    if len(shape) == 3 and len(layer.shape) == 3 and layer.accepts((shape[2], shape[0], shape[1])):
        return (
            "\nHint: this looks like one channels-last image (H, W, C) without a batch "
            "dimension; use x.permute(2, 0, 1).unsqueeze(0) for a tensor, "
            "x.transpose(2, 0, 1)[None] for a numpy array. predict and classify also take "
            "uint8 images (H x W x C, as image files decode) and image file names as they are."
        )
    return ""


def resolve_layer(module: nn.Module, input_shapes: list[Shape]) -> tuple[Shape, bool]:
    """Build ``module`` for ``input_shapes`` if needed; return its output size and whether it
    kept its weights.

    Deeptoolbox layers use their size rule and are (re)built only when the sizes changed; a
    rebuilt layer keeps its weights and buffers when none of their sizes changed (MATLAB's
    ``replaceLayer`` keeps weights), and is re-initialized otherwise (``False``). Other
    modules are run once on small zero tensors (twice when a length is free).

    Example:
        >>> from deeptoolbox.layers import Conv2d
        >>> conv = Conv2d(4, 3, padding="same")
        >>> _ = resolve_layer(conv, [(3, 32, 32)])
        >>> before = conv.weight.detach().clone()
        >>> resolve_layer(conv, [(3, 64, 64)])
        ((4, 64, 64), True)
        >>> bool((conv.weight == before).all())
        True
    """
    if not isinstance(module, Layer):
        return probe_output_size(module, input_shapes), True
    shape = tuple(module.output_shape(input_shapes))
    if module.built_shapes == [tuple(s) for s in input_shapes]:
        return shape, True
    previous = module.state_dict() if module.is_built else {}
    try:
        module.build(input_shapes)
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):
            raise
        raise NetworkError(
            f"{type(module).__name__} '{module.name}': its weights for input size "
            f"{[tuple(s) for s in input_shapes]} cannot be allocated ({str(err)[:200]}). Check "
            "its size options (units, filters, classes...)."
        ) from err
    if not previous:
        return shape, True
    current = module.state_dict()
    same = current.keys() == previous.keys() and all(
        current[k].shape == previous[k].shape for k in current
    )
    if same:
        module.load_state_dict(previous)
    return shape, same


def probe_output_size(module: nn.Module, input_shapes: list[Shape]) -> Shape:
    """Output size (no batch dimension) of any module, found by running it once on zeros of
    ``input_shapes`` (twice when a length is free, ``None``, which stays free in the answer).

    Raises :class:`~deeptoolbox.errors.SizeMismatchError` when the module cannot run on them.

    Example:
        >>> probe_output_size(torch.nn.Conv1d(3, 5, 3), [(3, 10)])
        (5, 8)
        >>> probe_output_size(torch.nn.Linear(4, 2), [(None, 4)])
        (None, 2)
    """
    free = any(d is None for shape in input_shapes for d in shape)
    results = [_run_probe(module, input_shapes, length) for length in _PROBE_LENGTHS[: 1 + free]]
    first = results[0]
    if len(results) == 2 and len(results[1]) == len(first):
        return tuple(None if a != b else a for a, b in zip(first, results[1], strict=True))
    return first


def _run_probe(module: nn.Module, input_shapes: list[Shape], length: int) -> Shape:
    reference = next(module.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else None
    dtype = dtype or torch.get_default_dtype()
    inputs = [
        torch.zeros((1, *(length if d is None else d for d in shape)), device=device, dtype=dtype)
        for shape in input_shapes
    ]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            output = module(*inputs)
    except Exception as err:  # any failure means these sizes do not fit this module
        sizes = ", ".join(format_shape(s) for s in input_shapes)
        raise SizeMismatchError(
            f"{type(module).__name__} could not run on inputs of size {sizes}: {err}"
        ) from err
    finally:
        module.train(was_training)
    if not isinstance(output, torch.Tensor):
        raise SizeMismatchError(
            f"{type(module).__name__} returned {type(output).__name__}; a layer in a Network must "
            "return one tensor."
        )
    return tuple(output.shape[1:])
