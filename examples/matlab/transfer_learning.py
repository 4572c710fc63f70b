"""MATLAB example "Retrain Neural Network to Classify New Images" (transfer learning), ported.

MATLAB loads a pretrained GoogLeNet, replaces its final layer for the new classes, freezes
the first layers, and fine-tunes on augmented images. Nothing may be downloaded here, so the
"pretrained" network is a small CNN trained first on the digits 0-4, saved and loaded back;
the new task is the digits 5-9 with a few images per class. With a downloaded model the
first step becomes ``net = dtb.pretrained("resnet18")``. Each line carries the MATLAB call
it replaces.

Run: ``python examples/matlab/transfer_learning.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import data, datasets, hub
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions

OLD_CLASSES = ["0", "1", "2", "3", "4"]
NEW_CLASSES = ["5", "6", "7", "8", "9"]


def pretrain(images: np.ndarray, labels: np.ndarray, epochs: int) -> dtb.Network:
    """The stand-in for a downloaded network: a CNN trained on the digits 0-4."""
    keep = np.isin(labels, OLD_CLASSES)
    net = dtb.Network(
        [L.ImageInput((1, 8, 8)), L.Conv2d(16, 3, padding="same", name="conv1"), L.ReLU(),
         L.MaxPool2d(2, name="pool"), L.Conv2d(32, 3, padding="same", name="conv2"), L.ReLU(),
         L.Flatten(name="flatten"),
         L.Dense(len(OLD_CLASSES), name="fc"), L.Softmax(name="prob")],
        classes=OLD_CLASSES, name="pretrained-digits",
    )  # fmt: skip
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=epochs,
                              mini_batch_size=64, verbose=False, seed=0,
                              execution_environment="cpu")  # fmt: skip
    old = data.ArrayDatastore(images[keep], targets=labels[keep])
    return dtb.train(net, old, "crossentropy", options).network


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=20, help="new training images per class")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)  (initial weights come from torch's generator)

    images, labels = datasets.digits()
    path = Path(tempfile.mkdtemp()) / "pretrained.zip"
    dtb.save(pretrain(images, labels, args.pretrain_epochs), path)
    net = dtb.load(path)  # MATLAB: net = imagePretrainedNetwork("googlenet");
    input_size = net.layer(net.input_names[0]).shape  # MATLAB: inputSize = net.Layers(1).InputSize;

    keep = np.isin(labels, NEW_CLASSES)
    new = data.ArrayDatastore(images[keep], targets=labels[keep])
    # MATLAB: imds = imageDatastore("MerchData", IncludeSubfolders=true, LabelSource="foldernames");
    new_train, new_test = new.split(args.per_class, seed=0)
    # MATLAB: [imdsTrain, imdsValidation] = splitEachLabel(imds, 0.7);  (here: counts per label)

    net = hub.adapt(net, new.classes, learn_rate_factor=10)
    # MATLAB: net = replaceLayer(net, "loss3-classifier", fullyConnectedLayer(numClasses,
    # MATLAB:     WeightLearnRateFactor=10, BiasLearnRateFactor=10));  classNames = categories(...)
    hub.freeze(
        net, up_to="conv1"
    )  # MATLAB: net = setLearnRateFactor(...0) / freezeWeights(layers(1:10))

    augmenter = data.ImageAugmenter(translation_pixels=((-1, 1), (-1, 1)))
    # MATLAB: imageAugmenter = imageDataAugmenter(RandXTranslation=[-1 1], RandYTranslation=[-1 1]);
    augmented_train = data.ArrayDatastore(*_arrays(new_train), augmenter=augmenter)
    # MATLAB: augimdsTrain = augmentedImageDatastore(inputSize(1:2), imdsTrain,
    # MATLAB:     DataAugmentation=imageAugmenter);

    options = TrainingOptions(
        solver="adam",  # MATLAB: options = trainingOptions("adam", ...
        initial_learn_rate=0.001,  # (the new head learns 10 times faster: learn_rate_factor)
        max_epochs=args.epochs,
        mini_batch_size=10,  # MATLAB: MiniBatchSize=11, ...
        validation_data=new_test,  # MATLAB: ValidationData=augimdsValidation, ...
        validation_frequency=10,  # MATLAB: ValidationFrequency=5, ...
        metrics=["accuracy"],  # MATLAB: Metrics="accuracy", ...
        verbose=False,  # MATLAB: Verbose=false);
        seed=0,
        execution_environment="cpu",
    )
    result = dtb.train(net, augmented_train, "crossentropy", options)
    # MATLAB: net = trainnet(augimdsTrain, net, "crossentropy", options);

    predicted, _ = dtb.classify(result.network, new_test)
    # MATLAB: scores = minibatchpredict(net, augimdsValidation);
    # MATLAB:     YPred = scores2label(scores, classNames);
    truth = np.asarray(new.classes)[
        _arrays(new_test)[1]
    ]  # MATLAB: TValidation = imdsValidation.Labels;
    accuracy = float(np.mean(predicted == truth))  # MATLAB: accuracy = mean(YPred == TValidation)
    print(f"pretrained input size {input_size}, new classes {result.network.classes}")
    print(f"{len(new_train)} new training images; validation accuracy {accuracy:.3f}")
    return {
        "accuracy": accuracy,
        "classes": list(result.network.classes),
        "frozen": list(result.network.frozen_layers),
        "num_train": len(new_train),
    }


def _arrays(ds: data.Datastore) -> tuple[torch.Tensor, np.ndarray]:
    """Images and class indices of a datastore of (image, class index) pairs."""
    pairs = [ds[i] for i in range(len(ds))]
    return torch.stack([x for x, _ in pairs]), np.asarray([int(t) for _, t in pairs])


if __name__ == "__main__":
    main()
