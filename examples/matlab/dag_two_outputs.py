"""MATLAB example "Train Network with Multiple Outputs", ported.

MATLAB trains a DAG network that predicts both the label and the rotation angle of
handwritten digits: a residual block, then a classification head and a regression head, and a
loss that adds cross-entropy and 0.1 x the mean squared error. This port rotates
scikit-learn's bundled digits by known angles (no download) and trains with
``combine(dsX, dsT1, dsT2)`` and a custom loss, as MATLAB's ``trainnet`` does. Each line
carries the MATLAB call it replaces.

Run: ``python examples/matlab/dag_two_outputs.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

import deeptoolbox as dtb
from deeptoolbox import data, datasets
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions, loss_function

SIZE = 16


def rotated_digits(count: int, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Digits (N, 1, 16, 16) rotated by angles in [-45, 45]; their labels and angles."""
    images, labels = datasets.digits()
    rng = np.random.default_rng(seed)
    index = rng.choice(len(images), count, replace=False)
    picked = F.interpolate(torch.from_numpy(images[index]), size=(SIZE, SIZE), mode="bilinear")
    angles = rng.uniform(-45, 45, count).astype(np.float32)
    rotated = torch.stack([TF.rotate(x, float(a)) for x, a in zip(picked, angles, strict=True)])
    return rotated, labels[index], angles[:, None]


def build_network(num_classes: int) -> dtb.Network:
    net = dtb.Network()  # MATLAB: net = dlnetwork;
    net.add_layers(
        [
            L.ImageInput(
                (1, SIZE, SIZE), name="input"
            ),  # MATLAB: imageInputLayer([28 28 1], Normalization="none")
            L.Conv2d(
                16, 5, padding="same", name="conv_1"
            ),  # MATLAB: convolution2dLayer(5, 16, Padding="same")
            L.BatchNorm(name="bn_1"),  # MATLAB: batchNormalizationLayer
            L.ReLU(name="relu_1"),  # MATLAB: reluLayer
            L.Conv2d(32, 3, padding="same", stride=2, name="conv_2"),
            # MATLAB: convolution2dLayer(3, 32, Padding="same", Stride=2)
            L.BatchNorm(name="bn_2"),  # MATLAB: batchNormalizationLayer
            L.ReLU(name="relu_2"),  # MATLAB: reluLayer
            L.Conv2d(
                32, 3, padding="same", name="conv_3"
            ),  # MATLAB: convolution2dLayer(3, 32, Padding="same")
            L.BatchNorm(name="bn_3"),  # MATLAB: batchNormalizationLayer
            L.Addition(name="add"),  # MATLAB: additionLayer(2)
            L.ReLU(name="relu_3"),  # MATLAB: reluLayer
            L.Flatten(name="flatten"),
            L.Dense(num_classes, name="fc_class"),  # MATLAB: fullyConnectedLayer(numClasses)
        ]
    )  # MATLAB: net = addLayers(net, layers);  (logits: the loss applies the softmax)
    net.add_layers(
        [
            L.Conv2d(32, 1, stride=2, padding=0, name="conv_skip"),
            # MATLAB: convolution2dLayer(1, 32, Stride=2)
            L.BatchNorm(name="bn_skip"),  # MATLAB: batchNormalizationLayer
        ]
    )  # MATLAB: net = addLayers(net, layers);
    net.connect("relu_1", "conv_skip")  # MATLAB: net = connectLayers(net, "relu_1", "conv_skip");
    net.connect("bn_skip", "add/in2")  # MATLAB: net = connectLayers(net, "bn_skip", "add/in2");
    net.add_layers(
        L.Dense(1, name="fc_angle")
    )  # MATLAB: net = addLayers(net, fullyConnectedLayer(1, Name="fc_2"));
    net.connect("flatten", "fc_angle")  # MATLAB: net = connectLayers(net, "relu_3", "fc_2");
    return net


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train", type=int, default=800, help="training images")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)  (initial weights come from torch's generator)

    x_train, labels_train, angles_train = rotated_digits(args.train, seed=0)
    # MATLAB: [XTrain, T1Train, T2Train] = digitTrain4DArrayData;
    x_test, labels_test, angles_test = rotated_digits(300, seed=1)
    # MATLAB: [XTest, T1Test, T2Test] = digitTest4DArrayData;
    classes = sorted(set(labels_train))  # MATLAB: classNames = categories(T1Train);
    ds_x = data.ArrayDatastore(
        x_train
    )  # MATLAB: dsXTrain = arrayDatastore(XTrain, IterationDimension=4);
    ds_t1 = data.ArrayDatastore(np.searchsorted(classes, labels_train))  # class indices
    # MATLAB: dsT1Train = arrayDatastore(T1Train);  (an ArrayDatastore holds numbers only)
    ds_t2 = data.ArrayDatastore(angles_train)  # MATLAB: dsT2Train = arrayDatastore(T2Train);
    ds_train = data.combine(
        ds_x, ds_t1, ds_t2
    )  # MATLAB: dsTrain = combine(dsXTrain, dsT1Train, dsT2Train);

    net = build_network(len(classes))
    net.classes = classes
    crossentropy, mse = loss_function("crossentropy"), loss_function("mse")

    def loss(
        outputs, targets
    ):  # MATLAB: lossFcn = @(Y1,Y2,T1,T2) crossentropy(Y1,T1) + 0.1*mse(Y2,T2);
        (scores, angle), (label, true_angle) = outputs, targets
        return crossentropy(scores, label) + 0.1 * mse(angle, true_angle)

    options = TrainingOptions(
        solver="adam",  # MATLAB: options = trainingOptions("adam", ...
        initial_learn_rate=0.01,
        max_epochs=args.epochs,  # MATLAB: MaxEpochs=30, ...
        mini_batch_size=64,
        shuffle="every-epoch",  # MATLAB: Shuffle="every-epoch", ...
        verbose=False,  # MATLAB: Verbose=false);
        seed=0,
        execution_environment="cpu",
    )
    dtb.train(
        net, ds_train, loss, options
    )  # MATLAB: net = trainnet(dsTrain, net, lossFcn, options);

    scores, angles = dtb.predict(
        net, x_test
    )  # MATLAB: [Y1Test, Y2Test] = minibatchpredict(net, XTest);
    predicted = np.asarray(classes)[scores.argmax(1).numpy()]
    # MATLAB: Y1Test = onehotdecode(Y1Test, classNames, 2);
    accuracy = float(np.mean(predicted == labels_test))  # MATLAB: accuracy = mean(Y1Test == T1Test)
    error = angles.numpy() - angles_test
    rmse = float(np.sqrt(np.mean(error**2)))  # MATLAB: err = rmse(Y2Test, T2Test)
    baseline = float(np.sqrt(np.mean((angles_test - angles_train.mean()) ** 2)))
    print(f"outputs {net.output_names}; test accuracy {accuracy:.3f}")
    print(f"angle RMSE {rmse:.2f} degrees (predicting the mean angle: {baseline:.2f})")
    return {
        "outputs": list(net.output_names),
        "accuracy": accuracy,
        "angle_rmse": rmse,
        "baseline_rmse": baseline,
    }


if __name__ == "__main__":
    main()
