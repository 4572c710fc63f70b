"""MATLAB examples on explaining and verifying a classifier, ported: Grad-CAM, LIME and
occlusion sensitivity ("Explore Network Predictions Using Deep Learning Visualization
Techniques") and ``verifyNetworkRobustness`` ("Verify Robustness of Deep Learning Neural
Network").

A small CNN is trained on scikit-learn's bundled 8x8 digits (no download), then explained
with the three maps and verified on boxes around test images: a small box is proven robust,
a large one is violated (a counterexample is returned). Each line carries the MATLAB call it
replaces.

Run: ``python examples/matlab/explain_and_verify.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import data, datasets, explain, robustness
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int) -> dtb.Network:
    net = dtb.Network([
        L.ImageInput((1, 8, 8)),  # MATLAB: imageInputLayer([8 8 1])
        # MATLAB: convolution2dLayer(3, 8, Padding="same")
        L.Conv2d(8, 3, padding="same", name="conv"),
        L.ReLU(name="relu"),  # MATLAB: reluLayer
        L.AvgPool2d(2, stride=2),  # MATLAB: averagePooling2dLayer(2, Stride=2)
        L.Flatten(),
        L.Dense(10, name="fc"),  # MATLAB: fullyConnectedLayer(10)
        L.Softmax(),  # MATLAB: softmaxLayer
    ])  # fmt: skip
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=epochs,
                              mini_batch_size=64, verbose=False, seed=0,
                              execution_environment="cpu")  # fmt: skip
    # MATLAB: options = trainingOptions("adam", InitialLearnRate=0.01, MaxEpochs=10, Verbose=false);
    train_ds = data.ArrayDatastore(images, targets=labels)
    return dtb.train(net, train_ds, "crossentropy", options).network
    # MATLAB: net = trainnet(XTrain, TTrain, net, "crossentropy", options);


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--verify", type=int, default=8, help="test images to verify")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)

    images, labels = datasets.digits()
    net = train_classifier(images[:1200], labels[:1200], args.epochs)
    x_test, t_test = torch.from_numpy(images[1200:]), labels[1200:]
    predicted, _ = dtb.classify(
        net, x_test
    )  # MATLAB: YPred = scores2label(minibatchpredict(net, XTest), classNames);
    accuracy = float(np.mean(predicted == t_test))

    x = x_test[:1]  # MATLAB: X = XTest(:,:,:,1);
    label = predicted[0]  # MATLAB: label = classify(net, X);
    gradcam_map = explain.gradcam(net, x, label, layer="relu")
    # MATLAB: scoreMap = gradCAM(net, X, label, FeatureLayer="relu");
    lime = explain.image_lime(net, x, label, num_features=16, num_samples=256)
    # MATLAB: scoreMap = imageLIME(net, X, label, NumFeatures=16, NumSamples=256);
    occlusion_map = explain.occlusion_sensitivity(net, x, label, mask_size=3, stride=1)
    # MATLAB: scoreMap = occlusionSensitivity(net, X, label, MaskSize=3, Stride=1);

    x_verify = x_test[: args.verify]
    t_verify = predicted[: args.verify]  # verify the network's own answers
    small = robustness.verify_robustness(net, x_verify - 0.001, x_verify + 0.001, t_verify)
    # MATLAB: XLower = X - 0.001; XUpper = X + 0.001;
    # MATLAB: result = verifyNetworkRobustness(net, XLower, XUpper, label);
    large = robustness.verify_robustness(net, x_verify, t_verify, 0.5, input_range=(0.0, 1.0))
    # MATLAB: result = verifyNetworkRobustness(net, max(X - 0.5, 0), min(X + 0.5, 1), label);
    print(f"test accuracy {accuracy:.3f}; explained image 0 as {str(label)!r}")
    print(f"map sizes: Grad-CAM {tuple(gradcam_map.shape)}, LIME {tuple(lime.map.shape)}, "
          f"occlusion {tuple(occlusion_map.shape)}")  # fmt: skip
    print(f"epsilon 0.001: {small.status}")  # MATLAB: summary(result)
    print(f"epsilon 0.5:   {large.status}")
    return {
        "accuracy": accuracy,
        "label": str(label),
        "gradcam": gradcam_map,
        "lime": lime.map,
        "occlusion": occlusion_map,
        "small_box": list(small.status),
        "large_box": list(large.status),
    }


if __name__ == "__main__":
    main()
