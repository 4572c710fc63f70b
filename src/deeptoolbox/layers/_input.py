"""Input layers: they declare the size of one network input and normalize it.

Normalization follows MATLAB's input layers: ``"zerocenter"`` subtracts the mean,
``"zscore"`` also divides by the standard deviation, ``"rescale-symmetric"`` and
``"rescale-zero-one"`` map [min, max] to [-1, 1] or [0, 1]. Statistics are given in the
constructor or computed from data with :meth:`InputLayer.compute_statistics`; they are
buffers, so they travel with the saved weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deeptoolbox.errors import NotInitializedError, OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    check_positive_int,
    register_layer,
)

NORMALIZATIONS = ("none", "zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one")
NORMALIZATION_DIMENSIONS = ("auto", "channel", "element", "all")
_STATISTICS = {
    "none": (),
    "zerocenter": ("mean",),
    "zscore": ("mean", "std"),
    "rescale-symmetric": ("min", "max"),
    "rescale-zero-one": ("min", "max"),
}
_KIND = {1: "features", 2: "sequences", 3: "images", 4: "volumes"}
_LAYOUT = {1: "N x C", 2: "N x T x C", 3: "N x C x H x W", 4: "N x C x D x H x W"}

StatisticValue = float | Sequence[float] | np.ndarray | torch.Tensor | None


class InputLayer(Layer):
    """Common base of the input layers: a declared size plus optional normalization.

    Example:
        >>> from deeptoolbox.layers import FeatureInput
        >>> layer = FeatureInput(3, normalization="zscore", mean=[0, 1, 2], std=2.0)
        >>> layer.build([])
        >>> layer(torch.tensor([[2.0, 3.0, 4.0]])).tolist()
        [[1.0, 1.0, 1.0]]
    """

    input_names: tuple[str, ...] = ()

    def __init__(
        self,
        shape: Shape,
        *,
        normalization: str = "none",
        normalization_dimension: str = "auto",
        mean: StatisticValue = None,
        std: StatisticValue = None,
        min: StatisticValue = None,  # noqa: A002 - MATLAB's option name
        max: StatisticValue = None,  # noqa: A002
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.shape: Shape = tuple(shape)
        self.normalization = check_choice(kind, "normalization", normalization, NORMALIZATIONS)
        self.normalization_dimension = check_choice(
            kind, "normalization_dimension", normalization_dimension, NORMALIZATION_DIMENSIONS
        )
        given = {"mean": mean, "std": std, "min": min, "max": max}
        unused = [k for k, v in given.items() if v is not None]
        unused = [k for k in unused if k not in _STATISTICS[self.normalization]]
        if unused:
            raise OptionError(
                f"{kind}: {', '.join(unused)} given, but normalization={self.normalization!r} "
                f"uses {list(_STATISTICS[self.normalization]) or 'no statistics'}."
            )
        self._given = {k: v for k, v in given.items() if v is not None}
        self._ready: bool | None = None
        self._make_statistic_buffers()

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("mean", "std", "min", "max"):
            if config.get(key) is not None:
                config[key] = np.asarray(config[key], dtype=np.float64).tolist()
        return config

    # -- sizes ----------------------------------------------------------------------------
    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return self.shape

    @property
    def is_identity(self) -> bool:
        return self.normalization == "none"

    def describe_input(self) -> str:
        """Describe the expected batch: ``'images of size N x C x H x W with C x H x W = 1 x 8 x 8'``."""
        rank = len(self.shape)
        size = " x ".join("T" if d is None else str(d) for d in self.shape)
        return f"{_KIND[rank]} of size {_LAYOUT[rank]} with {_LAYOUT[rank][4:]} = {size}"

    def accepts(self, size: Sequence[int]) -> bool:
        """True when a batch of size ``(N, *size)`` matches the declared size."""
        return len(size) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, size, strict=True)
        )

    # -- statistics -----------------------------------------------------------------------
    def _statistic_shape(self) -> tuple[int, ...]:
        dimension = self.normalization_dimension
        rank = len(self.shape)
        if dimension == "all":
            return ()
        if dimension == "element":
            if any(d is None for d in self.shape):
                raise OptionError(
                    f"{type(self).__name__}: normalization_dimension='element' needs a fixed "
                    f"length; the declared size {self.shape} has a free length. Use 'channel'."
                )
            return tuple(int(d) for d in self.shape)  # type: ignore[arg-type]
        channels = int(self.shape[-1] if rank <= 2 else self.shape[0])  # type: ignore[arg-type]
        return (channels,) if rank <= 2 else (channels,) + (1,) * (rank - 1)

    def _make_statistic_buffers(self) -> None:
        shape = self._statistic_shape()
        for key in _STATISTICS[self.normalization]:
            value = self._given.get(key)
            if value is None:
                tensor = torch.full(shape, float("nan"))
            else:
                tensor = self._as_statistic(key, value, shape)
            self.register_buffer(key, tensor)

    def _as_statistic(
        self, key: str, value: StatisticValue, shape: tuple[int, ...]
    ) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(value, dtype=np.float32))
        try:
            if tensor.numel() > 1:
                return tensor.reshape(shape)
            return torch.full(shape, float(tensor.reshape(())))  # one value, any nesting
        except RuntimeError:
            raise OptionError(
                f"{type(self).__name__}: `{key}` has {tensor.numel()} values; with "
                f"normalization_dimension={self.normalization_dimension!r} it needs one value or "
                f"{int(np.prod(shape))} (size {shape})."
            ) from None

    def compute_statistics(self, data: torch.Tensor | np.ndarray) -> None:
        """Compute the normalization statistics from a batch of data shaped like the input.

        Example:
            >>> from deeptoolbox.layers import FeatureInput
            >>> layer = FeatureInput(2, normalization="zerocenter")
            >>> layer.compute_statistics(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
            >>> layer.mean.tolist()
            [2.0, 4.0]
        """
        x = torch.as_tensor(data, dtype=torch.float32)
        if x.dim() == len(self.shape):
            x = x.unsqueeze(0)
        if not self.accepts(x.shape[1:]):
            raise SizeMismatchError(
                f"{type(self).__name__}.compute_statistics: expected {self.describe_input()}; "
                f"received data of size {tuple(x.shape)}."
            )
        shape = self._statistic_shape()
        rank = len(self.shape)
        if self.normalization_dimension == "all":
            dims: tuple[int, ...] = tuple(range(x.dim()))
        elif self.normalization_dimension == "element":
            dims = (0,)
        else:
            dims = tuple(d for d in range(x.dim()) if d != (rank if rank <= 2 else 1))
        reducers = {
            "mean": lambda: x.mean(dim=dims),
            "std": lambda: x.std(dim=dims, unbiased=False).clamp_min(1e-8),
            "min": lambda: x.amin(dim=dims),
            "max": lambda: x.amax(dim=dims),
        }
        for key in _STATISTICS[self.normalization]:
            getattr(self, key).copy_(reducers[key]().reshape(shape))
        self._ready = True

    @property
    def has_statistics(self) -> bool:
        """True when every statistic the normalization needs is set."""
        if self._ready is None:
            self._ready = all(
                not torch.isnan(getattr(self, key)).any() for key in _STATISTICS[self.normalization]
            )
        return self._ready

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[override]
        super()._load_from_state_dict(*args, **kwargs)
        self._ready = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.normalization
        if mode == "none":
            return x
        if not self.has_statistics:
            raise NotInitializedError(
                f"{type(self).__name__} '{self.name}' uses normalization={mode!r} but its "
                f"statistics are not set. Pass {list(_STATISTICS[mode])} to the constructor or "
                "call compute_statistics(training_data) on the layer first."
            )
        if mode == "zerocenter":
            return x - self.mean
        if mode == "zscore":
            return (x - self.mean) / self.std
        scaled = (x - self.min) / (self.max - self.min).clamp_min(1e-12)
        return scaled * 2 - 1 if mode == "rescale-symmetric" else scaled


def _check_size(kind: str, shape: object, rank: int, example: str) -> Shape:
    if (
        not isinstance(shape, Sequence)
        or len(shape) != rank
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise OptionError(
            f"{kind}: the input size must be {rank} positive ints. Received: {shape!r}. "
            f"Example: {example}."
        )
    return tuple(shape)


@register_layer
class FeatureInput(InputLayer):
    """Input of feature vectors: batches of size (N, C).

    Example:
        >>> FeatureInput(4).shape
        (4,)
    """

    def __init__(self, num_features: int, *, normalization: str = "none", **options) -> None:
        check_positive_int("FeatureInput", "num_features", num_features, "FeatureInput(4)")
        self.num_features = num_features
        super().__init__((num_features,), normalization=normalization, **options)


@register_layer
class ImageInput(InputLayer):
    """Input of images: batches of size (N, C, H, W); ``size`` is (C, H, W).

    Example:
        >>> ImageInput((3, 32, 32), normalization="zerocenter", mean=[0.5, 0.4, 0.3]).shape
        (3, 32, 32)
    """

    def __init__(self, size: Sequence[int], *, normalization: str = "none", **options) -> None:
        shape = _check_size("ImageInput", size, 3, "ImageInput((3, 224, 224)) for C x H x W")
        super().__init__(shape, normalization=normalization, **options)
        self.size = shape


@register_layer
class VolumeInput(InputLayer):
    """Input of volumes: batches of size (N, C, D, H, W); ``size`` is (C, D, H, W).

    Example:
        >>> VolumeInput((1, 16, 32, 32)).shape
        (1, 16, 32, 32)
    """

    def __init__(self, size: Sequence[int], *, normalization: str = "none", **options) -> None:
        shape = _check_size("VolumeInput", size, 4, "VolumeInput((1, 16, 64, 64))")
        super().__init__(shape, normalization=normalization, **options)
        self.size = shape


@register_layer
class TensorInput(InputLayer):
    """Input of tensors of any rank: batches of size (N, *size); ``None`` marks a free length.

    Imported ONNX graphs use it for inputs that are not features, sequences, images or volumes.

    Example:
        >>> layer = TensorInput((None, 4, 4, 2))
        >>> layer.accepts((7, 4, 4, 2)), layer.accepts((7, 4, 4))
        (True, False)
    """

    def __init__(self, size: Sequence[int | None], *, name: str | None = None) -> None:
        if (
            isinstance(size, str | bytes)
            or not isinstance(size, Sequence)
            or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                for d in size
            )
        ):
            raise OptionError(
                f"TensorInput: `size` must be a sequence of ints >= 0 or None (free). "
                f"Received: size={size!r}. Example: TensorInput((None, 4))."
            )
        super().__init__(tuple(size), name=name)
        self.size = tuple(size)

    def _statistic_shape(self) -> tuple[int, ...]:
        return ()  # no normalization: nothing to size

    def describe_input(self) -> str:
        """``'tensors of size N x (1, any, any)'``: a free size reads "any" (it need not be a
        time length, the "T" of other messages)."""
        sizes = ", ".join("any" if d is None else str(d) for d in self.shape)
        return f"tensors of size N x ({sizes})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register_layer
class SequenceInput(InputLayer):
    """Input of sequences: batches of size (N, T, C), time length free unless ``length`` is set.

    With one channel, batches of size (N, T) are accepted too (token ids, for example) and
    get the channel dimension added.

    Example:
        >>> SequenceInput(12).shape
        (None, 12)
        >>> SequenceInput(1, length=50).shape
        (50, 1)
    """

    def __init__(
        self,
        num_channels: int,
        *,
        length: int | None = None,
        normalization: str = "none",
        **options,
    ) -> None:
        check_positive_int("SequenceInput", "num_channels", num_channels, "SequenceInput(12)")
        if length is not None:
            check_positive_int("SequenceInput", "length", length, "SequenceInput(12, length=100)")
        self.num_channels = num_channels
        self.length = length
        super().__init__((length, num_channels), normalization=normalization, **options)

    @property
    def is_identity(self) -> bool:
        return self.normalization == "none" and self.num_channels != 1

    def accepts(self, size: Sequence[int]) -> bool:
        if self.num_channels == 1 and len(size) == 1:
            size = (*size, 1)
        return super().accepts(size)

    def compute_statistics(self, data: torch.Tensor | np.ndarray) -> None:
        x = torch.as_tensor(data, dtype=torch.float32)
        if x.dim() == 2 and self.num_channels == 1 and not super().accepts(tuple(x.shape)):
            x = x.unsqueeze(-1)  # a batch (N, T) of one-channel sequences, as forward takes
        super().compute_statistics(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and self.num_channels == 1:
            x = x.unsqueeze(-1)
        return super().forward(x)
