"""predict() and classify(): batched inference in eval mode, without gradients, on the best device.

Also the reading rules that training and evaluation share: datastores are read without
augmentation outside training (:func:`reading_without_augmentation`), lists of variable-length
sequences become padded batches (:func:`as_sequence_data`), sequence padding options
override a datastore's own (:func:`sequence_collate`), and the number of inputs of a plain
module comes from its ``forward`` signature (:func:`count_inputs`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deeptoolbox.data import Datastore, PaddedCollate, SequenceDatastore, default_collate
from deeptoolbox.data._image_input import prepare_images
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.layers._activation import Softmax
from deeptoolbox.layers._input import SequenceInput
from deeptoolbox.layers._recurrent import GRU, LSTM
from deeptoolbox.network._network import Network
from deeptoolbox.network._state import StatefulPrediction

__all__ = [
    "predict",
    "classify",
    "best_device",
    "register_input_preparer",
    "count_inputs",
    "reading_without_augmentation",
    "SequencePadding",
    "check_sequence_options",
    "as_sequence_data",
    "sequence_collate",
    "has_mask_input",
    "padding_mask",
]

Data = torch.Tensor | np.ndarray | Sequence[Any] | Iterable[Any] | Dataset
InputPreparer = Callable[[torch.nn.Module, Any], Any]
_INPUT_PREPARERS: list[InputPreparer] = []


def register_input_preparer(preparer: InputPreparer) -> InputPreparer:
    """Register ``preparer(net, data)``, run by predict/classify before batching.

    It returns the data made ready for ``net`` (a tensor, a Dataset...) or None to leave
    ``data`` alone; the first preparer that answers wins. After the registered ones, image
    files, PIL images and uint8 images are prepared for networks with an ``ImageInput`` or a
    pretrained network's preprocessing (deeptoolbox.hub.prepare_images).

    Example:
        >>> prepare = register_input_preparer(lambda net, data: None)
        >>> _INPUT_PREPARERS.remove(prepare)
    """
    if preparer not in _INPUT_PREPARERS:
        _INPUT_PREPARERS.append(preparer)
    return preparer


def _prepare(net: torch.nn.Module, data: Data) -> Data:
    for preparer in (*_INPUT_PREPARERS, prepare_images):  # then image files, uint8 images
        prepared = preparer(net, data)
        if prepared is not None:
            return prepared
    return data


def best_device() -> torch.device:
    """The fastest device present: CUDA, then Apple MPS, then the CPU.

    Example:
        >>> best_device().type in ("cuda", "mps", "cpu")
        True
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _choose_device(net: torch.nn.Module, device: str | torch.device) -> torch.device:
    current = next(iter(net.parameters()), None)
    if device == "auto":
        if current is not None and current.device.type != "cpu":
            return current.device
        return best_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise OptionError(
            f"predict: `device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Received: "
            f"device={device!r}."
        ) from err


def place_network(
    net: torch.nn.Module, device: str | torch.device
) -> tuple[torch.device, torch.dtype]:
    """Move ``net`` to the chosen device; return that device and the dtype inputs should have."""
    target = _choose_device(net, device)
    net.to(target)
    reference = next(iter(net.parameters()), None)
    return target, reference.dtype if reference is not None else torch.get_default_dtype()


def _as_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()  # torch.from_numpy warns on read-only arrays
    tensor = torch.from_numpy(value) if isinstance(value, np.ndarray) else torch.as_tensor(value)
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


# -- what a network takes ------------------------------------------------------------------------
def count_inputs(net: torch.nn.Module) -> int:
    """How many inputs ``net`` takes: a Network's input layers; for a plain module, the
    positional parameters of ``forward`` without a default (``forward(self, a, b, mask=None)``
    takes 2). Batches ``(input_1, ..., input_k, target)`` are split accordingly.

    Example:
        >>> import torch
        >>> class TwoInputs(torch.nn.Module):
        ...     def forward(self, a, b, scale=1.0):
        ...         return (a + b) * scale
        >>> count_inputs(TwoInputs()), count_inputs(torch.nn.Linear(2, 2))
        (2, 1)
    """
    if isinstance(net, Network):
        return len(net.input_names)
    try:
        parameters = inspect.signature(net.forward).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return max(1, len(required))


