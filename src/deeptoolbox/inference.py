"""predict(), classify() and evaluate(): batched inference in eval mode, without gradients, on
the best device.

Data of every accepted form is read through the one data adapter (``deeptoolbox.data``'s
``_adapter``), as in ``train``; the reading rules it shares with training (datastores read
without augmentation, padded sequence lists, sequence options, the number of inputs of a
plain module) live in ``deeptoolbox.data._reading`` and are re-exported here. The device
choice is ``deeptoolbox._device``, shared with training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox._device import best_device, place_network
from deeptoolbox.data._adapter import adapt, network_source
from deeptoolbox.data._image_input import prepare_images
from deeptoolbox.data._reading import (
    SequencePadding,
    as_sequence_data,
    check_sequence_options,
    count_inputs,
    has_mask_input,
    padding_mask,
    reading_without_augmentation,
    sequence_collate,
)
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.layers._activation import Softmax
from deeptoolbox.network._network import Network
from deeptoolbox.network._state import StatefulPrediction
from deeptoolbox.training._losses import Loss, _CallableLoss, logits_mode, loss_function
from deeptoolbox.training._metrics import (
    REGRESSION_METRICS,
    check_metrics,
    compute_metrics,
    primary,
    real_steps,
)

__all__ = [
    "predict",
    "classify",
    "evaluate",
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
_num_inputs = count_inputs  # the name deeptoolbox.hub uses


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


def _as_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()  # torch.from_numpy warns on read-only arrays
    tensor = torch.from_numpy(value) if isinstance(value, np.ndarray) else torch.as_tensor(value)
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def _batches(data: Data, num_inputs: int, batch_size: int) -> Iterator[tuple[Any, ...]]:
    """Yield tuples of input batches of any accepted form of ``data`` (targets left out)."""
    source = adapt(data, num_inputs, "predict: `data`", targets=False, cast=False)
    with reading_without_augmentation(source.payload):
        for batch, _ in source.configure(batch_size, "never", 0).epoch(0):
            yield batch.inputs


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
    of arrays for a network with several inputs (``(inputs..., targets)`` works: targets are
    ignored), a list of variable-length (T, C) sequences
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
    source = network_source(
        net, _prepare(net, data), padding, "predict: `data`", targets=False,
        explicit=not uniform_output, cast=False,
    ).configure(batch_size, "never", 0)  # fmt: skip
    target, dtype = place_network(net, device)
    results, masks, sizes = [], [], []
    was_training = net.training
    net.eval()
    states = StatefulPrediction(net)
    try:
        with (
            torch.inference_mode(),
            padding_mask(net) as set_mask,
            reading_without_augmentation(source.payload),
        ):
            for batch, _ in source.epoch(0):
                inputs = [_as_tensor(x, dtype) for x in batch.inputs]
                if isinstance(net, Network):
                    net.check_inputs(inputs)
                set_mask(batch.mask)
                with states.batch(len(inputs[0])):
                    results.append(net(*(x.to(target, non_blocking=True) for x in inputs)))
                masks.append(batch.mask)
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


# -- evaluate (MATLAB testnet) -------------------------------------------------------------------
def _gather(net: torch.nn.Module, source, batch_size: int, loss: Loss) -> tuple[Any, Any]:
    """Outputs and targets over the data (padded time steps of per-step outputs left out)."""
    outputs, targets, sizes = [], [], []
    with logits_mode(net, loss), reading_without_augmentation(source.payload):
        for batch, _ in source.epoch(0):
            if batch.target is None:
                raise InputSizeError("evaluate: `data` must include targets to compare with.")
            batches = [{"inputs": tuple(batch.inputs), "mask": batch.mask}]  # one batch
            output = predict(net, batches, batch_size=batch_size)
            output, target = real_steps(output, torch.as_tensor(batch.target), batch.mask)
            outputs.append(output)
            targets.append(target)
            sizes.append(batch.size)
    if all(isinstance(o, torch.Tensor) for o in outputs):
        return torch.cat(outputs), torch.cat(targets)
    return _join(outputs, sizes), _join(targets, sizes)


def _task_and_loss(metrics: tuple, loss: Any) -> tuple[str, Loss]:
    names = [m for m in metrics if isinstance(m, str) and m != "loss"]
    regression = bool(names) and all(m in REGRESSION_METRICS for m in names)
    loss_object = loss_function(
        loss if loss is not None else "mse" if regression else "crossentropy"
    )
    if loss_object.name in ("mse", "mae", "huber"):
        return "regression", loss_object
    if loss_object.name == "binary-crossentropy":
        return "binary", loss_object
    return ("regression" if regression else "multiclass"), loss_object


def evaluate(
    net: torch.nn.Module,
    data: Any,
    metrics: Sequence[str | Callable[..., Any]] = ("accuracy",),
    *,
    loss: str | Callable[..., Any] | None = None,
    batch_size: int = 128,
    sequence_length: str | int | None = None,
    sequence_padding_direction: str | None = None,
    sequence_padding_value: float | None = None,
) -> dict[str, float]:
    """Compute metrics (and the loss, when given) of ``net`` on labelled ``data`` (MATLAB's
    ``testnet``).

    ``data`` takes the same forms as :func:`predict` and ``train`` (with targets); datastores are read without
    augmentation, so two calls give the same numbers, and class-index targets are matched to
    ``net.classes`` by name. Metrics: "accuracy", "precision", "recall", "fscore" (macro
    over the classes present), "auc" (macro one-vs-rest), "crossentropy" (read class scores);
    "rmse", "mse", "mae" (compare outputs with targets); "loss" (``loss``, by default
    crossentropy, or mse for regression metrics); or callables ``f(outputs, targets)``. An
    unknown name raises an OptionError listing the known ones. A network with several
    outputs is scored on its first. Sequence options as in :func:`predict`.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
        >>> x = torch.randn(20, 2); y = torch.randint(0, 2, (20,))
        >>> sorted(evaluate(net, (x, y), ["accuracy", "fscore"], loss="crossentropy"))
        ['accuracy', 'fscore', 'loss']
    """
    metrics = check_metrics("evaluate", metrics)
    padding = check_sequence_options(
        "evaluate", sequence_length, sequence_padding_direction, sequence_padding_value
    )
    task, loss_object = _task_and_loss(metrics, loss)
    source = network_source(net, data, padding, "evaluate: `data`").configure(
        batch_size, "never", 0
    )
    outputs, targets = _gather(net, source, batch_size, loss_object)
    values = compute_metrics(metrics, outputs, targets, task=task, loss=loss_object)
    if loss is not None:  # a callable loss sees every output; a built-in one the first
        own = isinstance(loss_object, _CallableLoss)
        scored = (outputs, targets) if own else (primary(outputs), primary(targets))
        values["loss"] = float(loss_object(*scored))
    return values
