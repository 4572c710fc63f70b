"""A stateful LSTM block fed one sample at a time reproduces the offline sequence prediction.

MATLAB's Stateful Predict block runs a recurrent network inside a Simulink model, one time
step per sample, carrying the LSTM state. Here an LSTM learns to predict the next sample of a
noisy sum of sines (``deeptoolbox.train``, offline, on whole sequences); then the same network
runs as a ``StatefulNetworkBlock`` in a diagram fed by the signal, sample by sample, and its
outputs are compared with the whole-sequence prediction ``net(sequence)``; a reset pulse
restarts the state half way, which equals predicting the second half on its own.

Writes ``stateful-lstm.png`` into ``--output``. Run:
``python examples/simulate/stateful_lstm_block.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deeptoolbox import Network, train
from deeptoolbox import layers as L
from deeptoolbox.simulate import Diagram, FromData, StatefulNetworkBlock, simulate
from deeptoolbox.training import TrainingOptions

DT = 0.05


def signals(count: int, steps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(steps) * DT
    frequency = 1.0 + 2.0 * torch.rand(count, 1, generator=g)
    phase = 6.28 * torch.rand(count, 1, generator=g)
    clean = torch.sin(frequency * t + phase) + 0.5 * torch.sin(2.7 * frequency * t)
    return (clean + 0.02 * torch.randn(count, steps, generator=g))[..., None]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--output", default="stateful-lstm-output")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    data = signals(96, args.steps + 1, seed=1)
    net = Network([L.SequenceInput(1, name="signal"), L.LSTM(16, name="lstm"),
                   L.Dense(1, name="next")], name="forecaster")  # fmt: skip
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=args.epochs,
                              mini_batch_size=32, verbose=False, l2_regularization=0.0)  # fmt: skip
    train(net, (data[:, :-1], data[:, 1:]), "mse", options)
    net.eval()
    sequence = signals(1, args.steps, seed=2)
    half = args.steps // 2
    reset = torch.zeros(1, args.steps, 1)
    reset[0, half] = 1.0
    times = torch.arange(args.steps, dtype=torch.float64) * DT
    d = Diagram().add("signal", FromData(times, sequence[0], interpolation="zoh"))
    d.add("reset", FromData(times, reset[0], interpolation="zoh"))
    d.add("lstm", StatefulNetworkBlock(net, reset=True))
    d.connect("signal", "lstm/in").connect("reset", "lstm/reset")
    with torch.no_grad():
        run = simulate(d, (args.steps - 1) * DT, dt=DT)
        offline = torch.cat([net(sequence[:, :half]), net(sequence[:, half:])], dim=1)
    difference = (run["lstm/out"] - offline).abs().max().item()
    error = (offline[:, :-1] - sequence[:, 1:]).pow(2).mean().sqrt().item()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    run.plot(["signal/out", "lstm/out"]).savefig(output / "stateful-lstm.png")
    summary = {"max_difference": difference, "forecast_rmse": error,
               "signal_std": sequence.std().item()}  # fmt: skip
    print({k: round(v, 6) for k, v in summary.items()})
    return summary


if __name__ == "__main__":
    main()