_num_inputs = count_inputs  # the name deeptoolbox.hub uses


def has_mask_input(net: torch.nn.Module) -> bool:
    """True when a Network's second input layer feeds only padding-mask ports (``.../mask``):
    padded sequence batches then pass their (N, T) mask there.

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network().add_layers([L.SequenceInput(2, name="x"), L.LSTM(4, name="lstm",
        ...     has_padding_mask=True, output_mode="last")])
        >>> _ = net.add_layers(L.SequenceInput(1, name="m")).connect("m", "lstm/mask")
        >>> has_mask_input(net)
        True
    """
    if not isinstance(net, Network) or len(net.input_names) != 2:
        return False
    ports = net.destinations(net.input_names[1])
    return bool(ports) and all(port.endswith("/mask") for port in ports)


def _sequence_input(net: torch.nn.Module) -> SequenceInput | None:
    if isinstance(net, Network) and net.input_names:
        layer = net.layer(net.input_names[0])
        return layer if isinstance(layer, SequenceInput) else None
    return None


# -- reading without augmentation ----------------------------------------------------------------
def _datastore_of(data: Any) -> Datastore | None:
    if isinstance(data, Datastore):
        return data
    inner = getattr(data, "dataset", None) if isinstance(data, DataLoader) else None
    return inner if isinstance(inner, Datastore) else None


@contextlib.contextmanager
def reading_without_augmentation(data: Any) -> Iterator[Any]:
    """Within the block, a datastore (or a DataLoader over one) reads in eval mode: no random
    augmentation. Its mode is restored afterwards. Other data is left alone.

    Validation data, :func:`evaluate`, :func:`predict` and :func:`classify` read this way, as
    MATLAB uses an augmentedImageDatastore's augmentation only for training.

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> ds = ArrayDatastore(np.zeros((2, 1)))
        >>> with reading_without_augmentation(ds):
        ...     inside = ds.training
        >>> inside, ds.training
        (False, True)
    """
    store = _datastore_of(data)
    was_training = store is not None and store.training
    if was_training:
        store.eval()
    try:
        yield data
    finally:
        if was_training:
            store.train(True)


# -- padded time steps in recurrent layers -------------------------------------------------------
@contextlib.contextmanager
def padding_mask(net: torch.nn.Module) -> Iterator[Callable[[torch.Tensor | None], None]]:
    """Within the block, the LSTM and GRU layers of ``net`` skip padded time steps.

    Yields ``set_mask(mask)``: the (N, T) mask of the batch about to run (None: no padding).
    A recurrent layer whose input has that time axis then runs on the real steps only, as
    with ``has_padding_mask=True`` (a forward pre-hook passes the mask), so its outputs, and
    ``output_mode="last"`` above all, do not depend on how the batch was padded: right or
    left, to any length.

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.SequenceInput(1), L.LSTM(2, output_mode="last")]).eval()
        >>> x = torch.ones(1, 3, 1); padded = torch.cat([x, torch.zeros(1, 2, 1)], 1)
        >>> with padding_mask(net) as set_mask:
        ...     set_mask(torch.tensor([[True, True, True, False, False]]))
        ...     same = torch.allclose(net(padded), net(x))
        >>> same
        True
    """
    state: dict[str, torch.Tensor | None] = {"mask": None}

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
        mask = state["mask"]
        if mask is None or len(args) != 1 or kwargs.get("mask") is not None:
            return None
        x = args[0]
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[:2] != mask.shape:
            return None
        return args, {**kwargs, "mask": mask.to(x.device)}

    def set_mask(mask: torch.Tensor | None) -> None:
        if layers:  # a host sync, only worth it when a recurrent layer will read the mask
            state["mask"] = None if mask is None or bool(mask.all()) else mask

    layers = [m for m in net.modules() if isinstance(m, LSTM | GRU) and not m.has_padding_mask]
    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in layers]
    try:
        yield set_mask
    finally:
        for handle in handles:
            handle.remove()


