"""Recurrent layers on sequences (N, T, C): LSTM, GRU and SimpleRNN, optionally bidirectional.

Each wraps ``torch.nn.LSTM`` / ``torch.nn.GRU`` / ``torch.nn.RNN`` (batch first), so cuDNN kernels are used on
GPUs. Weights start as in MATLAB: Glorot input weights, orthogonal recurrent weights, and
for the LSTM a forget-gate bias of one. In stateful mode (see :class:`StatefulLayer`) a call
starts from the state the previous call ended in.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deeptoolbox.errors import InputSizeError, OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Shape,
    StatefulLayer,
    check_choice,
    check_positive_int,
    check_probability,
    format_shape,
    known,
    register_layer,
    require_rank,
)

OUTPUT_MODES = ("sequence", "last", "final_state")


class _Recurrent(StatefulLayer):
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
        self.output_mode = check_choice(kind, "output_mode", output_mode, OUTPUT_MODES)
        self.bidirectional = bool(bidirectional)
        self.num_layers = check_positive_int(
            kind, "num_layers", num_layers, f"{kind}(64, num_layers=2)"
        )
        self.dropout = check_probability(kind, "dropout", dropout)
        self.state_names = ("hidden", "cell") if self.cell == "lstm" else ("hidden",)
        self.register_buffer("state_hidden", None, persistent=False)  # torch's layout:
        self.register_buffer("state_cell", None, persistent=False)  # (layers x dirs, N, H)

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
        module = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[self.cell]
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
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]
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
        initial = self._initial_state(x) if self.stateful else None
        if mask is not None:
            return self._masked(x, mask, initial)
        output, state = self.rnn(x, initial)
        if self.stateful:
            self._keep(state)
        if self.output_mode == "sequence":
            return output
        if self.output_mode == "last" and self.bidirectional:
            return output[:, -1]  # MATLAB: the last step of the output sequence
        return self._final(state)

    def _final(self, state) -> torch.Tensor:
        """Each direction's final hidden state (torch's h_n, ONNX's Y_h), top layer."""
        hidden = state[0] if self.cell == "lstm" else state
        if self.bidirectional:
            return torch.cat((hidden[-2], hidden[-1]), dim=-1)
        return hidden[-1]

    def _masked(self, x: torch.Tensor, mask: torch.Tensor, initial) -> torch.Tensor:
        """Run on the masked-in steps only, wherever the padding is (left, right or inside)."""
        keep = mask.reshape(x.shape[0], -1) != 0
        order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # data first
        gathered = x.gather(1, order.unsqueeze(-1).expand_as(x))
        lengths = keep.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(gathered, lengths, batch_first=True, enforce_sorted=False)
        output, state = self.rnn(packed, initial)
        if self.stateful:
            self._keep(state)
        if self.output_mode == "final_state" or (
            self.output_mode == "last" and not self.bidirectional
        ):
            return self._final(state)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
        if self.output_mode == "last":  # the output at each sequence's last real step
            rows = torch.arange(x.shape[0], device=output.device)
            return output[rows, (lengths - 1).to(output.device)]
        index = order.unsqueeze(-1).expand_as(output)
        return torch.zeros_like(output).scatter(1, index, output)  # padded steps give zeros

    # -- state ----------------------------------------------------------------------------
    def _initial_state(self, x: torch.Tensor):
        hidden, cell = self.state_hidden, self.state_cell
        if hidden is None:
            return None
        if hidden.shape[1] != x.shape[0]:
            raise InputSizeError(
                f"{type(self).__name__} '{self.name}' keeps a state for a batch of "
                f"{hidden.shape[1]} sequences; this batch has {x.shape[0]}. Call "
                "net.reset_state() before starting other sequences, or set a state of this "
                "batch size with net.set_state(...)."
            )
        if hidden.is_inference() and not torch.is_inference_mode_enabled():
            hidden = hidden.clone()  # kept during predict(), used now with autograd
            cell = None if cell is None else cell.clone()
        return (hidden, cell) if self.cell == "lstm" else hidden

    def _keep(self, state) -> None:
        hidden, cell = state if self.cell == "lstm" else (state, None)
        if not self.state_gradients:
            hidden, cell = hidden.detach(), None if cell is None else cell.detach()
        self.state_hidden, self.state_cell = hidden, cell

    def get_state(self) -> dict[str, torch.Tensor] | None:
        """The kept state, batch first: ``{"hidden": (N, layers x directions, H)}`` and for
        an LSTM ``"cell"`` of the same size; None when there is none (zeros)."""
        if self.state_hidden is None:
            return None
        tensors = {"hidden": self.state_hidden, "cell": self.state_cell}
        with torch.inference_mode(False):
            return {k: tensors[k].transpose(0, 1).clone() for k in self.state_names}

    def set_state(self, state: dict[str, torch.Tensor] | None) -> None:
        """Start the next stateful call from ``state`` (as :meth:`get_state` returns it;
        None: zeros)."""
        if state is None:
            self.state_hidden = self.state_cell = None
            return
        kind = f"{type(self).__name__} '{self.name}'"
        if not isinstance(state, dict) or set(state) != set(self.state_names):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise OptionError(
                f"{kind}: a state is a dict with the tensors {list(self.state_names)}; "
                f"received {found}."
            )
        depth = self.num_layers * (2 if self.bidirectional else 1)
        reference = next(self.parameters(), None)
        converted = {}
        for key in self.state_names:
            tensor = torch.as_tensor(state[key])
            batch = tensor.shape[0] if tensor.dim() == 3 else "N"
            if tensor.dim() != 3 or tuple(tensor.shape[1:]) != (depth, self.hidden_size):
                raise OptionError(
                    f"{kind}: state '{key}' must be (N, {depth}, {self.hidden_size}) (batch, "
                    f"layers x directions, hidden size); received {tuple(tensor.shape)}, "
                    f"expected ({batch}, {depth}, {self.hidden_size})."
                )
            if reference is not None:
                tensor = tensor.to(device=reference.device, dtype=reference.dtype)
            if not self.state_gradients:
                tensor = tensor.detach()
            converted[key] = tensor.transpose(0, 1).contiguous()
        self.state_hidden = converted["hidden"]
        self.state_cell = converted.get("cell")


