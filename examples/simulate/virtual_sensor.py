"""A virtual sensor: estimate a mass-spring-damper's velocity from its position and force.

MATLAB's virtual-sensor examples (e.g. "Virtual Sensor Modeling", battery state of charge)
train a network on simulated data, then run it as a block beside the plant. Here:

1. simulate the plant ``m x'' + c x' + k x = F`` for many random force signals at once (one
   batched ``simulate`` call) and log position, force and the (unmeasured) velocity;
2. train an LSTM (``deeptoolbox.train``) to estimate the velocity from the noisy position and
   the force, sequence to sequence;
3. put it into the diagram as a ``StatefulNetworkBlock`` fed one sample per step, next to the
   plant, for new force signals, and compare its estimate with the true velocity.

Writes ``virtual-sensor.png`` into ``--output``. Run:
``python examples/simulate/virtual_sensor.py`` (under a minute on two CPU cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deeptoolbox import Network, train
from deeptoolbox import layers as L
from deeptoolbox.simulate import (
    Diagram,
    Gain,
    Mux,
    Noise,
    ODEBlock,
    Sine,
    StatefulNetworkBlock,
    Sum,
    simulate,
)  # fmt: skip
from deeptoolbox.training import TrainingOptions

MASS, DAMPING, STIFFNESS = 1.0, 0.4, 4.0


def spring(t, x, force):
    position, velocity = x[:, :1], x[:, 1:]
    return torch.cat([velocity, (force - DAMPING * velocity - STIFFNESS * position) / MASS], 1)


def plant_diagram(cases: int, seed: int) -> Diagram:
    """Random forces (two sines per case), the plant, and a noisy position measurement."""
    g = torch.Generator().manual_seed(seed)
    d = Diagram("plant")
    for name in ("f1", "f2"):
        d.add(name, Sine(0.5 + 1.5 * torch.rand(cases, 1, generator=g),
                         frequency=0.5 + 3.0 * torch.rand(cases, 1, generator=g),
                         phase=6.28 * torch.rand(cases, 1, generator=g)))  # fmt: skip
    d.add("force", Sum("++")).add("plant", ODEBlock(spring, x0=[0.0, 0.0]))
    d.add("position", Gain([[1.0, 0.0]], matrix=True)).add("velocity", Gain([[0.0, 1.0]],
                                                                          matrix=True))  # fmt: skip
    d.add("noise", Noise(seed=seed, std=0.01, sample_time=0.05)).add("measured", Sum("++"))
    d.add("sensors", Mux(2))
    d.connect("f1", "force/in1").connect("f2", "force/in2").connect("force", "plant")
    d.connect("plant", "position").connect("plant", "velocity")
    d.connect("position", "measured/in1").connect("noise", "measured/in2")
    return d.connect("measured", "sensors/in1").connect("force", "sensors/in2")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=128)
    parser.add_argument("--t-end", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=24)
    parser.add_argument("--output", default="virtual-sensor-output")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dt = 0.05
    data = simulate(plant_diagram(args.cases, seed=1), args.t_end, dt=dt, solver="rk4",
                    batch=args.cases, log=["sensors/out", "velocity/out"])  # fmt: skip
    x, v = data["sensors/out"], data["velocity/out"]  # (cases, T, 2), (cases, T, 1)
    net = Network([L.SequenceInput(2, name="sensors"), L.LSTM(args.hidden, name="lstm"),
                   L.Dense(1, name="velocity")], name="velocity-sensor")  # fmt: skip
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=args.epochs,
                              mini_batch_size=32, verbose=False, l2_regularization=0.0,
                              gradient_threshold=1.0)  # fmt: skip
    train(net, (x, v), "mse", options)
    net.eval()
    # the trained network as a block beside the plant, on forces it has not seen
    test = plant_diagram(8, seed=2)
    test.add("sensor", StatefulNetworkBlock(net)).connect("sensors", "sensor")
    with torch.no_grad():
        run = simulate(test, args.t_end, dt=dt, solver="rk4", batch=8)
    estimate, truth = run["sensor/out"], run["velocity/out"]
    rmse = (estimate - truth).pow(2).mean().sqrt().item()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    figure = run.plot(["measured/out", "velocity/out", "sensor/out"], batch=[0, 1])
    figure.savefig(output / "virtual-sensor.png")
    summary = {"rmse": rmse, "velocity_std": truth.std().item(),
               "samples": int(truth.shape[1])}  # fmt: skip
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
    return summary


if __name__ == "__main__":
    main()
