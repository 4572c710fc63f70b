"""Speed of deeptoolbox.simulate: batching, and the torch simulation against python-control.

A pendulum with a small network controller (``u = net(angle, velocity)``), simulated for
``--cases`` initial conditions over ``--t-end`` seconds with RK4 at ``--dt``:

- batched: all cases in one ``simulate`` call, against one call per case (the outputs are
  checked equal first);
- against python-control: the same closed loop as a ``control.nlsys`` whose update function
  calls the same network (as a black-box callback, one case at a time) through
  ``control.input_output_response`` with its default solver (RK45), one call per case.

The three are timed interleaved in one process (batched, then per case, then python-control,
``--rounds`` times); the printed figures are medians and the speed-ups over them. Run:
``.venv/bin/python benchmarks/simulate.py [--cases 256 --rounds 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.simulate import Diagram, NetworkBlock, ODEBlock, simulate


def pendulum(t, x, u):
    return torch.cat([x[:, 1:], -9.81 * torch.sin(x[:, :1]) - 0.1 * x[:, 1:] + u], dim=1)


def diagram(net: Network, x0: torch.Tensor) -> Diagram:
    d = Diagram().add("plant", ODEBlock(pendulum, x0=x0)).add("ctrl", NetworkBlock(net))
    return d.connect("plant", "ctrl").connect("ctrl", "plant")


def run_control(net: Network, x0: np.ndarray, times: np.ndarray) -> np.ndarray:
    import control

    @torch.no_grad()
    def update(t, x, u, params):
        state = torch.as_tensor(x, dtype=torch.float32).reshape(1, 2)
        force = net(state)
        return pendulum(t, state, force).numpy().reshape(-1)

    system = control.nlsys(update, lambda t, x, u, params: x, states=2, inputs=0, outputs=2)
    return control.input_output_response(system, times, 0, X0=x0).outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=256)
    parser.add_argument("--t-end", type=float, default=2.0)
    parser.add_argument("--dt", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--control-cases", type=int, default=16,
                        help="cases timed with python-control (scaled to --cases)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(16), L.Tanh(), L.Dense(1)]).eval()
    x0 = torch.stack([torch.linspace(-2, 2, args.cases), torch.zeros(args.cases)], 1)
    times = np.arange(0, args.t_end + args.dt / 2, args.dt)

    def batched():
        with torch.no_grad():
            return simulate(diagram(net, x0), args.t_end, dt=args.dt, solver="rk4",
                            batch=args.cases)["plant/out"]  # fmt: skip

    def separate():
        with torch.no_grad():
            return torch.cat([simulate(diagram(net, x0[i : i + 1]), args.t_end, dt=args.dt,
                                       solver="rk4")["plant/out"] for i in range(args.cases)])  # fmt: skip

    def python_control():
        for i in range(args.control_cases):
            run_control(net, x0[i].numpy(), times)

    torch.testing.assert_close(batched(), separate(), rtol=1e-5, atol=1e-5)
    timings: dict[str, list[float]] = {"batched": [], "separate": [], "python-control": []}
    for _ in range(args.rounds):
        for name, function in (("batched", batched), ("separate", separate),
                               ("python-control", python_control)):  # fmt: skip
            start = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in timings.items()}
    control_all = median["python-control"] * args.cases / args.control_cases
    print(f"{args.cases} cases, {len(times)} steps of {args.dt} s (RK4)")
    print(f"  batched simulate:         {median['batched']:.3f} s")
    print(f"  one simulate per case:    {median['separate']:.3f} s  "
          f"(batching speed-up {median['separate'] / median['batched']:.1f}x)")  # fmt: skip
    print(f"  python-control callback:  {control_all:.3f} s  (scaled from "
          f"{args.control_cases} cases; torch speed-up {control_all / median['batched']:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
