"""Simulation: networks as blocks in system models, batched and differentiable in torch.

Build a :class:`Diagram` of blocks (sources, math, discrete and continuous dynamics, PID,
``ODEBlock`` plants, ``NetworkBlock`` / ``StatefulNetworkBlock`` for trained networks),
:func:`simulate` it (Euler, RK4, or dopri5 through torchdiffeq) for many cases at once, train
network blocks by backpropagation through the simulation (:func:`train_closed_loop`),
exchange models as FMUs (:class:`FMUBlock`, :func:`export_fmu`) and hand them to
python-control (:func:`as_control_system`). See docs/simulate.md.

Example:
    >>> from deeptoolbox.simulate import Diagram, Integrator, Step, simulate
    >>> d = Diagram().add("u", Step(0.5)).add("x", Integrator()).connect("u", "x")
    >>> result = simulate(d, 1.0, dt=0.1)
    >>> result["x/out"].shape, round(result["x/out"][0, -1, 0].item(), 6)
    (torch.Size([1, 11, 1]), 0.5)
"""

from deeptoolbox.errors import DiagramError as DiagramError
from deeptoolbox.errors import SimulationError as SimulationError
from deeptoolbox.simulate._block import Block as Block
from deeptoolbox.simulate._block import Inport as Inport
from deeptoolbox.simulate._block import Outport as Outport
from deeptoolbox.simulate._block import SimulationContext as SimulationContext
from deeptoolbox.simulate._closed_loop import train_closed_loop as train_closed_loop
from deeptoolbox.simulate._control import as_control_system as as_control_system
from deeptoolbox.simulate._diagram import Diagram as Diagram
from deeptoolbox.simulate._discrete import RateLimiter as RateLimiter
from deeptoolbox.simulate._discrete import UnitDelay as UnitDelay
from deeptoolbox.simulate._discrete import ZeroOrderHold as ZeroOrderHold
from deeptoolbox.simulate._fmu_export import export_fmu as export_fmu
from deeptoolbox.simulate._fmu_import import FMUBlock as FMUBlock
from deeptoolbox.simulate._linear import PID as PID
from deeptoolbox.simulate._linear import Integrator as Integrator
from deeptoolbox.simulate._linear import ODEBlock as ODEBlock
from deeptoolbox.simulate._linear import StateSpace as StateSpace
from deeptoolbox.simulate._linear import TransferFunction as TransferFunction
from deeptoolbox.simulate._math import DeadZone as DeadZone
from deeptoolbox.simulate._math import Gain as Gain
from deeptoolbox.simulate._math import Mux as Mux
from deeptoolbox.simulate._math import Product as Product
from deeptoolbox.simulate._math import Saturation as Saturation
from deeptoolbox.simulate._math import Scope as Scope
from deeptoolbox.simulate._math import Sum as Sum
from deeptoolbox.simulate._math import ToWorkspace as ToWorkspace
from deeptoolbox.simulate._network_blocks import NetworkBlock as NetworkBlock
from deeptoolbox.simulate._network_blocks import StatefulNetworkBlock as StatefulNetworkBlock
from deeptoolbox.simulate._result import SimulationResult as SimulationResult
from deeptoolbox.simulate._simulate import SOLVERS as SOLVERS
from deeptoolbox.simulate._simulate import Simulator as Simulator
from deeptoolbox.simulate._simulate import simulate as simulate
from deeptoolbox.simulate._sources import Constant as Constant
from deeptoolbox.simulate._sources import FromArray as FromArray
from deeptoolbox.simulate._sources import FromData as FromData
from deeptoolbox.simulate._sources import Noise as Noise
from deeptoolbox.simulate._sources import Pulse as Pulse
from deeptoolbox.simulate._sources import Ramp as Ramp
from deeptoolbox.simulate._sources import Sine as Sine
from deeptoolbox.simulate._sources import Step as Step

__all__ = [
    # diagrams and simulation
    "Diagram", "simulate", "Simulator", "SimulationResult", "SimulationContext", "SOLVERS",
    "Block", "Inport", "Outport",
    # sources
    "Constant", "Step", "Ramp", "Sine", "Pulse", "FromData", "FromArray", "Noise",
    # math, nonlinearities, loggers
    "Gain", "Sum", "Product", "Mux", "Saturation", "DeadZone", "Scope", "ToWorkspace",
    # discrete and continuous dynamics
    "UnitDelay", "ZeroOrderHold", "RateLimiter", "Integrator", "StateSpace",
    "TransferFunction", "PID", "ODEBlock",
    # networks, closed-loop training
    "NetworkBlock", "StatefulNetworkBlock", "train_closed_loop",
    # interoperability
    "FMUBlock", "export_fmu", "as_control_system",
    # errors
    "DiagramError", "SimulationError",
]  # fmt: skip