# -- sequence padding options --------------------------------------------------------------------
@dataclass(frozen=True)
class SequencePadding:
    """Sequence options (MATLAB's SequenceLength, SequencePaddingDirection,
    SequencePaddingValue); None keeps what the data says ("longest", "right", 0 for lists).

    Example:
        >>> SequencePadding(direction="left").is_set
        True
    """

    length: str | int | None = None
    direction: str | None = None
    value: float | None = None

    @property
    def is_set(self) -> bool:
        return (self.length, self.direction, self.value) != (None, None, None)


def check_sequence_options(where: str, length: Any, direction: Any, value: Any) -> SequencePadding:
    """Validate the sequence options; returns them as a :class:`SequencePadding`.

    Example:
        >>> check_sequence_options("predict", 20, "left", 0.0).length
        20
    """
    valid_length = length in (None, "longest", "shortest") or (
        isinstance(length, int) and not isinstance(length, bool) and length >= 1
    )
    if not valid_length:
        raise OptionError(
            f"{where}: `sequence_length` must be 'longest', 'shortest', a positive int or None "
            f"(the data's own). Received: sequence_length={length!r}."
        )
    if direction not in (None, "left", "right"):
        raise OptionError(
            f"{where}: `sequence_padding_direction` must be 'left', 'right' or None. Received: "
            f"sequence_padding_direction={direction!r}."
        )
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise OptionError(
            f"{where}: `sequence_padding_value` must be a number or None. Received: "
            f"sequence_padding_value={value!r}."
        )
    return SequencePadding(length, direction, value)


def sequence_collate(dataset: Any, padding: SequencePadding) -> Callable[[list[Any]], Any] | None:
    """The collate function for ``dataset``: its own, with the padding options applied when
    they are set (a copy of its PaddedCollate; a new one for a dataset without a collate).

    Example:
        >>> ds = SequenceDatastore([np.ones((3, 1)), np.ones((5, 1))], padding="right")
        >>> sequence_collate(ds, SequencePadding(direction="left")).padding
        'left'
    """
    own = getattr(dataset, "collate_fn", None)
    if not padding.is_set:
        return own
    if own is not None and not isinstance(own, PaddedCollate):
        return own
    base = own if own is not None else PaddedCollate()
    return PaddedCollate(
        padding.length if padding.length is not None else base.sequence_length,
        padding=padding.direction or base.padding,
        padding_value=base.padding_value if padding.value is None else padding.value,
        mask_as_input=base.mask_as_input,
        step_targets=base.step_targets,
        target_padding_value=base.target_padding_value,
    )


def _is_sequence_list(net: torch.nn.Module, data: Any, explicit: bool) -> bool:
    """A list of (T_i, C) arrays for a sequence network (or when sequence options are set)."""
    if not isinstance(data, list) or not data:
        return False
    if not all(isinstance(s, torch.Tensor | np.ndarray) for s in data):
        return False
    layer = _sequence_input(net)
    if layer is None:  # a plain module: only when sequence options say so
        return explicit and not isinstance(net, Network) and all(s.ndim in (1, 2) for s in data)
    channels = layer.num_channels
    return all(
        (s.ndim == 2 and s.shape[1] == channels) or (s.ndim == 1 and channels == 1) for s in data
    )


def as_sequence_data(
    net: torch.nn.Module, data: Any, padding: SequencePadding, *, explicit: bool = False
) -> Any:
    """A list of variable-length (T, C) arrays, or ``(list_of_arrays, targets)``, as a
    SequenceDatastore padded with ``padding`` (MATLAB's cell arrays of sequences); other data
    unchanged. String labels become classes (matched to ``net.classes`` by name when read
    for training or evaluation); a network with a mask input (:func:`has_mask_input`) gets
    the padding mask as its second input.

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.SequenceInput(2), L.LSTM(3, output_mode="last")])
        >>> ds = as_sequence_data(net, [np.ones((4, 2)), np.ones((6, 2))], SequencePadding())
        >>> ds.readall()["inputs"].shape
        torch.Size([2, 6, 2])
    """
    explicit = explicit or padding.is_set
    targets = None
    sequences = data
    if isinstance(data, tuple) and len(data) == 2 and _is_sequence_list(net, data[0], True):
        sequences, targets = data
    elif not _is_sequence_list(net, data, explicit):
        return data
    return SequenceDatastore(
        sequences, targets,
        sequence_length=padding.length or "longest", padding=padding.direction or "right",
        padding_value=0.0 if padding.value is None else padding.value,
        mask_as_input=has_mask_input(net),
    )  # fmt: skip


