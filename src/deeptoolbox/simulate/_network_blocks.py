"""Network blocks: a trained network as a block of a diagram (Simulink's Predict and
Stateful Predict blocks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError
from deeptoolbox.network import Network
from deeptoolbox.simulate._block import Block, check_number

__all__ = ["NetworkBlock", "StatefulNetworkBlock"]


def _input_rank(net: nn.Module, name: str | None) -> tuple[int, tuple]:
    if isinstance(net, Network) and name is not None:
        shape = tuple(getattr(net.layer(name), "shape", ()) or ())
        return len(shape), shape
    return 1, ()


def _to_network(value: torch.Tensor, rank: int, shape: tuple) -> torch.Tensor:
    if rank == 2:  # a sequence network: one time step
        return value[:, None, :]
    if rank >= 3:
        return value.reshape(value.shape[0], *shape)
    return value


def _to_signal(value: torch.Tensor) -> torch.Tensor:
    if value.dim() == 3 and value.shape[1] == 1:
        return value[:, 0]
    return value.reshape(value.shape[0], -1)


class _NetworkPorts(Block):
    def _ports(self, net: nn.Module) -> None:
        if not isinstance(net, nn.Module):
            raise OptionError(f"{type(self).__name__}: `net` must be a Network or a "
                              f"torch.nn.Module. Received: {type(net).__name__}.")  # fmt: skip
        self.net = net
        names = list(net.input_names) if isinstance(net, Network) else [None]
        outputs = list(net.output_names) if isinstance(net, Network) else [None]
        self.network_inputs = ("in",) if len(names) == 1 else tuple(names)
        self.input_ports = self.network_inputs
        self.network_outputs = ("out",) if len(outputs) == 1 else tuple(outputs)
        self._ranks = [_input_rank(net, n) for n in names]

    def _run(self, u: dict[str, torch.Tensor]) -> tuple:
        inputs = [_to_network(u[port], *rank)
                  for port, rank in zip(self.network_inputs, self._ranks, strict=True)]  # fmt: skip
        reference = u[self.network_inputs[0]]
        parameter = next(self.net.parameters(), None)
        if parameter is not None:  # the network's dtype and device, whatever the simulation's
            inputs = [x.to(dtype=parameter.dtype, device=parameter.device) for x in inputs]
        y = self.net(*inputs)
        outputs = y if isinstance(y, tuple) else (y,)
        return tuple(_to_signal(v).to(dtype=reference.dtype, device=reference.device)
                     for v in outputs)  # fmt: skip


class NetworkBlock(_NetworkPorts):
    """A network as a block (Simulink's Predict block): inputs (batch, channels) each
    step; one input port per network input (``"in"`` for one), one output port per output
    (``"out"`` for one). Sequence networks get each step as a length-1 sequence, image
    networks a flat vector reshaped to their input size. ``outputs=["fc1"]`` adds ports with
    those layers' activations. Differentiable: train it with ``train_closed_loop``.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3, name="fc"), L.Tanh(), L.Dense(1)])
        >>> block = NetworkBlock(net, outputs=["fc"])
        >>> block.output_ports
        ('out', 'fc')
        >>> {k: tuple(v.shape) for k, v in block.output(0.0, None, {"in": torch.ones(4, 2)}).items()}
        {'out': (4, 1), 'fc': (4, 3)}
    """

    def __init__(self, net: nn.Module, *, outputs: Sequence[str] = ()) -> None:
        super().__init__()
        self._ports(net)
        self.activations = tuple(outputs)
        if self.activations and not isinstance(net, Network):
            raise OptionError("NetworkBlock: `outputs` (layer activations) needs a Network.")
        for name in self.activations:
            net.layer(name)  # an unknown name raises LayerNotFoundError, with suggestions
            if name in self.network_outputs:
                raise OptionError(f"NetworkBlock: '{name}' is already an output port.")
        self.output_ports = self.network_outputs + self.activations

    def output(self, t, state, u):
        captured: dict[str, torch.Tensor] = {}
        hooks = [self.net.layer(name).register_forward_hook(
            lambda module, args, out, name=name: captured.__setitem__(name, out))
            for name in self.activations]  # fmt: skip
        try:
            outputs = self._run(u)
        finally:
            for hook in hooks:
                hook.remove()
        result = dict(zip(self.network_outputs, outputs, strict=True))
        for name in self.activations:
            result[name] = _to_signal(captured[name]).to(outputs[0].dtype)
        return result


def _activations(net: Network, inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every layer's output (the first tensor of it) on ``inputs``."""
    captured: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args, output):
            value = output[0] if isinstance(output, tuple | list) else output
            if isinstance(value, torch.Tensor):
                captured[name] = value.detach()

        return hook

    hooks = [net.layer(n).register_forward_hook(keep(n)) for n in net.execution_order]
    try:
        net(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def _step_problem(net: Network, ranks: list[tuple[int, tuple]], steps: int = 5) -> str | None:
    """The first layer whose outputs fed one step at a time (state carried) differ from its
    outputs on the whole sequence, or None. Run on random inputs, in eval mode."""
    generator = torch.Generator().manual_seed(0)
    parameter = next(net.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    inputs = [torch.randn(1, steps, *shape[1:], generator=generator, dtype=dtype)
              for _, shape in ranks]  # fmt: skip
    was_training, was_stateful, before = net.training, net.stateful, net.state
    try:
        net.eval()
        net.stateful = False
        with torch.no_grad():
            whole = _activations(net, inputs)
            net.stateful = True
            net.reset_state()
            pieces = [_activations(net, [x[:, t : t + 1] for x in inputs]) for t in range(steps)]
    except Exception:  # inputs the network cannot take (token ids...): nothing to compare
        return None
    finally:
        net.set_state(before)
        net.stateful = was_stateful
        net.train(was_training)
    for name in net.execution_order:
        if name not in whole or any(name not in p for p in pieces):
            continue
        full, parts = whole[name], [p[name] for p in pieces]
        if full.dim() >= 2 and full.shape[1] == steps and all(p.shape[1] == 1 for p in parts):
            stepped = torch.cat(parts, dim=1)
        else:  # no time axis (output_mode="last"...): the last step's value
            stepped = parts[-1]
        if stepped.shape != full.shape or not torch.allclose(stepped, full, rtol=1e-4,
                                                             atol=1e-5):  # fmt: skip
            return f"layer '{name}' ({type(net.layer(name)).__name__})"
    return None


class StatefulNetworkBlock(_NetworkPorts):
    """A recurrent network fed one sample per step (Simulink's Stateful Predict): the LSTM /
    GRU state is carried from step to step inside the simulation (a state per simulated
    case); with ``reset=True`` a ``"reset"`` input port zeroes a case's state when its value
    is > 0.5 (before that step's input is read). ``sample_time`` None: every step.

    Gradients flow into the inputs and weights at every step and along the recurrent state
    from one step to the next (full backpropagation through time; a closed-loop training's
    ``truncation`` cuts it as it cuts the other states).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.simulate import Diagram, FromData, simulate
        >>> net = Network([L.SequenceInput(1), L.GRU(4), L.Dense(1)])
        >>> x = torch.randn(1, 6, 1)
        >>> d = Diagram().add("x", FromData(torch.arange(6) * 0.1, x[0], interpolation="zoh"))
        >>> d = d.add("net", StatefulNetworkBlock(net)).connect("x", "net")
        >>> y = simulate(d, 0.5, dt=0.1)["net/out"]
        >>> torch.allclose(y, net(x), atol=1e-6)
        True
    """

    kind = "discrete"

    def __init__(self, net: nn.Module, *, reset: bool = False,
                 sample_time: float | None = None) -> None:  # fmt: skip
        super().__init__()
        self._ports(net)
        if (
            not isinstance(net, Network)
            or not net.state
            or any(rank != 2 for rank, _ in self._ranks)
        ):
            raise OptionError(
                "StatefulNetworkBlock: `net` must be a Network with sequence inputs and LSTM or "
                "GRU layers (a state to carry). For other networks use NetworkBlock."
            )
        problem = _step_problem(net, self._ranks)
        if problem is not None:
            raise OptionError(
                f"StatefulNetworkBlock: {problem} of network '{net.name}' gives other outputs "
                "fed one step at a time than on the whole sequence (it mixes time steps: a "
                "bidirectional layer, a convolution or pooling over time, attention...), so the "
                "block could not reproduce the network. Use a network whose layers work step "
                "by step (unidirectional LSTM / GRU / SimpleRNN, Dense, activations, "
                "normalization per step), or a NetworkBlock fed a window of samples."
            )
        self.reset = bool(reset)
        if self.reset:
            self.input_ports = (*self.input_ports, "reset")
        self.output_ports = self.network_outputs
        self.sample_time = check_number("StatefulNetworkBlock", "sample_time", sample_time,
                                        positive=True, allow_none=True)  # fmt: skip

    def start(self, context):
        return None  # zeros

    @staticmethod
    def _masked(state: Any, keep: torch.Tensor) -> Any:
        if state is None:
            return None
        return {layer: None if value is None else
                {k: v * keep.to(v.dtype)[:, None, None] for k, v in value.items()}
                for layer, value in state.items()}  # fmt: skip

    def output(self, t, state, u):
        net = self.net
        if self.reset and state is not None:
            state = self._masked(state, u["reset"][:, 0] <= 0.5)
        was_stateful, before = net.stateful, net.state
        try:
            net.stateful = True
            with net.state_gradients():
                net.set_state(state)
                outputs = self._run(u)
                after = net.state
        finally:
            net.set_state(before)
            net.stateful = was_stateful
        return {**dict(zip(self.network_outputs, outputs, strict=True)), "_state": after}

    def update(self, t, state, u, y):
        return y["_state"]
