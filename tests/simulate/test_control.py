"""as_control_system: the python-control system computes what the torch model computes."""

import control
import numpy as np
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.simulate import (
    Diagram,
    NetworkBlock,
    ODEBlock,
    StateSpace,
    Step,
    Sum,
    UnitDelay,
    as_control_system,
    simulate,
)


def test_a_network_controller_closed_with_a_plant_in_python_control_equals_simulate():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(1), L.Dense(8), L.Tanh(), L.Dense(1)])
    plant = ODEBlock(lambda t, x, u: torch.cat([x[:, 1:], -x[:, :1] - 0.5 * x[:, 1:] + u], 1),
                     x0=[0.0, 0.0], output=lambda t, x, u: x[:, :1])  # fmt: skip
    plant.feedthrough = False
    ctrl = as_control_system(net, name="ctrl")
    sys_plant = as_control_system(plant, inputs=1, name="plant")
    error = control.summing_junction(["r", "-y"], "e", name="error")
    loop = control.interconnect(
        [ctrl, sys_plant, error], connections=[["ctrl.u[0]", "error.e"],
        ["plant.u[0]", "ctrl.y[0]"], ["error.y", "plant.y[0]"]],
        inplist=["error.r"], outlist=["plant.y[0]"],
    )  # fmt: skip
    times = np.linspace(0, 3, 31)
    reference = control.input_output_response(
        loop, times, np.ones_like(times), solve_ivp_kwargs={"rtol": 1e-8, "atol": 1e-10}
    )
    d = Diagram().add("r", Step(0.0)).add("e", Sum("+-")).add("ctrl", NetworkBlock(net))
    d.add("plant", plant).connect("r", "e/in1").connect("plant", "e/in2")
    d.connect("e", "ctrl").connect("ctrl", "plant")
    ours = simulate(d, 3.0, dt=0.1, solver="dopri5", dtype=torch.float64)["plant/out"]
    np.testing.assert_allclose(ours[0, :, 0].detach().numpy(), reference.outputs, atol=1e-5)


def test_a_state_space_block_matches_control_ss():
    A, B, C = [[0.0, 1.0], [-2.0, -0.3]], [[0.0], [1.0]], [[1.0, 0.0]]
    system = as_control_system(StateSpace(A, B, C))
    times = np.linspace(0, 4, 41)
    ours = control.input_output_response(
        system,
        times,
        np.ones_like(times),
        X0=[0.0, 0.0],
        solve_ivp_kwargs={"rtol": 1e-9, "atol": 1e-11},
    )
    reference = control.step_response(control.ss(A, B, C, 0), times)
    np.testing.assert_allclose(ours.outputs, reference.outputs.reshape(-1), atol=1e-6)


def test_discrete_blocks_are_refused():
    with pytest.raises(OptionError, match="stateless or continuous"):
        as_control_system(UnitDelay())
