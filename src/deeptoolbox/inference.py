"""predict() and classify(): batched inference in eval mode, without gradients, on the best device."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deeptoolbox.data import Datastore, default_collate
from deeptoolbox.data._image_input import prepare_images
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.layers._activation import Softmax
from deeptoolbox.network._network import Network

__all__ = ["predict", "classify", "best_device", "register_input_preparer"]

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


def _num_inputs(net: torch.nn.Module) -> int:
    return len(net.input_names) if isinstance(net, Network) else 1


def _is_nested_numbers(data: Any) -> bool:
    """True for a (nested) Python list of numbers such as [[0.1, 0.2], [0.3, 0.4]]."""
    while isinstance(data, list) and data:
        data = data[0]
    return isinstance(data, int | float) and not isinstance(data, bool)


def _batches(data: Data, num_inputs: int, batch_size: int) -> Iterator[tuple[Any, ...]]:
    """Yield tuples of input batches from arrays, datasets or iterables of batches."""
    if isinstance(data, list) and _is_nested_numbers(data):
        data = np.asarray(data)
    if isinstance(data, torch.Tensor | np.ndarray):
        for start in range(0, len(data), batch_size):
            yield (data[start : start + batch_size],)
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
            yield tuple(d[start : start + batch_size] for d in data)
        return
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        yield from _dataset_batches(data, num_inputs, batch_size)
        return
    if not isinstance(data, Iterable):
        raise OptionError(
            "predict: `data` must be a tensor, a numpy array, a tuple of arrays (one per input), "
            f"a Dataset or an iterable of batches. Received: {type(data).__name__}."
        )
    for batch in data:
        if isinstance(batch, torch.Tensor | np.ndarray):
            yield (batch,)
        elif isinstance(batch, tuple | list) and len(batch) >= num_inputs:
            yield tuple(batch[:num_inputs])
        elif isinstance(batch, dict) and "inputs" in batch:
            inputs = batch["inputs"]
            yield tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        else:
            raise OptionError(
                f"predict: each batch must be a tensor or a tuple starting with the {num_inputs} "
                f"input(s). Received a batch of type {type(batch).__name__}."
            )


def _dataset_batches(data: Dataset, num_inputs: int, batch_size: int) -> Iterator[tuple[Any, ...]]:
    """Batches of a map-style Dataset, read with its own ``collate_fn`` and, for a datastore,
    with augmentation off (eval mode, restored afterwards)."""
    augmenting = isinstance(data, Datastore) and data.training
    if augmenting:
        data.eval()
    collate = getattr(data, "collate_fn", None) or default_collate
    try:
        yield from _batches(
            DataLoader(data, batch_size=batch_size, collate_fn=collate), num_inputs, batch_size
        )
    finally:
        if augmenting:
            data.train(True)


def predict(
    net: torch.nn.Module,
    data: Data,
    *,
    batch_size: int = 128,
    device: str | torch.device = "auto",
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Run ``net`` on ``data`` in batches, in eval mode and without gradients.

    ``data`` is a tensor, numpy array or nested list of numbers (observations first), a tuple
    of arrays for a network
    with several inputs, a ``Dataset``, or any iterable of batches (a ``DataLoader`` yielding
    ``(inputs, targets)`` works: targets are ignored). The network moves to ``device``
    ("auto": the GPU when there is one). Results are gathered on the CPU; a network with
    several outputs gives a tuple. The network's train/eval mode is restored afterwards.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3), L.Softmax()])
        >>> predict(net, torch.randn(300, 4), batch_size=128).shape
        torch.Size([300, 3])
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(
            f"predict: `batch_size` must be a positive int. Received: {batch_size!r}."
        )
    data = _prepare(net, data)
    target, dtype = place_network(net, device)
    num_inputs = _num_inputs(net)
    was_training = net.training
    net.eval()
    results: list[Any] = []
    try:
        with torch.inference_mode():
            for batch in _batches(data, num_inputs, batch_size):
                inputs = [_as_tensor(x, dtype) for x in batch]
                if isinstance(net, Network):
                    net.check_inputs(inputs)
                output = net(*(x.to(target, non_blocking=True) for x in inputs))
                results.append(output)
    finally:
        net.train(was_training)
    if not results:
        raise InputSizeError("predict: `data` holds no observations.")
    if isinstance(results[0], tuple):
        return tuple(torch.cat([r[i] for r in results]).cpu() for i in range(len(results[0])))
    return torch.cat(results).cpu()


def _ends_in_softmax(net: torch.nn.Module) -> bool:
    if isinstance(net, Network) and len(net.output_names) == 1:
        return isinstance(net.layer(net.output_names[0]), Softmax)
    return False


def classify(
    net: torch.nn.Module,
    data: Data,
    *,
    batch_size: int = 128,
    device: str | torch.device = "auto",
) -> tuple[np.ndarray, torch.Tensor]:
    """Classify ``data``: returns ``(labels, scores)``.

    ``scores`` are class probabilities: the output of a final Softmax layer, or the softmax
    of the outputs otherwise. ``labels`` is a numpy array of class names from ``net.classes``
    (of class indices when the network has none), one per observation — or per time step or
    pixel for sequence or image outputs.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
        >>> labels, scores = classify(net, torch.randn(5, 2))
        >>> labels.shape, scores.shape
        ((5,), torch.Size([5, 3]))
    """
    scores = predict(net, data, batch_size=batch_size, device=device)
    if isinstance(scores, tuple):
        raise OptionError(
            "classify: the network has several outputs; use predict() and pick the scores you need."
        )
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
