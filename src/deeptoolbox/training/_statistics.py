"""Statistics train() computes in one pass over the training data.

Input normalization (MATLAB's ``ResetInputNormalization``): the mean, standard deviation,
minimum and maximum that ImageInput / SequenceInput / FeatureInput / VolumeInput layers
normalize with, computed before training. Batch-norm population statistics (MATLAB's
``BatchNormalizationStatistics="population"``): the mean and variance of every batch-norm
layer's input over the training data, computed after training with the final weights.

Both read the training data without augmentation (what the network sees at inference), leave
padded time steps out of sequence input statistics, and add up the sums over all processes
when training runs on several.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.distributed as dist

from deeptoolbox.data._reading import reading_without_augmentation
from deeptoolbox.layers._input import InputLayer, SequenceInput
from deeptoolbox.layers._norm import BatchNorm
from deeptoolbox.network._network import Network
from deeptoolbox.training._data import Batch, BatchSource

__all__ = ["compute_input_statistics", "population_batch_norm_statistics", "Moments"]


class Moments:
    """Running count, sum, sum of squares, minimum and maximum, reduced to a given shape.

    Example:
        >>> m = Moments(dims=(0,))
        >>> m.add(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
        >>> m.mean().tolist(), m.variance().tolist()
        ([2.0, 4.0], [1.0, 4.0])
    """

    def __init__(self, dims: tuple[int, ...]) -> None:
        self.dims = dims
        self.count = 0
        self.sum = self.squares = self.low = self.high = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        count = 1
        for d in self.dims:
            count *= x.shape[d]
        total = x.sum(self.dims, keepdim=True)
        squares = x.pow(2).sum(self.dims, keepdim=True)
        low, high = x.amin(self.dims, keepdim=True), x.amax(self.dims, keepdim=True)
        if self.sum is None:
            self.sum, self.squares, self.low, self.high = total, squares, low, high
        else:
            self.sum, self.squares = self.sum + total, self.squares + squares
            self.low, self.high = torch.minimum(self.low, low), torch.maximum(self.high, high)
        self.count += count

    def all_reduce(self) -> None:
        """Add up the moments of every process (no-op outside torch.distributed)."""
        if self.sum is None or not (dist.is_available() and dist.is_initialized()):
            return
        count = torch.tensor([float(self.count)], dtype=torch.float64, device=self.sum.device)
        for tensor, op in ((count, dist.ReduceOp.SUM), (self.sum, dist.ReduceOp.SUM),
                           (self.squares, dist.ReduceOp.SUM), (self.low, dist.ReduceOp.MIN),
                           (self.high, dist.ReduceOp.MAX)):  # fmt: skip
            dist.all_reduce(tensor, op=op)
        self.count = int(count.item())

    def mean(self) -> torch.Tensor:
        return (self.sum / self.count).squeeze()

    def variance(self, unbiased: bool = False) -> torch.Tensor:
        mean = self.sum / self.count
        value = (self.squares / self.count - mean.pow(2)).clamp_min(0.0)
        if unbiased and self.count > 1:
            value = value * self.count / (self.count - 1)
        return value.squeeze()


def _batches(source: BatchSource) -> Iterator[Batch]:
    with reading_without_augmentation(source.payload):
        for batch, _ in source.epoch(0):
            yield batch


# -- input normalization -------------------------------------------------------------------------
_STATISTICS = {
    "zerocenter": ("mean",),
    "zscore": ("mean", "std"),
    "rescale-symmetric": ("min", "max"),
    "rescale-zero-one": ("min", "max"),
}


def _layers_to_compute(net: torch.nn.Module, reset: bool) -> dict[int, InputLayer]:
    if not isinstance(net, Network):
        return {}
    chosen = {}
    for position, name in enumerate(net.input_names):
        layer = net.layer(name)
        if layer.normalization in _STATISTICS and (reset or not layer.has_statistics):
            chosen[position] = layer
    return chosen


def _reduced_dims(layer: InputLayer, x: torch.Tensor) -> tuple[int, ...]:
    """Axes of the batch ``x`` that the layer's statistic buffers do not keep."""
    shape = tuple(getattr(layer, _STATISTICS[layer.normalization][0]).shape)
    aligned = (1,) * (x.dim() - len(shape)) + shape
    return tuple(d for d in range(x.dim()) if aligned[d] == 1)


def _observations(layer: InputLayer, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    x = torch.as_tensor(x).float()
    if isinstance(layer, SequenceInput) and layer.num_channels == 1 and x.dim() == 2:
        x = x.unsqueeze(-1)
    padded = mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2])
    if padded and layer.normalization_dimension != "element":
        x = x[mask.bool()]  # real time steps only: (M, C)
    return x