# -- batches of inputs ---------------------------------------------------------------------------
def _is_nested_numbers(data: Any) -> bool:
    """True for a (nested) Python list of numbers such as [[0.1, 0.2], [0.3, 0.4]]."""
    while isinstance(data, list) and data:
        data = data[0]
    return isinstance(data, int | float) and not isinstance(data, bool)


InputBatch = tuple[tuple[Any, ...], torch.Tensor | None]


def _from_batch(batch: Any, num_inputs: int, mask_input: bool) -> InputBatch:
    if isinstance(batch, torch.Tensor | np.ndarray):
        return (batch,), None
    if isinstance(batch, dict) and "inputs" in batch:
        inputs = batch["inputs"]
        inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        mask = batch.get("mask")
        if mask_input and mask is not None and len(inputs) == num_inputs - 1:
            inputs = (*inputs, mask.float())
        return inputs, mask
    if isinstance(batch, tuple | list) and len(batch) >= num_inputs:
        return tuple(batch[:num_inputs]), None
    raise OptionError(
        f"predict: each batch must be a tensor or a tuple starting with the {num_inputs} "
        f"input(s). Received a batch of type {type(batch).__name__}."
    )


def _input_batches(
    data: Data,
    num_inputs: int,
    batch_size: int,
    collate: Callable[[list[Any]], Any] | None = None,
    mask_input: bool = False,
) -> Iterator[InputBatch]:
    """Yield ``(inputs, mask)`` batches from arrays, datasets or iterables of batches."""
    if isinstance(data, list) and _is_nested_numbers(data):
        data = np.asarray(data)
    if isinstance(data, torch.Tensor | np.ndarray):
        for start in range(0, len(data), batch_size):
            yield (data[start : start + batch_size],), None
        return
    if (
        num_inputs > 1
        and isinstance(data, tuple | list)
        and len(data) == num_inputs
        and all(isinstance(d, torch.Tensor | np.ndarray) for d in data)
    ):
        counts = {len(d) for d in data}
        if len(counts) != 1:
            raise InputSizeError(
                f"predict: the {num_inputs} input arrays have different numbers of observations: "
                f"{[len(d) for d in data]}."
            )
        for start in range(0, counts.pop(), batch_size):
            yield tuple(d[start : start + batch_size] for d in data), None
        return
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        collate = collate or getattr(data, "collate_fn", None) or default_collate
        data = DataLoader(data, batch_size=batch_size, collate_fn=collate)
    if not isinstance(data, Iterable):
        raise OptionError(
            "predict: `data` must be a tensor, a numpy array, a tuple of arrays (one per input), "
            "a list of (T, C) sequences, a Dataset or an iterable of batches. Received: "
            f"{type(data).__name__}."
        )
    with reading_without_augmentation(data):
        for batch in data:
            yield _from_batch(batch, num_inputs, mask_input)


def _batches(data: Data, num_inputs: int, batch_size: int) -> Iterator[tuple[Any, ...]]:
    """Yield tuples of input batches (the inputs of :func:`_input_batches`)."""
    for inputs, _ in _input_batches(data, num_inputs, batch_size):
        yield inputs


# -- joining the outputs of every batch ----------------------------------------------------------
def _batch_axis(tensor: torch.Tensor, size: int, where: str) -> int:
    if tensor.dim() >= 1 and tensor.shape[0] == size:
        return 0
    if tensor.dim() >= 2 and tensor.shape[1] == size:
        return 1  # recurrent states (layers, N, H), as torch.nn.LSTM returns them
    raise OptionError(
        f"predict: output {where} has size {tuple(tensor.shape)}, with no axis of the batch "
        f"size {size}; outputs are joined over batches along the batch axis. Return batch-first "
        "tensors, or call the module yourself."
    )


