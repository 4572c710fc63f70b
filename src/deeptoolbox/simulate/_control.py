"""as_control_system(): a network or block as a python-control nonlinear I/O system."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.errors import OptionError
from deeptoolbox.network import Network
from deeptoolbox.simulate._block import Block, SimulationContext
from deeptoolbox.simulate._linear import PID, StateSpace
from deeptoolbox.simulate._network_blocks import NetworkBlock

__all__ = ["as_control_system"]


def _input_width(block: Block, inputs: int | None) -> int:
    if inputs is not None:
        return int(inputs)
    net = getattr(block, "net", None)
    if isinstance(net, Network) and len(net.input_names) == 1:
        shape = getattr(net.layer(net.input_names[0]), "shape", None)
        if shape:
            return int(np.prod([d for d in shape if d is not None]))
    if not block.input_ports:
        return 0
    if isinstance(block, StateSpace):
        return int(block.B.shape[1])
    if isinstance(block, PID):
        return 1
    raise OptionError(f"as_control_system: cannot tell how many inputs {type(block).__name__} "
                      "takes; pass inputs=<count>.")  # fmt: skip


def as_control_system(model: Any, *, inputs: int | None = None, name: str | None = None) -> Any:
    """``model`` (a Network, a torch module, or a stateless or continuous block with one
    input and one output port: NetworkBlock, ODEBlock, StateSpace, PID...) as a
    ``control.NonlinearIOSystem`` (``control.nlsys``), for python-control's interconnection,
    simulation and analysis (linearization, operating points).

    Calls run the torch model in float64 without gradients, one sample at a time.

    Example:
        >>> import control, numpy as np
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(1)])
        >>> system = as_control_system(net, name="net")
        >>> system.ninputs, system.noutputs, system.nstates
        (2, 1, 0)
        >>> bool(np.isclose(system.output(0.0, [], [1.0, 2.0])[0],
        ...                 net(__import__("torch").tensor([[1.0, 2.0]])).item(), atol=1e-6))
        True
    """
    import control

    block = model if isinstance(model, Block) else None
    if block is None:
        if not isinstance(model, nn.Module):
            raise OptionError(f"as_control_system: expects a Network, a torch module or a "
                              f"simulate block. Received: {type(model).__name__}.")  # fmt: skip
        block = NetworkBlock(model)
    if block.kind == "discrete" or len(block.input_ports) > 1 or len(block.output_ports) != 1:
        raise OptionError(
            f"as_control_system: {type(block).__name__} must be stateless or continuous with at "
            f"most one input and exactly one output port. Received: inputs {block.input_ports}, "
            f"outputs {block.output_ports}, kind {block.kind!r}."
        )
    width = _input_width(block, inputs)
    context = SimulationContext(1, torch.float64, torch.device("cpu"), 1.0, 1.0)
    initial = block.start(context)
    states = initial.shape[1] if block.kind == "continuous" else 0
    port = block.output_ports[0]

    def signals(x, u):
        own = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(1, -1)) if states else (
            initial)  # fmt: skip
        given = {block.input_ports[0]: torch.as_tensor(
            np.asarray(u, dtype=np.float64).reshape(1, width))} if width else None  # fmt: skip
        return own, given

    @torch.no_grad()
    def output(t, x, u, params):
        own, given = signals(x, u)
        return block.output(float(t), own, given)[port].double().numpy().reshape(-1)

    @torch.no_grad()
    def update(t, x, u, params):
        own, given = signals(x, u)
        return block.derivative(float(t), own, given).double().numpy().reshape(-1)

    probe = initial.numpy().reshape(-1) if states else []
    outputs = len(output(0.0, probe, np.zeros(width), None))
    if states:
        return control.nlsys(update, output, inputs=width, outputs=outputs, states=states,
                             name=name)  # fmt: skip
    return control.nlsys(None, output, inputs=width, outputs=outputs, name=name)
