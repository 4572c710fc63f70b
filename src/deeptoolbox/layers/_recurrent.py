"""Recurrent layers on sequences (N, T, C): LSTM and GRU, optionally bidirectional.

Each wraps ``torch.nn.LSTM`` / ``torch.nn.GRU`` (batch first), so cuDNN kernels are used on
GPUs. Weights start as in MATLAB: Glorot input weights, orthogonal recurrent weights, and
for the LSTM a forget-gate bias of one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deeptoolbox.errors import SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    check_positive_int,
    check_probability,
    format_shape,
    known,
    register_layer,
    require_rank,
)


class _Recurrent(Layer):
    cell = "lstm"

    def __init__(
        self,
        hidden_size: int,
        *,
        output_mode: str = "sequence",
        bidirectional: bool = False,
        num_layers: int = 1,
        dropout: float = 0.0,
        has_padding_mask: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.has_padding_mask = bool(has_padding_mask)
        if self.has_padding_mask:
            self.input_names = ("in", "mask")
        self.hidden_size = check_positive_int(kind, "hidden_size", hidden_size, f"{kind}(64)")
        self.output_mode = check_choice(kind, "output_mode", output_mode, ("sequence", "last"))
        self.bidirectional = bool(bidirectional)
        self.num_layers = check_positive_int(
            kind, "num_layers", num_layers, f"{kind}(64, num_layers=2)"
        )
        self.dropout = check_probability(kind, "dropout", dropout)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape = input_shapes[0]
        if self.has_padding_mask:
            mask = input_shapes[1]
            if len(mask) not in (1, 2) or (len(mask) == 2 and mask[1] != 1):
                raise SizeMismatchError(
                    f"{type(self).__name__}: the mask input must be (T,) or (T, 1); received "
                    f"{format_shape(mask)}."
                )
        require_rank(self, shape, [2], "sequences (T, C)")
        known(self, shape, [1], "number of channels")
        width = self.hidden_size * (2 if self.bidirectional else 1)
        return (shape[0], width) if self.output_mode == "sequence" else (width,)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        module = nn.LSTM if self.cell == "lstm" else nn.GRU
        self.rnn = module(
            int(input_shapes[0][1]),  # type: ignore[arg-type]
            self.hidden_size,
            num_layers=self.num_layers,
            batch_first=True,
            bidirectional=self.bidirectional,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
        )
        self._initialize()
        super().build(input_shapes)

    def _initialize(self) -> None:
        gates = 4 if self.cell == "lstm" else 3
        with torch.no_grad():
            for name, param in self.rnn.named_parameters():
                if name.startswith("weight_ih"):
                    for chunk in param.chunk(gates, 0):
                        nn.init.xavier_uniform_(chunk)
                elif name.startswith("weight_hh"):
                    for chunk in param.chunk(gates, 0):
                        nn.init.orthogonal_(chunk)
                else:
                    param.zero_()
                    if self.cell == "lstm" and name.startswith("bias_ih"):
                        param[self.hidden_size : 2 * self.hidden_size] = 1.0  # forget gate

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            return self._masked(x, mask)
        output, state = self.rnn(x)
        if self.output_mode == "sequence":
            return output
        return self._last(state)

    def _last(self, state) -> torch.Tensor:
        hidden = state[0] if self.cell == "lstm" else state
        if self.bidirectional:
            return torch.cat((hidden[-2], hidden[-1]), dim=-1)
        return hidden[-1]

    def _masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run on the masked-in steps only, wherever the padding is (left, right or inside)."""
        keep = mask.reshape(x.shape[0], -1) != 0
        order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # data first
        gathered = x.gather(1, order.unsqueeze(-1).expand_as(x))
        lengths = keep.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(gathered, lengths, batch_first=True, enforce_sorted=False)
        output, state = self.rnn(packed)
        if self.output_mode == "last":
            return self._last(state)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
        index = order.unsqueeze(-1).expand_as(output)
        return torch.zeros_like(output).scatter(1, index, output)  # padded steps give zeros


@register_layer
class LSTM(_Recurrent):
    """Long short-term memory layer on sequences (N, T, C).

    ``output_mode="sequence"`` returns (N, T, H) (or 2H when bidirectional);
    ``output_mode="last"`` returns (N, H): the final hidden state (for a bidirectional layer,
    the forward direction's final state joined with the backward direction's).
    With ``has_padding_mask=True`` the layer gets a second input port, ``mask``: (N, T) or
    (N, T, 1), 1 for data and 0 for padding; padded steps are skipped wherever they are (left
    or right padding), "last" gives the state after the last real step, and padded steps of
    the output are zeros.

    Example:
        >>> import torch
        >>> layer = LSTM(32, output_mode="last")
        >>> layer.build([(None, 6)])
        >>> layer(torch.zeros(4, 20, 6)).shape
        torch.Size([4, 32])
    """

    cell = "lstm"


@register_layer
class GRU(_Recurrent):
    """Gated recurrent unit layer on sequences (N, T, C); options as :class:`LSTM`.

    Example:
        >>> import torch
        >>> layer = GRU(16, bidirectional=True)
        >>> layer.build([(None, 6)])
        >>> layer(torch.zeros(4, 20, 6)).shape
        torch.Size([4, 20, 32])
    """

    cell = "gru"
