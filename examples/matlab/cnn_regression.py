"""MATLAB example "Train Convolutional Neural Network for Regression", ported.

MATLAB predicts the rotation angle of handwritten digits (``digitTrain4DArrayData``). This
port rotates scikit-learn's bundled digits (upsampled to 16x16) by known angles (no
download) and follows the MATLAB script; each line carries the MATLAB call it replaces.

Run: ``python examples/matlab/cnn_regression.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

import deeptoolbox as dtb
from deeptoolbox import datasets
from deeptoolbox import layers as L
from deeptoolbox.training import Piecewise, TrainingOptions

SIZE = 16


def rotated_digits(count: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``count`` digits (N, 1, 16, 16) rotated by angles drawn in [-45, 45] degrees."""
    images, _ = datasets.digits()
    rng = np.random.default_rng(seed)
    picked = torch.from_numpy(images[rng.choice(len(images), count, replace=False)])
    picked = F.interpolate(picked, size=(SIZE, SIZE), mode="bilinear")
    angles = rng.uniform(-45, 45, count).astype(np.float32)
    rotated = torch.stack([TF.rotate(x, float(a)) for x, a in zip(picked, angles, strict=True)])
    return rotated, angles


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train", type=int, default=800, help="training images")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)  (initial weights come from torch's generator)

    x_train, angles_train = rotated_digits(args.train, seed=0)
    # MATLAB: [XTrain, ~, anglesTrain] = digitTrain4DArrayData;
    x_test, angles_test = rotated_digits(300, seed=1)
    # MATLAB: [XTest, ~, anglesTest] = digitTest4DArrayData;
    split = int(0.85 * len(x_train))
    x_valid, angles_valid = x_train[split:], angles_train[split:]
    x_train, angles_train = x_train[:split], angles_train[:split]
    # MATLAB: idx = randperm(...); XValidation = XTrain(:,:,:,idx); XTrain(:,:,:,idx) = [];

    layers = [
        L.ImageInput((1, SIZE, SIZE)),  # MATLAB: imageInputLayer([28 28 1])
        L.Conv2d(8, 3, padding="same"),  # MATLAB: convolution2dLayer(3, 8, Padding="same")
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.ReLU(),  # MATLAB: reluLayer
        L.AvgPool2d(2, stride=2),  # MATLAB: averagePooling2dLayer(2, Stride=2)
        L.Conv2d(16, 3, padding="same"),  # MATLAB: convolution2dLayer(3, 16, Padding="same")
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.ReLU(),  # MATLAB: reluLayer
        L.AvgPool2d(2, stride=2),  # MATLAB: averagePooling2dLayer(2, Stride=2)
        L.Conv2d(32, 3, padding="same"),  # MATLAB: convolution2dLayer(3, 32, Padding="same")
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.ReLU(),  # MATLAB: reluLayer
        L.Dropout(0.2),  # MATLAB: dropoutLayer(0.2)
        L.Flatten(),
        L.Dense(1),  # MATLAB: fullyConnectedLayer(1)
    ]
    net = dtb.Network(layers)  # MATLAB: net = dlnetwork(layers)
    options = TrainingOptions(
        solver="adam",  # MATLAB: options = trainingOptions("sgdm", ...  (adam: fewer epochs)
        initial_learn_rate=0.01,  # MATLAB: InitialLearnRate=1e-3, ...
        max_epochs=args.epochs,  # MATLAB: MaxEpochs=30, ...
        learn_rate_schedule=Piecewise(drop_factor=0.1, period=max(1, args.epochs * 2 // 3)),
        # MATLAB: LearnRateSchedule="piecewise", LearnRateDropFactor=0.1, LearnRateDropPeriod=20,
        # MATLAB:     ...
        mini_batch_size=32,
        shuffle="every-epoch",  # MATLAB: Shuffle="every-epoch", ...
        validation_data=(
            x_valid,
            angles_valid[:, None],
        ),  # MATLAB: ValidationData={XValidation, anglesValidation}, ...
        validation_frequency=10,
        metrics=["rmse"],  # MATLAB: Metrics="rmse", ...
        verbose=False,  # MATLAB: Verbose=false);
        seed=0,
        execution_environment="cpu",
    )
    result = dtb.train(net, (x_train, angles_train[:, None]), "mse", options)
    # MATLAB: net = trainnet(XTrain, anglesTrain, net, "mse", options);

    tested = dtb.evaluate(result.network, (x_test, angles_test[:, None]), ["rmse"])
    # MATLAB: testnet(net, XTest, anglesTest, "rmse")
    predicted = dtb.predict(result.network, x_test).squeeze(1).numpy()
    # MATLAB: YTest = minibatchpredict(net, XTest);
    error = predicted - angles_test  # MATLAB: predictionError = anglesTest - YTest;
    within = float(np.mean(np.abs(error) < 10))
    # MATLAB: thr = 10; numCorrect = sum(abs(predictionError) < thr); accuracy = numCorrect/numTest
    rmse = float(np.sqrt(np.mean(error**2)))  # MATLAB: rmse(YTest, anglesTest)
    baseline = float(np.sqrt(np.mean((angles_test - angles_train.mean()) ** 2)))
    print(
        f"test RMSE {rmse:.2f} degrees (testnet: {tested['rmse']:.2f}; mean angle: {baseline:.2f})"
    )
    print(f"{100 * within:.1f}% of test angles within 10 degrees")
    return {
        "rmse": rmse,
        "evaluate_rmse": float(tested["rmse"]),
        "baseline_rmse": baseline,
        "within_10_degrees": within,
    }


if __name__ == "__main__":
    main()
