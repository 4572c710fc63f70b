"""Blocks and diagrams against exact references: scipy.signal responses, difference
equations, RK4's order of convergence, gradients, batching, and the errors of bad input."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import signal

from deeptoolbox.errors import DiagramError, OptionError, SimulationError
from deeptoolbox.simulate import (
    PID,
    Constant,
    DeadZone,
    Diagram,
    FromData,
    Gain,
    Inport,
    Integrator,
    Noise,
    ODEBlock,
    Outport,
    Product,
    Pulse,
    RateLimiter,
    Saturation,
    Scope,
    Sine,
    StateSpace,
    Step,
    Sum,
    TransferFunction,
    UnitDelay,
    ZeroOrderHold,
    simulate,
)  # fmt: skip

A = [[0.0, 1.0], [-4.0, -0.8]]
B = [[0.0], [1.0]]
C = [[1.0, 0.0]]


def _fed(block, source=None):
    d = Diagram().add("u", source or Step(0.0)).add("b", block)
    return d.connect("u", "b")


def test_state_space_and_transfer_function_step_equal_scipy():
    times = np.arange(0, 501) * 0.01
    _, reference = signal.step((A, B, C, [[0.0]]), T=times)
    ss = simulate(_fed(StateSpace(A, B, C)), 5.0, dt=0.01, solver="rk4", dtype=torch.float64)
    np.testing.assert_allclose(ss["b/out"][0, :, 0].numpy(), reference, atol=1e-8)
    _, tf_reference = signal.step(([2.0, 1.0], [1.0, 3.0, 2.0]), T=times)
    tf = simulate(_fed(TransferFunction([2.0, 1.0], [1.0, 3.0, 2.0])), 5.0, dt=0.01,
                  solver="rk4", dtype=torch.float64)  # fmt: skip
    np.testing.assert_allclose(tf["b/out"][0, :, 0].numpy(), tf_reference, atol=1e-8)


def test_impulse_responses_equal_scipy_continuous_and_discrete():
    times = np.arange(0, 301) * 0.01
    _, reference = signal.impulse((A, B, C, [[0.0]]), T=times)
    # an impulse into x' = Ax + Bu is the free response from x(0) = B
    free = Diagram().add("u", Constant(0.0)).add("b", StateSpace(A, B, C, initial=[0.0, 1.0]))
    result = simulate(free.connect("u", "b"), 3.0, dt=0.01, solver="rk4", dtype=torch.float64)
    np.testing.assert_allclose(result["b/out"][0, :, 0].numpy(), reference, atol=1e-8)
    num, den, ts = [0.5, 0.2], [1.0, -0.6, 0.08], 0.1
    _, (discrete,) = signal.dimpulse((num, den, ts), n=31)
    pulse = FromData([0.0, 0.1], [[1.0], [0.0]], interpolation="zoh")
    tf = _fed(TransferFunction(num, den, sample_time=ts), pulse)
    out = simulate(tf, 3.0, dt=0.1, dtype=torch.float64)["b/out"][0, :, 0].numpy()
    np.testing.assert_allclose(out, discrete[:, 0], atol=1e-12)


def test_discrete_blocks_equal_their_difference_equations():
    u = np.sin(np.arange(41) * 0.3) * 3
    data = FromData(np.arange(41) * 0.05, u[:, None], interpolation="zoh")
    d = Diagram().add("u", data).add("z", UnitDelay(0.5)).add("h", ZeroOrderHold(0.2))
    d.add("r", RateLimiter(4.0, 8.0, sample_time=0.1))
    for name in ("z", "h", "r"):
        d.connect("u", name)
    out = simulate(d, 2.0, dt=0.05, dtype=torch.float64)
    np.testing.assert_allclose(out["z/out"][0, :, 0], np.r_[0.5, u[:-1]])
    np.testing.assert_allclose(out["h/out"][0, :, 0], u[(np.arange(41) // 4) * 4])
    y, expected = 0.0, []
    for k in range(41):
        if k % 2 == 0:
            y = y + np.clip(u[k] - y, -0.8, 0.4)
        expected.append(y)
    np.testing.assert_allclose(out["r/out"][0, :, 0], expected, atol=1e-12)


def test_rk4_converges_with_order_four_and_euler_with_order_one():
    def error(solver, dt):
        d = Diagram().add("p", ODEBlock(lambda t, x, u: -x * (1 + math.cos(t)), x0=1.0,
                                        inputs=0))  # fmt: skip
        x = simulate(d, 2.0, dt=dt, solver=solver, dtype=torch.float64)["p/out"][0, -1, 0]
        return abs(x.item() - math.exp(-2.0 - math.sin(2.0)))

    rk4 = math.log2(error("rk4", 0.2) / error("rk4", 0.1))
    euler = math.log2(error("euler", 0.02) / error("euler", 0.01))
    assert 3.7 < rk4 < 4.4 and 0.9 < euler < 1.1
    assert error("dopri5", 0.5) < 1e-7


@pytest.mark.parametrize("source", ["step", "zoh"])
def test_a_jump_on_the_grid_keeps_rk4_fourth_order(source):
    # mass-spring-damper x'' = u - 4 x - 0.4 x', u steps 0 -> 1 at t = 1 (on the grid): the
    # solver's stages hold the input of the step's start, so nothing moves before t = 1
    system = signal.lti([[0, 1], [-4, -0.4]], [[0], [1]], [[1, 0]], [[0]])
    times = np.linspace(0, 4, 401)
    _, response = signal.step(system, T=times[100:] - 1.0)
    exact = np.concatenate([np.zeros(100), response])

    def error(dt):
        if source == "step":
            u = Step(time=1.0)
        else:
            u = FromData([0.0, 1.0, 4.0], [[0.0], [1.0], [1.0]], interpolation="zoh")
        plant = ODEBlock(lambda t, x, u: torch.cat([x[:, 1:], u - 4 * x[:, :1] - 0.4 * x[:, 1:]],
                                                   1), x0=[0.0, 0.0])  # fmt: skip
        d = Diagram().add("u", u).add("p", plant).connect("u", "p")
        out = simulate(d, 4.0, dt=dt, solver="rk4", dtype=torch.float64)["p/out"][0, :, 0]
        return float(np.abs(out.numpy() - exact[:: round(dt / 0.01)]).max())

    assert error(0.04) < 1e-5  # was 2.9e-3 with the new input one stage early
    assert math.log2(error(0.04) / error(0.02)) > 3.5


def test_sources_math_and_nonlinear_blocks():
    d = Diagram().add("s", Sine(2.0, frequency=math.pi, bias=1.0)).add("p", Pulse(period=0.4))
    d.add("sat", Saturation(0.0, 2.5)).add("dz", DeadZone(-0.5, 0.5)).add("m", Product("*/"))
    d.add("k", Gain([[1.0], [2.0]], matrix=True)).add("c", Constant(4.0))
    d.connect("s", "sat").connect("s", "dz").connect("s", "m/in1").connect("c", "m/in2")
    d.connect("c", "k")
    out = simulate(d, 1.0, dt=0.1, dtype=torch.float64)
    s = 2 * np.sin(np.pi * np.arange(11) * 0.1) + 1
    np.testing.assert_allclose(out["s/out"][0, :, 0], s, atol=1e-12)
    np.testing.assert_allclose(out["sat/out"][0, :, 0], np.clip(s, 0, 2.5), atol=1e-12)
    np.testing.assert_allclose(out["dz/out"][0, :, 0], np.where(
        s > 0.5, s - 0.5, np.where(s < -0.5, s + 0.5, 0)), atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(out["m/out"][0, :, 0], s / 4, atol=1e-12)
    assert out["k/out"][0, 0].tolist() == [4.0, 8.0]
    assert out["p/out"][0, :, 0].tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0]


def test_pid_anti_windup_recovers_faster_than_no_anti_windup():
    def overshoot(anti_windup):
        plant = TransferFunction([1.0], [1.0, 1.0])
        d = Diagram().add("r", Step(0.0)).add("e", Sum("+-")).add("plant", plant)
        d.add("pid", PID(2.0, 3.0, 0.1, N=50.0, lower=-1.2, upper=1.2, anti_windup=anti_windup))
        d.connect("r", "e/in1").connect("plant", "e/in2").connect("e", "pid")
        d.connect("pid", "plant")
        y = simulate(d, 8.0, dt=0.04, solver="rk4")["plant/out"][0, :, 0]
        assert abs(y[-1].item() - 1.0) < 1e-2  # integral action: no steady-state error
        return y.max().item() - 1.0

    assert overshoot("back-calculation") < overshoot("none")
    assert overshoot("clamping") < overshoot("none")


def test_subsystem_equals_the_flat_diagram_and_scope_logs():
    inner = Diagram("loop").add("u", Inport()).add("k", Gain(-1.5)).add("x", Integrator(1.0))
    inner.add("y", Outport()).connect("u", "k").connect("k", "x").connect("x", "y")
    top = Diagram().add("c", Constant(1.0)).add("sub", inner).add("scope", Scope())
    top.connect("c", "sub/u").connect("sub/y", "scope")
    flat = Diagram().add("c", Constant(1.0)).add("k", Gain(-1.5)).add("x", Integrator(1.0))
    flat.connect("c", "k").connect("k", "x")
    a, b = simulate(top, 1.0, dt=0.1), simulate(flat, 1.0, dt=0.1)
    assert torch.equal(a["scope"], b["x/out"]) and torch.equal(a["sub.x/out"], b["x/out"])


def _loop(gain, x0):
    d = Diagram().add("r", Constant(1.0)).add("e", Sum("+-")).add("k", Gain(gain))
    d.add("plant", ODEBlock(lambda t, x, u: -(x**3) + u, x0=x0)).add("z", UnitDelay())
    d.connect("r", "e/in1").connect("z", "e/in2").connect("e", "k").connect("k", "plant")
    return d.connect("plant", "z")


def test_gradcheck_through_a_closed_loop():
    def run(gain, x0):
        d = _loop(gain, x0)
        out = simulate(d, 0.3, dt=0.05, solver="rk4", batch=2, dtype=torch.float64)
        return out["plant/out"]

    gain = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    x0 = torch.tensor([[0.2], [-0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(run, (gain, x0))


def test_256_initial_conditions_in_one_call_equal_256_separate_calls():
    x0 = torch.linspace(-2, 2, 256)[:, None]
    batched = simulate(_loop(0.8, x0), 1.0, dt=0.05, solver="rk4", batch=256)["plant/out"]
    for i in range(0, 256, 51):
        alone = simulate(_loop(0.8, x0[i : i + 1]), 1.0, dt=0.05, solver="rk4")["plant/out"]
        torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-6, atol=1e-6)
    assert batched.shape == (256, 21, 1)


def test_noise_is_reproducible_from_its_seed_and_held_over_its_sample_time():
    d = Diagram().add("n", Noise(seed=1, std=2.0, mean=1.0, sample_time=0.1, channels=3))
    a = simulate(d, 10.0, dt=0.05, batch=4)["n/out"]
    assert torch.equal(a, simulate(d, 10.0, dt=0.05, batch=4)["n/out"])
    assert torch.equal(a[:, 0], a[:, 1]) and not torch.equal(a[:, 1], a[:, 2])
    assert abs(a.mean().item() - 1.0) < 0.2 and abs(a.std().item() - 2.0) < 0.2
    wider = simulate(d, 12.0, dt=0.05, batch=6)["n/out"]  # more cases, a later stop time
    assert torch.equal(wider[:4, : a.shape[1]], a)
    assert torch.equal(simulate(d, 10.0, dt=0.05)["n/out"], a[:1])
    expected = 1.0 + 2.0 * np.random.default_rng([1, 2]).standard_normal((101, 3))
    np.testing.assert_allclose(a[2, ::2].numpy(), expected, atol=1e-6)


def test_unknown_port_and_block_errors_name_them():
    d = Diagram().add("plant", Integrator()).add("c", Constant())
    with pytest.raises(DiagramError, match=r"'plant' \(Integrator\) has no input port 'in2'"):
        d.connect("c", "plant/in2")
    with pytest.raises(DiagramError, match="Did you mean 'plant'"):
        d.connect("c", "plnt")
    d.connect("c", "plant")
    with pytest.raises(DiagramError, match="already fed"):
        d.connect("c", "plant/in")


def test_algebraic_loop_names_its_blocks_and_unconnected_ports_are_listed():
    d = Diagram().add("c", Constant()).add("e", Sum("+-")).add("k", Gain(2.0))
    d.connect("c", "e/in1").connect("e", "k").connect("k", "e/in2")
    with pytest.raises(
        DiagramError, match="algebraic loop through blocks (e -> k -> e|k -> e -> k)"
    ):
        simulate(d, 1.0, dt=0.1)
    d = Diagram().add("e", Sum("+-")).add("c", Constant()).connect("c", "e/in1")
    with pytest.raises(DiagramError, match=r"unconnected input ports: 'e/in2'"):
        simulate(d, 1.0, dt=0.1)


def test_bad_dt_solver_and_sample_time():
    d = Diagram().add("c", Constant())
    for bad in (0.0, -0.1):
        with pytest.raises(OptionError, match="`dt` must be a finite number > 0"):
            simulate(d, 1.0, dt=bad)
    with pytest.raises(OptionError, match="`solver` must be one of"):
        simulate(d, 1.0, dt=0.1, solver="rk45")
    d.add("z", UnitDelay(sample_time=0.15)).connect("c", "z")
    with pytest.raises(OptionError, match="sample_time=0.15.*multiple of dt=0.1"):
        simulate(d, 1.0, dt=0.1)


def test_tolerances_with_a_fixed_step_solver_are_refused():
    d = Diagram().add("c", Constant()).add("x", Integrator()).connect("c", "x")
    with pytest.raises(OptionError, match=r"rtol=0.001 only applies to .*'dopri5'.*'rk4'"):
        simulate(d, 1.0, dt=0.1, solver="rk4", rtol=1e-3)
    with pytest.raises(OptionError, match=r"`atol` must be a finite number > 0"):
        simulate(d, 1.0, dt=0.1, solver="dopri5", atol=-1.0)
    out = simulate(d, 1.0, dt=0.1, solver="dopri5", rtol=1e-6, atol=1e-8)
    assert out["x/out"][0, -1, 0].item() == pytest.approx(1.0, abs=1e-6)


def test_a_state_that_blows_up_names_the_block_and_the_time():
    d = Diagram().add("p", ODEBlock(lambda t, x, u: x**2, x0=1.0, inputs=0))
    with pytest.raises(
        SimulationError, match=r"block 'p' \(ODEBlock\) became NaN or infinite at t=[0-9.]+\."
    ):
        simulate(d, 2.0, dt=0.1, solver="euler")


@pytest.mark.parametrize("solver", ["euler", "rk4", "dopri5"])
def test_a_derivative_of_the_wrong_shape_is_refused_naming_the_block(solver):
    d = Diagram().add("p", ODEBlock(lambda t, x, u: -x[:, :1], x0=[1.0, 2.0], inputs=0))
    with pytest.raises(SimulationError, match=r"block 'p' \(ODEBlock\) gave a derivative of "
                                              r"shape \(1, 1\).*its state is \(1, 2\)"):  # fmt: skip
        simulate(d, 1.0, dt=0.1, solver=solver)


def test_a_solution_that_blows_up_under_dopri5_raises_a_simulation_error():
    d = Diagram().add("p", ODEBlock(lambda t, x, u: x**2, x0=[1.0], inputs=0))
    with pytest.raises(SimulationError, match="dopri5 could not step from t="):
        simulate(d, 3.0, dt=0.01, solver="dopri5")


def test_a_subsystem_output_port_is_logged_by_its_name():
    pi = Diagram("pi").add("e", Inport()).add("kp", Gain(2.0)).add("u", Outport())
    pi.connect("e", "kp").connect("kp", "u")
    loop = Diagram().add("r", Step(0.0)).add("ctrl", pi).add("plant", Integrator())
    loop.connect("r", "ctrl/e").connect("ctrl/u", "plant")
    out = simulate(loop, 0.2, dt=0.1, log=["ctrl/u", "plant/out"])
    assert out["ctrl/u"].flatten().tolist() == [2.0, 2.0, 2.0]
    torch.testing.assert_close(out["plant/out"].flatten(), torch.tensor([0.0, 0.2, 0.4]))
    assert "ctrl/u" in simulate(loop, 0.2, dt=0.1).signals


def test_a_pid_derivative_filter_too_fast_for_the_step_warns():
    d = Diagram().add("e", Sine(1.0)).add("pid", PID(1.0, 1.0, 0.1)).connect("e", "pid")
    with pytest.warns(UserWarning, match=r"N \* dt = 10 > 2"):
        simulate(d, 0.5, dt=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate(d, 0.5, dt=0.01)  # N * dt = 1: stable