def _join(results: list[Any], sizes: list[int], where: str = "0") -> Any:
    """Concatenate per-batch outputs (tensors, tuples, dicts of them) along the batch axis."""
    first = results[0]
    if isinstance(first, torch.Tensor):
        if first.dim() == 0:
            return torch.stack(results).cpu()  # one value per batch (e.g. a loss)
        if len(results) == 1:
            return first.cpu()
        axis = _batch_axis(first, sizes[0], where)
        return torch.cat(results, dim=axis).cpu()
    if isinstance(first, dict):
        return {k: _join([r[k] for r in results], sizes, f"{where}[{k!r}]") for k in first}
    if isinstance(first, tuple | list):
        parts = [_join([r[i] for r in results], sizes, f"{where}[{i}]") for i in range(len(first))]
        return tuple(parts)
    return results


def _unpad(output: Any, mask: torch.Tensor | None, index: int) -> Any:
    """Observation ``index`` of a batch output, with padded time steps left out."""
    if isinstance(output, dict):
        return {k: _unpad(v, mask, index) for k, v in output.items()}
    if isinstance(output, tuple | list):
        return tuple(_unpad(v, mask, index) for v in output)
    if not isinstance(output, torch.Tensor) or output.dim() == 0:
        return output
    row = output[index].cpu()
    if mask is not None and output.dim() >= 3 and tuple(output.shape[:2]) == tuple(mask.shape):
        return row[mask[index].cpu().bool()]
    return row


def _observations(results: list[Any], masks: list[Any], sizes: list[int]) -> list[Any]:
    return [
        _unpad(output, mask, i)
        for output, mask, size in zip(results, masks, sizes, strict=True)
        for i in range(size)
    ]


