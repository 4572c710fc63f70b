"""The reading rules every toolbox function shares, for a given network.

How many inputs a network takes (:func:`count_inputs`) and whether its second input is a
padding mask (:func:`has_mask_input`); datastores read without augmentation outside training
(:func:`reading_without_augmentation`); lists of variable-length sequences become padded
batches (:func:`as_sequence_data`) and sequence options override a datastore's own padding
(:func:`sequence_collate`); recurrent layers skip padded steps (:func:`padding_mask`);
string-labelled arrays become a labelled datastore (:func:`as_labelled_arrays`) and targets
are matched to the network's classes by name (:func:`class_map`, :func:`map_classes`).

These rules used to live in ``inference`` and ``training``; both now import them from here
(``deeptoolbox.inference`` still re-exports the public ones).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deeptoolbox.data._array import ArrayDatastore
from deeptoolbox.data._base import Datastore
from deeptoolbox.data._sequence import PaddedCollate, SequenceDatastore
from deeptoolbox.errors import OptionError
from deeptoolbox.layers._input import SequenceInput
from deeptoolbox.layers._recurrent import GRU, LSTM
from deeptoolbox.network._network import Network

__all__ = [
    "count_inputs", "has_mask_input", "reading_without_augmentation", "padding_mask",
    "SequencePadding", "check_sequence_options", "sequence_collate", "as_sequence_data",
    "class_axis", "class_names", "class_map", "map_classes", "as_labelled_arrays", "ClassMap",
]  # fmt: skip

ClassMap = tuple[torch.Tensor, int]  # network index of each data class, network class count


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


# -- classes -------------------------------------------------------------------------------------
def class_axis(outputs: torch.Tensor) -> int:
    """The class (channel) axis of a batch: last for (N, C) and (N, T, C), 1 for images.

    Example:
        >>> class_axis(torch.zeros(4, 3)), class_axis(torch.zeros(4, 3, 8, 8))
        (-1, 1)
    """
    return -1 if outputs.dim() <= 3 else 1


def class_names(data: Any) -> list[str] | None:
    """The class names of a datastore or Dataset (its ``classes``), or of a DataLoader's
    dataset; None when the data has none or its classes are not names (class indices).

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> class_names(ArrayDatastore(np.zeros((2, 1)), targets=["b", "a"]))
        ['a', 'b']
    """
    if isinstance(data, DataLoader):
        data = data.dataset
    names = getattr(data, "classes", None) if isinstance(data, Dataset) else None
    if not isinstance(names, list | tuple) or not names:
        return None
    return list(names) if all(isinstance(n, str) for n in names) else None


def class_map(net: torch.nn.Module, data: Any, where: str) -> ClassMap | None:
    """Index of each of the data's classes among ``net.classes`` (None: same order)."""
    names, known = class_names(data), getattr(net, "classes", None)
    if names is None or known is None or list(known) == names:
        return None
    unknown = [n for n in names if n not in known]
    if unknown:
        raise OptionError(
            f"{where}: the data has classes {unknown[:10]} that the network does not know. The "
            f"network's classes are {list(known)[:20]}; the data's are {names[:20]}. Targets are "
            "matched to the network's classes by name: give the network all the data's classes "
            "(Network(..., classes=[...]), or leave them out and train() takes the data's)."
        )
    return torch.tensor([list(known).index(n) for n in names]), len(known)


def map_classes(target: Any, mapping: ClassMap | None) -> Any:
    """Class-index targets (or one-hot rows) renumbered by ``mapping`` (data -> network).
    A list of per-observation dicts (object detection: ``{"boxes", "labels"}``) has its
    ``labels`` renumbered.

    Example:
        >>> map_classes(torch.tensor([0, 1, -100]), (torch.tensor([2, 0]), 3)).tolist()
        [2, 0, -100]
        >>> map_classes([{"labels": torch.tensor([1, 0])}], (torch.tensor([2, 0]), 3))
        [{'labels': tensor([0, 2])}]
    """
    if (
        mapping is not None
        and isinstance(target, list)
        and all(isinstance(t, dict) for t in target)
    ):
        return [{**t, "labels": map_classes(t["labels"], mapping)} if "labels" in t else t
                for t in target]  # fmt: skip
    if mapping is None or not isinstance(target, torch.Tensor):
        return target
    index, count = mapping
    if target.is_floating_point():  # one-hot or probabilities: move the class columns
        axis = class_axis(target) % target.dim()
        shape = list(target.shape)
        shape[axis] = count
        moved = target.new_zeros(shape)
        return moved.index_copy_(axis, index.to(target.device), target)
    real = target >= 0  # negative values mark padded steps
    mapped = target.clone()
    mapped[real] = index.to(target.device)[target[real]]
    return mapped


def _is_label_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO" and value.size > 0 and isinstance(value.flat[0], str)
    return isinstance(value, list | tuple) and len(value) > 0 and isinstance(value[0], str)


def as_labelled_arrays(net: torch.nn.Module, data: Any) -> Any:
    """``(inputs..., labels)`` arrays with string labels (MATLAB's ``trainnet(X, T)`` with a
    categorical ``T``) as an ArrayDatastore whose classes are the labels; other data unchanged.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2)])
        >>> as_labelled_arrays(net, (np.zeros((3, 2)), np.array(["b", "a", "b"]))).classes
        ['a', 'b']
    """
    num_inputs = count_inputs(net)
    if not isinstance(data, tuple) or len(data) != num_inputs + 1:
        return data
    inputs, labels = data[:-1], data[-1]
    if not all(isinstance(a, torch.Tensor | np.ndarray) for a in inputs):
        return data
    if not _is_label_array(labels):
        return data
    return ArrayDatastore(inputs if num_inputs > 1 else inputs[0], targets=labels)
