"""Per-channel normalization fitted on training data and applied to any data later."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError
from deeptoolbox.signals._segments import SignalSegments

__all__ = ["ChannelNormalizer"]


def _values(data: Any, where: str) -> torch.Tensor:
    """The (..., T, C) float tensor of windows, a recording or an array."""
    if isinstance(data, SignalSegments):
        return data.data
    if hasattr(data, "signal"):
        data = data.signal
    if isinstance(data, list | tuple) and data and all(hasattr(d, "signal") for d in data):
        return torch.cat([torch.as_tensor(np.asarray(d.signal, np.float32)) for d in data])
    values = torch.as_tensor(np.asarray(data, np.float32) if not torch.is_tensor(data) else data)
    if values.ndim < 2:
        raise DataError(
            f"ChannelNormalizer.{where}: data must be (T, C) or (N, T, C), time then channels "
            f"last, or SignalSegments. Received shape {tuple(values.shape)}."
        )
    return values.float()


class ChannelNormalizer:
    """Z-score normalization per channel, with the mean and standard deviation of each channel
    over every sample of the training data (MATLAB's ``normalize`` with statistics kept, as
    a ``sequenceInputLayer``'s ``Normalization="zscore"`` learns them).

    Fit it on the training windows only, then apply it to training and test data alike, so
    nothing of the test data leaks into the model. A channel that never varies gets a
    standard deviation of 1.

    Example:
        >>> import torch
        >>> train = torch.tensor([[[0.0, 10.0], [2.0, 30.0]]])  # (N=1, T=2, C=2)
        >>> normalizer = ChannelNormalizer.fit(train)
        >>> normalizer.mean.tolist(), normalizer.std.tolist()
        ([1.0, 20.0], [1.0, 10.0])
        >>> normalizer(torch.tensor([[3.0, 40.0]])).tolist()
        [[2.0, 2.0]]
    """

    def __init__(self, mean: Any, std: Any) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if self.mean.shape != self.std.shape or not bool((self.std > 0).all()):
            raise DataError(
                "ChannelNormalizer: `mean` and `std` must have one value per channel, std > 0. "
                f"Received {self.mean.numel()} means and std {self.std.tolist()}."
            )

    @classmethod
    def fit(cls, data: Any) -> ChannelNormalizer:
        """Learn each channel's mean and standard deviation from ``data``: SignalSegments,
        a recording (or a list of them), a (T, C) or (N, T, C) array or tensor."""
        values = _values(data, "fit")
        flat = values.reshape(-1, values.shape[-1]).double()
        if flat.shape[0] < 2:
            raise DataError(
                f"ChannelNormalizer.fit: need at least 2 samples per channel. Received shape "
                f"{tuple(values.shape)}."
            )
        std = flat.std(dim=0, unbiased=False)
        return cls(flat.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))

    def __call__(self, data: Any) -> Any:
        """``(data - mean) / std`` per channel: SignalSegments in, SignalSegments out; a
        tensor or array (..., T, C) in, a float32 tensor out."""
        values = _values(data, "apply")
        if values.shape[-1] != self.mean.numel():
            raise DataError(
                f"ChannelNormalizer: the data have {values.shape[-1]} channels (last axis of "
                f"shape {tuple(values.shape)}); the normalizer was fitted on "
                f"{self.mean.numel()}."
            )
        normalized = (values - self.mean.to(values.device)) / self.std.to(values.device)
        return data.with_data(normalized) if isinstance(data, SignalSegments) else normalized

    def __repr__(self) -> str:
        return f"ChannelNormalizer({self.mean.numel()} channels)"
