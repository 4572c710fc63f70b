"""MATLAB example "Sequence Classification Using Deep Learning" (BiLSTM), ported.

MATLAB classifies speakers from the Japanese Vowels data (12 features, variable-length
sequences). This port generates sequences of 12 channels whose class decides the frequency
of a noisy oscillation and which channels are stressed (no download), then follows the
MATLAB script: a cell array of C x T sequences becomes a list of (T, C) arrays, padded per
mini-batch. Each line carries the MATLAB call it replaces.

Run: ``python examples/matlab/sequence_classification_bilstm.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions

CLASSES = ["speaker1", "speaker2", "speaker3"]
NUM_FEATURES = 12


def make_sequences(count: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` sequences (T, 12), T from 8 to 24, and their class names."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(count):
        k = i % len(CLASSES)
        t = np.arange(rng.integers(8, 25))[:, None]
        phase = rng.uniform(0, 2 * np.pi, size=NUM_FEATURES)
        wave = np.sin(0.5 * (k + 1) * t + phase)
        wave[:, k :: len(CLASSES)] += 0.5  # each speaker also stresses its own channels
        sequences.append((wave + 0.3 * rng.normal(size=wave.shape)).astype(np.float32))
        labels.append(CLASSES[k])
    return sequences, np.asarray(labels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=16, help="BiLSTM hidden units")
    parser.add_argument("--train", type=int, default=150, help="training sequences")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)  (initial weights come from torch's generator)

    x_train, t_train = make_sequences(args.train, seed=0)
    # MATLAB: [XTrain, TTrain] = japaneseVowelsTrainData;  (cell array of 12 x T matrices)
    x_test, t_test = make_sequences(60, seed=1)  # MATLAB: [XTest, TTest] = japaneseVowelsTestData;
    lengths = [
        len(x) for x in x_train
    ]  # MATLAB: sequenceLengths = cellfun(@(X) size(X,2), XTrain);
    order = np.argsort(lengths)  # MATLAB: [sequenceLengths, idx] = sort(sequenceLengths);
    x_train, t_train = [x_train[i] for i in order], t_train[order]
    # MATLAB: XTrain = XTrain(idx); TTrain = TTrain(idx);

    layers = [
        L.SequenceInput(NUM_FEATURES),  # MATLAB: sequenceInputLayer(12)
        L.LSTM(args.hidden, bidirectional=True, output_mode="last", name="bilstm"),
        # MATLAB: bilstmLayer(100, OutputMode="last")
        L.Dense(len(CLASSES)),  # MATLAB: fullyConnectedLayer(9)
        L.Softmax(),  # MATLAB: softmaxLayer
    ]
    net = dtb.Network(layers, classes=CLASSES)  # MATLAB: net = dlnetwork(layers)
    options = TrainingOptions(
        solver="adam",  # MATLAB: options = trainingOptions("adam", ...
        initial_learn_rate=0.01,
        max_epochs=args.epochs,  # MATLAB: MaxEpochs=50, ...
        mini_batch_size=27,  # MATLAB: MiniBatchSize=27, ...
        shuffle="never",  # MATLAB: Shuffle="never", ...  (batches of similar lengths)
        gradient_threshold=1,  # MATLAB: GradientThreshold=1, ...
        sequence_length="longest",  # MATLAB: SequenceLength="longest", ...
        sequence_padding_direction="right",
        metrics=["accuracy"],  # MATLAB: Metrics="accuracy", ...
        verbose=False,  # MATLAB: Verbose=false);
        seed=0,
        execution_environment="cpu",
    )
    result = dtb.train(net, (x_train, t_train), "crossentropy", options)
    # MATLAB: net = trainnet(XTrain, TTrain, net, "crossentropy", options);

    scores = dtb.predict(result.network, x_test, batch_size=27, sequence_length="longest")
    # MATLAB: scores = minibatchpredict(net, XTest, MiniBatchSize=27, SequenceLength="longest");
    predicted = np.asarray(CLASSES)[scores.argmax(1).numpy()]
    # MATLAB: YTest = scores2label(scores, classNames);
    accuracy = float(np.mean(predicted == t_test))  # MATLAB: acc = mean(YTest == TTest)
    tested = dtb.evaluate(result.network, (x_test, t_test), ["accuracy"])
    # MATLAB: testnet(net, XTest, TTest, "accuracy")
    print(f"{len(x_train)} training sequences, lengths {min(lengths)}..{max(lengths)}")
    print(f"test accuracy {accuracy:.3f} (chance {1 / len(CLASSES):.3f})")
    return {
        "accuracy": accuracy,
        "evaluate_accuracy": float(tested["accuracy"]),
        "num_classes": len(CLASSES),
        "scores_shape": tuple(scores.shape),
    }


if __name__ == "__main__":
    main()