def _values(layer: InputLayer, moments: Moments) -> dict[str, torch.Tensor]:
    values = {
        "mean": moments.mean(),
        "std": moments.variance().sqrt().clamp_min(1e-8),
        "min": moments.low.squeeze(),
        "max": moments.high.squeeze(),
    }
    wanted = _STATISTICS[layer.normalization]
    return {key: values[key].float().reshape(getattr(layer, key).shape) for key in wanted}


def compute_input_statistics(net: torch.nn.Module, source: BatchSource, reset: bool) -> list[str]:
    """Set the normalization statistics of ``net``'s input layers from the training data.

    ``reset=True`` (MATLAB's ResetInputNormalization) recomputes every normalizing input
    layer's statistics; ``reset=False`` keeps those already set and computes only missing
    ones. Returns the names of the layers set.
    """
    layers = _layers_to_compute(net, reset)
    if not layers:
        return []
    moments: dict[int, Moments] = {}
    for batch in _batches(source):
        for position, layer in layers.items():
            x = _observations(layer, batch.inputs[position], batch.mask)
            if x.shape[0] == 0:
                continue
            moments.setdefault(position, Moments(_reduced_dims(layer, x))).add(x)
    names = []
    for position, layer in layers.items():
        if position not in moments:
            continue
        moments[position].all_reduce()
        layer.load_state_dict({**layer.state_dict(), **_values(layer, moments[position])})
        names.append(layer.name)
    return names


# -- batch-norm population statistics ------------------------------------------------------------
def _batch_norm_layers(net: torch.nn.Module, frozen: Iterable[torch.nn.Module]):
    skip = {id(m) for m in frozen}
    kinds = (BatchNorm, torch.nn.modules.batchnorm._BatchNorm)
    return [
        m for m in net.modules()
        if isinstance(m, kinds) and id(m) not in skip and getattr(m, "running_mean", None) is not None
    ]  # fmt: skip


def _channels_last(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of a batch-norm layer as (M, C) rows."""
    if isinstance(module, BatchNorm) and x.dim() == 3:  # toolbox sequences (N, T, C)
        return x.reshape(-1, x.shape[-1])
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def population_batch_norm_statistics(
    net: torch.nn.Module,
    source: BatchSource,
    forward,
    frozen: Iterable[torch.nn.Module] = (),
) -> int:
    """Replace every (unfrozen) batch-norm layer's running mean and variance by its input's
    mean and (unbiased) variance over the training data, in one pass with the final weights.

    The pass runs as training did (each layer normalizing with its batch statistics, dropout
    off). ``forward(batch)`` runs the network on one batch. Returns the number of layers set.
    """
    layers = _batch_norm_layers(net, frozen)
    if not layers:
        return 0
    moments = {id(m): Moments(dims=(0,)) for m in layers}
    kept = {id(m): (m.momentum, m.num_batches_tracked.clone()) for m in layers}

    def record(module, inputs):
        moments[id(module)].add(_channels_last(module, inputs[0]))

    handles = [m.register_forward_pre_hook(record) for m in layers]
    was_training = net.training
    net.eval()
    try:
        for m in layers:
            m.momentum = 0.0  # running statistics stay put during the pass
            m.train()
        with torch.no_grad():
            for batch in _batches(source):
                forward(batch)
    finally:
        for handle in handles:
            handle.remove()
        for m in layers:
            m.momentum, tracked = kept[id(m)]
            m.num_batches_tracked.copy_(tracked)
        net.train(was_training)
    for m in layers:
        stats = moments[id(m)]
        stats.all_reduce()
        if stats.count == 0:
            continue
        m.running_mean.copy_(stats.mean().to(m.running_mean))
        m.running_var.copy_(stats.variance(unbiased=True).to(m.running_var))
    return len(layers)
