"""A neural controller trained in closed loop, against a tuned PID (nonlinear water tank).

The plant is Simulink's water tank: ``dh/dt = (u - a sqrt(h)) / area``, a pump flow ``u`` in
[0, 2] filling a tank that drains through a hole. Each case starts at its own level and must
reach its own set point. A small network ``u = 2 sigmoid(net(r, h))`` is trained by backpropagation
through the whole simulation (``train_closed_loop``), on a batch of cases at once; a PID in
the same diagram, its gains tuned by a grid search on the same cost, is the baseline.

Writes ``tank-tracking.png`` (levels of some cases, both controllers) and
``tank-training.png`` (cost per iteration) into ``--output``.

Run: ``python examples/simulate/neural_controller.py --epochs 150`` (about a minute on two
CPU cores). tests/examples/test_simulate_examples.py runs it with small settings.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.simulate import (
    PID,
    Constant,
    Diagram,
    Gain,
    Mux,
    NetworkBlock,
    ODEBlock,
    Sum,
    simulate,
    train_closed_loop,
)  # fmt: skip
from deeptoolbox.training import TrainingOptions

AREA, OUTFLOW = 1.0, 0.5


def tank(t, h, u):
    return (u - OUTFLOW * torch.sqrt(torch.clamp(h, min=1e-4))) / AREA


def cases(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    levels = 0.2 + 1.8 * torch.rand(count, 1, generator=generator)
    targets = 0.3 + 1.7 * torch.rand(count, 1, generator=generator)
    return levels, targets


def neural_diagram(net: Network, h0: torch.Tensor, r: torch.Tensor) -> Diagram:
    d = Diagram("neural").add("r", Constant(r)).add("tank", ODEBlock(tank, x0=h0))
    d.add("measure", Mux(2)).add("ctrl", NetworkBlock(net)).add("pump", Gain(2.0))
    d.connect("r", "measure/in1").connect("tank", "measure/in2").connect("measure", "ctrl")
    return d.connect("ctrl", "pump").connect("pump", "tank")


def pid_diagram(kp: float, ki: float, h0: torch.Tensor, r: torch.Tensor) -> Diagram:
    d = Diagram("pid").add("r", Constant(r)).add("tank", ODEBlock(tank, x0=h0))
    d.add("e", Sum("+-")).add("pid", PID(kp, ki, 0.0, lower=0.0, upper=2.0))
    d.connect("r", "e/in1").connect("tank", "e/in2").connect("e", "pid")
    return d.connect("pid", "tank")


def cost(result) -> torch.Tensor:
    return (result["tank/out"] - result["r/out"]).pow(2).mean()


def tune_pid(h0, r, t_end: float, dt: float, solver: str) -> tuple[float, float, float]:
    best = (float("inf"), 0.0, 0.0)
    for kp, ki in itertools.product((0.5, 1.0, 2.0, 4.0, 8.0), (0.1, 0.3, 1.0, 3.0)):
        value = cost(simulate(pid_diagram(kp, ki, h0, r), t_end, dt=dt, solver=solver,
                              batch=len(h0))).item()  # fmt: skip
        best = min(best, (value, kp, ki))
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--t-end", type=float, default=8.0)
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--solver", default="rk4")
    parser.add_argument("--learn-rate", type=float, default=0.15)
    parser.add_argument("--output", default="neural-controller-output")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    h0, r = cases(args.cases, seed=1)
    net = Network([L.FeatureInput(2, name="measured"), L.Dense(16, name="fc1"), L.Tanh(),
                   L.Dense(1, name="valve"), L.Sigmoid(name="opening")],
                  name="tank-controller")  # fmt: skip
    diagram = neural_diagram(net, h0, r)
    with torch.no_grad():
        initial = cost(simulate(diagram, args.t_end, dt=args.dt, solver=args.solver, batch=len(h0)))
    options = TrainingOptions(solver="adam", initial_learn_rate=args.learn_rate, max_epochs=args.epochs,
                              verbose=False, gradient_threshold=1.0, l2_regularization=0.0)  # fmt: skip
    result = train_closed_loop(diagram, ["ctrl"], cost, args.t_end, dt=args.dt, solver=args.solver,
                               batch=len(h0), options=options)  # fmt: skip
    pid_cost, kp, ki = tune_pid(h0, r, args.t_end, args.dt, args.solver)
    test_h0, test_r = cases(32, seed=2)  # cases not seen in training
    with torch.no_grad():
        neural_run = simulate(neural_diagram(net, test_h0, test_r), args.t_end, dt=args.dt,
                              solver=args.solver, batch=32)  # fmt: skip
        pid_run = simulate(pid_diagram(kp, ki, test_h0, test_r), args.t_end, dt=args.dt,
                           solver=args.solver, batch=32)  # fmt: skip
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    _plot(neural_run, pid_run, output / "tank-tracking.png")
    result.plot(output / "tank-training.png")
    summary = {
        "initial_cost": initial.item(), "final_cost": result.history.column("loss")[-1],
        "pid_cost": pid_cost, "pid_gains": (kp, ki),
        "test_neural_cost": cost(neural_run).item(), "test_pid_cost": cost(pid_run).item(),
    }  # fmt: skip
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
    return summary


def _plot(neural, pid, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    time = neural.time.numpy()
    for case in range(4):
        color = f"C{case}"
        axes.plot(time, neural["tank/out"][case, :, 0], color=color, label="neural" * (case == 0))
        axes.plot(time, pid["tank/out"][case, :, 0], color=color, ls="--",
                  label="PID" * (case == 0))  # fmt: skip
        axes.axhline(neural["r/out"][case, 0, 0].item(), color=color, lw=0.5, ls=":")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("level h")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)


if __name__ == "__main__":
    main()
