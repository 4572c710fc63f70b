"""Compression benchmark: int8, pruning and projection of a ResNet-18-sized network on the CPU.

torchvision's ResNet-18 (random weights, 10 classes; nothing is downloaded) is brought in with
``from_torch`` and compressed four ways: onnxruntime int8 (static QDQ, per-channel weights),
50% structured pruning (magnitude), projection (40% fewer learnables) and, when
``torch-pruning`` is installed, torch-pruning's magnitude pruner at the same ratio on the same
torchvision model. Every variant is timed in one process, repetitions interleaved (each round
runs every variant and engine once), at batch 1 and 32, on ``--threads`` threads (default 1);
the medians and the ratios are printed: ORT int8 / ORT float, ORT int8 / eager float, file
size float / int8, pruned and projected latency / float.

Accuracy needs a trained network: with ``--train-epochs N`` both pruned networks (ours and
torch-pruning's) and the int8 one are fine-tuned / evaluated on the bundled digits, upsampled
to ``--size`` (slow on a CPU); without it accuracy is not measured.

Run: ``.venv/bin/python benchmarks/compress.py [--size 224] [--repetitions 5]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import deeptoolbox as dtb
from deeptoolbox import compress
from deeptoolbox.compress._report import learnables


def resnet18(classes: int = 10) -> torch.nn.Module:
    from torchvision.models import resnet18 as make

    torch.manual_seed(0)
    return make(weights=None, num_classes=classes).eval()


def torch_pruning_variant(model: torch.nn.Module, sample: torch.Tensor, ratio: float):
    """The same torchvision model pruned by torch-pruning (None when it is not installed)."""
    try:
        import torch_pruning as tp
    except ImportError:
        return None
    model = copy.deepcopy(model)
    pruner = tp.pruner.MagnitudePruner(
        model, sample[:1], importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio, ignored_layers=[model.fc],
    )  # fmt: skip
    pruner.step()
    return model.eval()


def digits_data(size: int):
    images, labels = dtb.datasets.digits()
    x = F.interpolate(torch.from_numpy(images), size=(size, size), mode="bilinear")
    x = x.expand(-1, 3, -1, -1).contiguous()
    y = torch.as_tensor(dtb.data.ArrayDatastore(images, targets=labels).targets)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(x))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input side (default 224)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ratio", type=float, default=0.5, help="pruning ratio")
    parser.add_argument("--train-epochs", type=int, default=0, help="train on digits first")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sample = torch.randn(32, 3, args.size, args.size)
    model = resnet18()
    started = time.perf_counter()
    net = dtb.from_torch(model, sample[:2])
    train_data = test_data = None
    if args.train_epochs:
        train_data, test_data = digits_data(args.size)
        options = dtb.TrainingOptions(solver="adam", initial_learn_rate=1e-3, verbose=False,
                                      max_epochs=args.train_epochs, mini_batch_size=32, seed=0)  # fmt: skip
        dtb.train(net, train_data, "crossentropy", options)
        model.load_state_dict({k.split(".", 1)[1] if k.startswith("layers.") else k: v
                               for k, v in net.state_dict().items()}, strict=False)  # fmt: skip
    net.eval()
    print(f"network: ResNet-18, input 3x{args.size}x{args.size}, "
          f"{sum(p.numel() for p in net.parameters()):,} learnables "
          f"(from_torch {time.perf_counter() - started:.1f} s)")  # fmt: skip

    quantizer = compress.Quantizer(net)
    quantizer.calibrate(train_data[0][:64] if train_data else sample[:16], batch_size=8)
    int8 = quantizer.quantize()
    pruned = compress.prune(net, ratio=args.ratio).network
    projected = compress.project(net, sample[:8], learnables_reduction=0.4).network
    variants = {"float": net, "int8": int8, "pruned": pruned, "projected": projected}
    theirs = torch_pruning_variant(model, sample, args.ratio)
    if theirs is not None:
        variants["torch-pruning"] = theirs
    else:
        print("torch-pruning is not installed: its column is left out")
    latency = compress.measure_latency(variants, [sample], batch_sizes=(1, 32),
                                       repetitions=args.repetitions, threads=args.threads)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        float_size = os.path.getsize(quantizer.save_float(Path(folder) / "float.onnx"))
        int8_size = os.path.getsize(int8.save(Path(folder) / "int8.onnx"))

    print(f"\nmedian latency per batch, {args.threads} thread(s), {args.repetitions} interleaved "
          "repetitions (ms)")  # fmt: skip
    print(f"  {'variant':<14} {'engine':<12} {'learnables':>12} {'batch 1':>10} {'batch 32':>10}")
    for label, engine in dict.fromkeys((k[0], k[1]) for k in latency):
        count = learnables(variants[label])
        cells = [latency.get((label, engine, b)) for b in (1, 32)]
        print(
            f"  {label:<14} {engine:<12} {count:>12,} "
            + " ".join(f"{c * 1e3:>10.2f}" for c in cells)
        )
    for batch in (1, 32):
        ort_float, eager = (
            latency[("float", "onnxruntime", batch)],
            latency[("float", "eager", batch)],
        )
        ort_int8 = latency[("int8", "onnxruntime", batch)]
        print(
            f"batch {batch}: ORT int8 / ORT float = {ort_int8 / ort_float:.2f}, "
            f"ORT int8 / eager float = {ort_int8 / eager:.2f}, "
            f"pruned / float (eager) = {latency[('pruned', 'eager', batch)] / eager:.2f}, "
            f"projected / float (eager) = {latency[('projected', 'eager', batch)] / eager:.2f}"
        )
        if theirs is not None:
            print(
                f"         torch-pruning / float (eager) = "
                f"{latency[('torch-pruning', 'eager', batch)] / eager:.2f}"
            )
    print(
        f"file size: float ONNX {float_size / 2**20:.1f} MiB, int8 ONNX "
        f"{int8_size / 2**20:.1f} MiB, ratio {float_size / int8_size:.2f}"
    )
    if test_data is not None:
        for label in ("float", "int8", "pruned", "torch-pruning"):
            if label in variants:
                value = dtb.evaluate(variants[label], test_data)["accuracy"]
                print(
                    f"accuracy on digits ({label}, no fine-tuning after compression): {value:.4f}"
                )


if __name__ == "__main__":
    main()
