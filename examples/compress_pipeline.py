"""Compress a CNN the MATLAB way: prune -> fine-tune -> project -> fine-tune -> quantize -> export.

A small CNN is trained on the bundled 8x8 digits; then

1. structured pruning removes half of the channels of every prunable group (Taylor scores),
   followed by fine-tuning;
2. projection replaces layers by PCA-projected pairs until 40% of the remaining learnables
   are gone, followed by fine-tuning;
3. int8 quantization (onnxruntime, static QDQ, per-channel weights) keeps any layer float
   that would cost more than 1% accuracy; the int8 ONNX file is written.

The compression report (learnables, file size, multiply-accumulates, CPU latency, accuracy)
is printed after each stage. Run: ``python examples/compress_pipeline.py`` (a few minutes on a
laptop CPU); ``--images docs/images`` also writes the pictures used in docs/compress.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import deeptoolbox as dtb
from deeptoolbox import compress
from deeptoolbox import layers as L


def make_network(classes: list[str]) -> dtb.Network:
    torch.manual_seed(0)
    return dtb.Network([
        L.ImageInput((1, 8, 8), name="image"),
        L.Conv2d(32, 3, padding=1, name="conv1"), L.BatchNorm(name="bn1"), L.ReLU(name="relu1"),
        L.Conv2d(64, 3, padding=1, name="conv2"), L.BatchNorm(name="bn2"), L.ReLU(name="relu2"),
        L.MaxPool2d(2, name="pool"), L.Flatten(name="flat"),
        L.Dense(128, name="fc1"), L.ReLU(name="relu3"),
        L.Dense(10, name="fc2"), L.Softmax(name="softmax"),
    ], classes=classes, name="digits-cnn")  # fmt: skip


def options(epochs: int, rate: float) -> dtb.TrainingOptions:
    return dtb.TrainingOptions(solver="adam", initial_learn_rate=rate, max_epochs=epochs,
                               mini_batch_size=64, seed=0, verbose=False)  # fmt: skip


def show(title: str, result: compress.CompressionReport) -> None:
    print(f"\n=== {title} ===")
    print(result)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="training epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=6, help="epochs after each stage")
    parser.add_argument("--repetitions", type=int, default=20, help="latency repetitions")
    parser.add_argument("--output", default=None, help="folder for the files (default: temp)")
    parser.add_argument("--images", default=None, help="also write the docs pictures here")
    args = parser.parse_args(argv)
    output = Path(args.output or tempfile.mkdtemp(prefix="compress-"))
    output.mkdir(parents=True, exist_ok=True)

    images, labels = dtb.datasets.digits()
    data = dtb.data.ArrayDatastore(images, targets=labels)
    train_set, test_set = data.split(0.8, seed=0)
    net = make_network(data.classes)
    dtb.train(net, train_set, "crossentropy", options(args.epochs, 0.005))
    print(dtb.analyze(net))
    timing = {"repetitions": args.repetitions}
    results = {"float": dtb.evaluate(net, test_set)["accuracy"]}

    # 1. prune half of the channels (Taylor scores on the training data), then fine-tune
    pruning = compress.prune(net, train_set, "crossentropy", ratio=0.5, importance="taylor",
                             fine_tune=options(args.fine_tune_epochs, 0.002))  # fmt: skip
    pruned = pruning.network
    print(pruning)
    show("pruned + fine-tuned", compress.report(net, pruned, test_set, **timing))

    # 2. project until 40% of the pruned network's learnables are gone, then fine-tune
    projection = compress.project(pruned, train_set, learnables_reduction=0.4)
    projected = projection.network
    print(projection)
    dtb.train(projected, train_set, "crossentropy", options(args.fine_tune_epochs, 0.001))
    show(
        "projected + fine-tuned (against the pruned network)",
        compress.report(pruned, projected, test_set, labels=("pruned", "projected"), **timing),
    )

    # 3. int8, keeping layers float where they would cost more than 1% accuracy
    calibration_images = torch.stack([train_set[i][0] for i in range(min(512, len(train_set)))])
    quantized = compress.quantize(projected, calibration_images, test_set, max_accuracy_drop=0.01)
    print(f"\nlayers kept in float: {quantized.float_layers or 'none'}")
    int8_file = quantized.save(output / "digits-cnn-int8.onnx")
    dtb.save(projected, output / "digits-cnn-compressed.zip")
    final = compress.report(net, quantized, test_set, labels=("original", "int8"), **timing)
    show("all three stages (original vs int8)", final)
    print(f"\nwrote {int8_file} and {output / 'digits-cnn-compressed.zip'}")

    for name, model in (("pruned", pruned), ("projected", projected), ("int8", quantized)):
        results[name] = dtb.evaluate(model, test_set)["accuracy"]
    results.update(
        pruned_reduction=pruning.learnables_reduction,
        projected_reduction=projection.learnables_reduction,
        size_ratio=final.ratio("size_bytes"),
    )
    if args.images:
        folder = Path(args.images)
        quantized.calibration.plot(folder / "compress-ranges.png",
                                   layers=["image", "conv1", "conv2", "fc1"])  # fmt: skip
        final.plot(folder / "compress-report.png")
    return results


if __name__ == "__main__":
    for stage, value in main().items():
        print(f"{stage}: {value:.4f}")
