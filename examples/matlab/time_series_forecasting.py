"""MATLAB example "Time Series Forecasting Using Deep Learning", ported.

MATLAB trains an LSTM to predict the next time step of waveforms (3 channels), then
forecasts open loop (the true values are fed in) and closed loop (each prediction is fed
back), with ``resetState`` and ``[Y, state] = predict(...)`` / ``predictAndUpdateState``.
This port generates the waveforms (no download) and follows the MATLAB script; each line
carries the MATLAB call it replaces. The closed-loop forecast runs in O(T): one time step
per call, the LSTM's state kept between calls.

Run: ``python examples/matlab/time_series_forecasting.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions

NUM_CHANNELS = 3
FREQUENCIES = np.array([0.15, 0.25, 0.35])


def make_waveforms(count: int, length: int, seed: int) -> list[np.ndarray]:
    """``count`` waveforms (T, 3): per channel a sine of fixed frequency, random phase."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None]
    return [
        (
            rng.uniform(0.5, 1.0, NUM_CHANNELS) * np.sin(FREQUENCIES * t + rng.uniform(0, 6, 3))
        ).astype(np.float32)
        for _ in range(count)
    ]


def rmse(y: np.ndarray, t: np.ndarray) -> float:
    return float(
        np.sqrt(np.mean((np.asarray(y) - np.asarray(t)) ** 2))
    )  # MATLAB: rmse(Y, T, "all")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32, help="LSTM hidden units")
    parser.add_argument("--horizon", type=int, default=20, help="closed-loop steps")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)  (initial weights come from torch's generator)

    waves = make_waveforms(120, 60 + args.horizon, seed=0)  # MATLAB: load WaveformData
    train_waves, test_waves = waves[:100], waves[100:]
    x_train = [w[:-1] for w in train_waves]  # MATLAB: XTrain{n} = X(1:end-1,:);
    t_train = [w[1:] for w in train_waves]  # MATLAB: TTrain{n} = X(2:end,:);

    layers = [
        L.SequenceInput(NUM_CHANNELS),  # MATLAB: sequenceInputLayer(numChannels)
        L.LSTM(args.hidden, name="lstm"),  # MATLAB: lstmLayer(128)
        L.Dense(NUM_CHANNELS),  # MATLAB: fullyConnectedLayer(numChannels)
    ]
    net = dtb.Network(layers)  # MATLAB: net = dlnetwork(layers)
    options = TrainingOptions(
        solver="adam",  # MATLAB: options = trainingOptions("adam", ...
        initial_learn_rate=0.01,
        max_epochs=args.epochs,  # MATLAB: MaxEpochs=200, ...
        mini_batch_size=20,
        sequence_padding_direction="left",  # MATLAB: SequencePaddingDirection="left", ...
        shuffle="every-epoch",  # MATLAB: Shuffle="every-epoch", ...
        verbose=False,  # MATLAB: Verbose=false);  (Plots="training-progress": plots=)
        seed=0,
        execution_environment="cpu",
    )
    result = dtb.train(net, (x_train, t_train), "mse", options)
    # MATLAB: net = trainnet(XTrain, TTrain, net, "mse", options);
    net = result.network

    x_test = [w[:-1] for w in test_waves]  # MATLAB: XTest{n} = X(1:end-1,:);
    t_test = [w[1:] for w in test_waves]  # MATLAB: TTest{n} = X(2:end,:);
    y_test = dtb.predict(net, x_test, sequence_padding_direction="left", uniform_output=False)
    # MATLAB: YTest = minibatchpredict(net, XTest, SequencePaddingDirection="left",
    # MATLAB:     UniformOutput=false);
    open_loop = float(np.mean([rmse(y, t) for y, t in zip(y_test, t_test, strict=True)]))
    # MATLAB: err(n) = rmse(YTest{n}, TTest{n}, "all"); mean(err)

    offset = len(test_waves[0]) - args.horizon  # MATLAB: offset = 75;
    observed = torch.from_numpy(np.stack([w[:offset] for w in test_waves]))  # (N, offset, C)
    future = np.stack([w[offset:] for w in test_waves])  # what the forecast should give

    net.reset_state()  # MATLAB: net = resetState(net);
    outputs, state = dtb.predict(net, observed, return_state=True)
    # MATLAB: [Z, state] = predict(net, X(1:offset,:)); net.State = state;
    step = outputs[:, -1:]  # MATLAB: Y(1,:) = Z(end,:);
    forecast = [step]
    for _ in range(args.horizon - 1):  # MATLAB: for t = 2:numPredictionTimeSteps
        net.state = state  # MATLAB: net.State = state;
        step, state = dtb.predict(net, step, return_state=True)
        # MATLAB: [Y(t,:), state] = predict(net, Y(t-1,:));
        forecast.append(step)
    forecast = torch.cat(forecast, dim=1).numpy()

    net.reset_state()  # MATLAB: net = resetState(net);
    net.stateful = True  # (MATLAB's predictAndUpdateState: each call keeps the state)
    step = dtb.predict(net, observed)[
        :, -1:
    ]  # MATLAB: [net, Z] = predictAndUpdateState(net, X(1:offset,:));
    updated = [step]
    for _ in range(args.horizon - 1):
        step = dtb.predict(
            net, step
        )  # MATLAB: [net, Y(t,:)] = predictAndUpdateState(net, Y(t-1,:));
        updated.append(step)
    updated = torch.cat(updated, dim=1).numpy()
    net.stateful = False
    net.reset_state()

    closed_loop = rmse(forecast, future)
    naive = rmse(np.repeat(observed[:, -1:].numpy(), args.horizon, axis=1), future)
    print(f"open-loop RMSE {open_loop:.4f}")
    print(f"closed-loop RMSE over {args.horizon} steps {closed_loop:.4f} (naive: {naive:.4f})")
    return {
        "open_loop_rmse": open_loop,
        "closed_loop_rmse": closed_loop,
        "naive_rmse": naive,
        "forecast_shape": forecast.shape,
        "stateful_matches": bool(np.allclose(forecast, updated, atol=1e-5)),
    }


if __name__ == "__main__":
    main()