@register_layer
class LSTM(_Recurrent):
    """Long short-term memory layer on sequences (N, T, C).

    ``output_mode="sequence"`` returns (N, T, H) (or 2H when bidirectional);
    ``output_mode="last"`` returns (N, H): the last time step of the output sequence, as
    MATLAB's ``OutputMode="last"`` (for a bidirectional layer: the forward direction's final
    state joined with the backward direction's state after reading only the last step);
    ``output_mode="final_state"`` returns each direction's final hidden state (torch's
    ``h_n``, ONNX's ``Y_h``, Keras's ``Bidirectional(return_sequences=False)``: the backward
    half is its state after reading the whole sequence). The two differ only for
    bidirectional layers.
    With ``has_padding_mask=True`` the layer gets a second input port, ``mask``: (N, T) or
    (N, T, 1), 1 for data and 0 for padding; padded steps are skipped wherever they are (left
    or right padding), "last" and "final_state" take each sequence's last real step as its
    end, and padded steps of the output are zeros. ``stateful`` mode carries the state from
    one call to the next (see :class:`~deeptoolbox.layers.StatefulLayer`).

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


@register_layer
class SimpleRNN(_Recurrent):
    """Fully connected recurrent layer on sequences (N, T, C): h_t = tanh(W x_t + R h_(t-1) + b).

    Keras's ``SimpleRNN`` and torch's ``nn.RNN`` (tanh); options as :class:`LSTM`.

    Example:
        >>> import torch
        >>> layer = SimpleRNN(8, output_mode="last")
        >>> layer.build([(None, 3)])
        >>> layer(torch.zeros(2, 5, 3)).shape
        torch.Size([2, 8])
    """

    cell = "rnn"
