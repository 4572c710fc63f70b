"""MATLAB example "Create Simple Deep Learning Neural Network for Classification", ported.

MATLAB reads the DigitDataset folder (28x28 digits) with ``imageDatastore``; this port writes
scikit-learn's bundled 8x8 digits into a temporary folder of PNG files first (no download) and
then follows the MATLAB script line by line. Each line carries the MATLAB call it replaces.

Run: ``python examples/matlab/image_classification.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import data, datasets
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--per-label", type=int, default=60, help="training images per label")
    parser.add_argument("--count", type=int, default=800, help="images written to the folder")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)  (initial weights come from torch's generator)

    images, labels = datasets.digits()
    folder = tempfile.mkdtemp(prefix="digit-dataset-")
    datasets.write_image_folder(
        folder, images[: args.count], labels[: args.count]
    )  # digitDatasetPath
    imds = data.ImageDatastore(folder, labels="foldernames")
    # MATLAB: imds = imageDatastore(digitDatasetPath, IncludeSubfolders=true,
    # MATLAB:     LabelSource="foldernames");
    image, label = imds[0]  # MATLAB: img = readimage(imds, 1);  (0-based here)
    size = tuple(image.shape)  # MATLAB: size(img)  -> 8 x 8 (x 1); here (C, H, W) = (1, 8, 8)
    counts = imds.count_each_label()  # MATLAB: labelCount = countEachLabel(imds)
    imds_train, imds_validation = imds.split(args.per_label, shuffle=True, seed=0)
    # MATLAB: [imdsTrain, imdsValidation] = splitEachLabel(imds, numTrainFiles, "randomize");

    layers = [
        L.ImageInput(size, name="input"),  # MATLAB: imageInputLayer([8 8 1])
        L.Conv2d(8, 3, padding="same"),  # MATLAB: convolution2dLayer(3, 8, Padding="same")
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.ReLU(),  # MATLAB: reluLayer
        L.MaxPool2d(2, stride=2),  # MATLAB: maxPooling2dLayer(2, Stride=2)
        L.Conv2d(16, 3, padding="same"),  # MATLAB: convolution2dLayer(3, 16, Padding="same")
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.ReLU(),  # MATLAB: reluLayer
        L.Flatten(),  # (MATLAB's fullyConnectedLayer flattens by itself)
        L.Dense(len(imds.classes)),  # MATLAB: fullyConnectedLayer(10)
        L.Softmax(),  # MATLAB: softmaxLayer
    ]
    net = dtb.Network(layers, classes=imds.classes)  # MATLAB: net = dlnetwork(layers)

    options = TrainingOptions(
        solver="sgdm",  # MATLAB: options = trainingOptions("sgdm", ...
        initial_learn_rate=0.01,  # MATLAB: InitialLearnRate=0.01, ...
        max_epochs=args.epochs,  # MATLAB: MaxEpochs=4, ...
        shuffle="every-epoch",  # MATLAB: Shuffle="every-epoch", ...
        mini_batch_size=32,
        validation_data=imds_validation,  # MATLAB: ValidationData=imdsValidation, ...
        validation_frequency=30,  # MATLAB: ValidationFrequency=30, ...
        metrics=["accuracy"],  # MATLAB: Metrics="accuracy", ...
        plots="none",  # MATLAB: Plots="training-progress" (a PNG with plot_path=)
        verbose=False,  # MATLAB: Verbose=false);
        seed=0,
        execution_environment="cpu",
    )
    result = dtb.train(net, imds_train, "crossentropy", options)
    # MATLAB: net = trainnet(imdsTrain, net, "crossentropy", options);

    predicted, _ = dtb.classify(result.network, imds_validation)
    # MATLAB: scores = minibatchpredict(net, imdsValidation);
    # MATLAB:     YPred = scores2label(scores, classNames);
    truth = np.asarray(imds.classes)[[int(t) for _, t in imds_validation]]
    # MATLAB: YValidation = imdsValidation.Labels;
    accuracy = float(np.mean(predicted == truth))  # MATLAB: accuracy = mean(YPred == YValidation)
    tested = dtb.evaluate(result.network, imds_validation, ["accuracy"])
    # MATLAB: accuracy = testnet(net, imdsValidation, "accuracy")
    print(f"image size {size}, {len(imds_train)} training / {len(imds_validation)} validation")
    print(f"validation accuracy {accuracy:.3f} (testnet: {tested['accuracy']:.3f})")
    return {
        "image_size": size,
        "first_label": imds.classes[int(label)],
        "counts": counts,
        "num_train": len(imds_train),
        "num_validation": len(imds_validation),
        "accuracy": accuracy,
        "evaluate_accuracy": float(tested["accuracy"]),
    }


if __name__ == "__main__":
    main()