def _check_predict_options(batch_size: Any, uniform_output: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(
            f"predict: `batch_size` must be a positive int. Received: {batch_size!r}."
        )
    if not isinstance(uniform_output, bool):
        raise OptionError(
            f"predict: `uniform_output` must be True or False. Received: {uniform_output!r}."
        )


def predict(
    net: torch.nn.Module,
    data: Data,
    *,
    batch_size: int = 128,
    device: str | torch.device = "auto",
    sequence_length: str | int | None = None,
    sequence_padding_direction: str | None = None,
    sequence_padding_value: float | None = None,
    uniform_output: bool = True,
    return_state: bool = False,
) -> Any:
    """Run ``net`` on ``data`` in batches, in eval mode and without gradients.

    ``data`` is a tensor, numpy array or nested list of numbers (observations first), a tuple
    of arrays for a network with several inputs, a list of variable-length (T, C) sequences
    (for a network with a SequenceInput), a ``Dataset`` (a datastore is read without
    augmentation), or any iterable of batches (a ``DataLoader`` yielding ``(inputs,
    targets)`` works: targets are ignored). The network moves to ``device`` ("auto": the GPU
    when there is one). Results are gathered on the CPU; a network with several outputs gives
    a tuple, a module returning a dict gives a dict. The network's train/eval mode is restored.

    Sequences are padded to ``sequence_length`` ("longest", "shortest" or an int) on the
    ``sequence_padding_direction`` side ("right" or "left") with ``sequence_padding_value``;
    None keeps a datastore's own padding ("longest", "right", 0 for a list). With
    ``uniform_output=False`` the result is a list with one output per observation, padded
    time steps removed (MATLAB's ``UniformOutput=false``).

    Recurrent state (LSTM, GRU): each sequence starts from its row of ``net.state`` (zeros
    after ``net.reset_state()``). ``return_state=True`` returns ``(outputs, state)``, the
    state each sequence ended in, and leaves the network unchanged (MATLAB's ``[Y, state] =
    predict(net, X)``); a network in stateful mode (``net.stateful = True``) keeps that state
    for the next call (MATLAB's ``predictAndUpdateState``).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3), L.Softmax()])
        >>> predict(net, torch.randn(300, 4), batch_size=128).shape
        torch.Size([300, 3])
        >>> seq = Network([L.SequenceInput(2), L.Dense(1)])
        >>> outs = predict(seq, [torch.ones(3, 2), torch.ones(5, 2)], uniform_output=False)
        >>> [tuple(o.shape) for o in outs]
        [(3, 1), (5, 1)]
    """
    _check_predict_options(batch_size, uniform_output)
    if return_state and not StatefulPrediction(net).layers:
        raise OptionError(
            "predict: return_state=True needs a Network with LSTM or GRU layers; this one has none."
        )
    padding = check_sequence_options(
        "predict", sequence_length, sequence_padding_direction, sequence_padding_value
    )
    data = as_sequence_data(net, _prepare(net, data), padding, explicit=not uniform_output)
    target, dtype = place_network(net, device)
    num_inputs = count_inputs(net)
    results, masks, sizes = [], [], []
    was_training = net.training
    net.eval()
    states = StatefulPrediction(net)
    try:
        with torch.inference_mode(), padding_mask(net) as set_mask:
            collate = sequence_collate(data, padding) if isinstance(data, Dataset) else None
            batches = _input_batches(data, num_inputs, batch_size, collate, has_mask_input(net))
            for batch, mask in batches:
                inputs = [_as_tensor(x, dtype) for x in batch]
                if isinstance(net, Network):
                    net.check_inputs(inputs)
                set_mask(mask)
                with states.batch(len(inputs[0])):
                    results.append(net(*(x.to(target, non_blocking=True) for x in inputs)))
                masks.append(mask)
                sizes.append(len(inputs[0]))
    finally:
        net.train(was_training)
        final_state = states.finish()
    if not results:
        raise InputSizeError("predict: `data` holds no observations.")
    outputs = _join(results, sizes) if uniform_output else _observations(results, masks, sizes)
    return (outputs, final_state) if return_state else outputs


def _ends_in_softmax(net: torch.nn.Module) -> bool:
    if isinstance(net, Network) and len(net.output_names) == 1:
        return isinstance(net.layer(net.output_names[0]), Softmax)
    return False


def _first_output(net: torch.nn.Module, output: Any) -> torch.Tensor:
    if isinstance(output, tuple) and isinstance(net, Network):
        raise OptionError(
            "classify: the network has several outputs; use predict() and pick the scores you need."
        )
    while isinstance(output, tuple | list | dict):
        output = next(iter(output.values())) if isinstance(output, dict) else output[0]
    return output


def _labels_and_scores(net: torch.nn.Module, scores: torch.Tensor) -> tuple[np.ndarray, Any]:
    axis = -1 if scores.dim() <= 3 else 1
    if not _ends_in_softmax(net):
        scores = torch.softmax(scores.float(), dim=axis)
    indices = scores.argmax(dim=axis).numpy()
    classes = getattr(net, "classes", None)
    if classes is None:
        return indices, scores
    if len(classes) != scores.shape[axis]:
        raise OptionError(
            f"classify: the network gives {scores.shape[axis]} scores per observation but "
            f"net.classes lists {len(classes)} classes. Set net.classes to match the output."
        )
    return np.asarray(classes)[indices], scores


def classify(
    net: torch.nn.Module,
    data: Data,
    *,
    batch_size: int = 128,
    device: str | torch.device = "auto",
    sequence_length: str | int | None = None,
    sequence_padding_direction: str | None = None,
    sequence_padding_value: float | None = None,
    uniform_output: bool = True,
) -> tuple[Any, Any]:
    """Classify ``data``: returns ``(labels, scores)``.

    ``scores`` are class probabilities: the output of a final Softmax layer, or the softmax
    of the outputs otherwise. ``labels`` is a numpy array of class names from ``net.classes``
    (of class indices when the network has none), one per observation — or per time step or
    pixel for sequence or image outputs. A plain module returning a tuple or dict is
    classified on its first output. Sequence options and ``uniform_output`` as in
    :func:`predict`; with ``uniform_output=False`` both are lists, one entry per observation.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
        >>> labels, scores = classify(net, torch.randn(5, 2))
        >>> labels.shape, scores.shape
        ((5,), torch.Size([5, 3]))
    """
    output = predict(
        net, data, batch_size=batch_size, device=device, sequence_length=sequence_length,
        sequence_padding_direction=sequence_padding_direction,
        sequence_padding_value=sequence_padding_value, uniform_output=uniform_output,
    )  # fmt: skip
    if uniform_output:
        return _labels_and_scores(net, _first_output(net, output))
    pairs = [_labels_and_scores(net, _first_output(net, o)[None])[:2] for o in output]
    return [labels[0] for labels, _ in pairs], [scores[0] for _, scores in pairs]
