"""GPU training check: train() with default options against a hand-written loop on one card.

On a CUDA machine this script:

1. trains a ResNet-style CNN on synthetic 3x64x64 images with ``train()`` and *default*
   device options (``execution_environment="auto"``, ``precision="auto"``), and checks that
   those picked the GPU, bf16 autocast and channels_last;
2. trains the same network (same initial weights, same batches) with a hand-written loop
   using the same settings (bf16 autocast, channels_last), interleaved with 1;
3. checks that a short run gives the same loss curve as the same run on the CPU in float32
   (within bf16 tolerance);
4. prints images/s for both and the ratio;
5. with 2 or more GPUs: a 2-GPU smoke run of ``strategy="fsdp"`` (FSDP2 over NCCL, bf16),
   checking that each process held half the parameters and both returned the same network.

Without CUDA it prints a message and exits with status 0, so it can sit in any CI.

Run: ``python benchmarks/gpu_train.py [--rounds 3] [--steps 100]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

BATCH, SIZE = 128, 64


def make_network():
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    torch.manual_seed(0)
    net = Network(
        [
            L.ImageInput((3, SIZE, SIZE), name="image"),
            L.Conv2d(64, 3, padding="same", name="stem"),
            L.BatchNorm(),
            L.ReLU(name="stem_relu"),
        ]
    )
    previous = "stem_relu"
    for block, filters in enumerate([64, 128, 128, 256]):
        p = f"b{block}_"
        net.add_layers(
            [
                L.Conv2d(filters, 3, stride=2, padding="same", name=p + "c1"),
                L.BatchNorm(),
                L.ReLU(),
                L.Conv2d(filters, 3, padding="same", name=p + "c2"),
                L.BatchNorm(name=p + "bn2"),
            ]
        )
        net.connect(previous, p + "c1")
        net.add_layers([L.Conv2d(filters, 1, stride=2, name=p + "skip")])
        net.connect(previous, p + "skip")
        net.add_layers([L.Addition(2, name=p + "add"), L.ReLU(name=p + "out")])
        net.connect(p + "bn2", p + "add/in1").connect(p + "skip", p + "add/in2")
        previous = p + "out"
    net.add_layers([L.GlobalAvgPool(name="gap"), L.Dense(10, name="fc"), L.Softmax(name="prob")])
    net.connect(previous, "gap")
    return net


def make_data(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(count, 3, SIZE, SIZE, generator=g), torch.randint(
        0, 10, (count,), generator=g
    )


def options(epochs: int, **kw):
    from deeptoolbox.training import TrainingOptions

    return TrainingOptions(solver="sgdm", initial_learn_rate=0.01, l2_regularization=0.0,
                           max_epochs=epochs, mini_batch_size=BATCH, shuffle="never",
                           verbose=False, seed=0, **kw)  # fmt: skip


def toolbox(x, y, epochs: int) -> float:
    from deeptoolbox.training import train

    net = make_network()
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = train(net, (x, y), "crossentropy", options(epochs))
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    assert result.device.startswith("cuda") and result.precision == "bf16-mixed", result
    assert net.layer("stem").weight.is_contiguous(memory_format=torch.channels_last)
    return elapsed


def hand_written(x, y, epochs: int) -> float:
    from deeptoolbox.training._losses import Loss, logits_mode

    net = make_network().cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with logits_mode(net, Loss("crossentropy")):
        for _ in range(epochs):
            for begin in range(0, len(y), BATCH):
                inputs = (
                    x[begin : begin + BATCH]
                    .cuda(non_blocking=True)
                    .contiguous(memory_format=torch.channels_last)
                )
                targets = y[begin : begin + BATCH].cuda(non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = F.cross_entropy(net(inputs).float(), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def agrees_with_cpu() -> float:
    """Largest difference between GPU (default options) and CPU float32 loss curves."""
    from deeptoolbox.training import train

    x, y = make_data(4 * BATCH)
    gpu = train(make_network(), (x, y), "crossentropy", options(1)).history.column("loss")
    cpu = train(
        make_network(), (x, y), "crossentropy", options(1, execution_environment="cpu")
    ).history.column("loss")
    return max(abs(a - b) / abs(b) for a, b in zip(gpu, cpu, strict=True))


FSDP_SMOKE = """
import os, sys, torch
from deeptoolbox import Network, layers as L
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.training._sharding import local_fraction

torch.manual_seed(0)
x, y = torch.randn(512, 64), torch.randint(0, 4, (512,))
net = Network([L.FeatureInput(64), L.Dense(256), L.ReLU(), L.Dense(256), L.ReLU(), L.Dense(4),
               L.Softmax()])
held = []

class Probe:
    def on_train_start(self, state):
        held.append(local_fraction(net))

options = TrainingOptions(execution_environment="multi-gpu", strategy="fsdp", max_epochs=2,
                          mini_batch_size=64, seed=0, verbose=False, callbacks=[Probe()])
result = train(net, (x, y), "crossentropy", options)
total = sum(float(p.double().sum()) for p in result.network.parameters())
print(f"FSDP rank {os.environ['RANK']}: held {held[0]:.3f} of the parameters, loss "
      f"{result.history.iterations[-1]['loss']:.4f}, checksum {total:.6f}", flush=True)
"""


def fsdp_smoke() -> bool:
    """2 GPUs: train with strategy='fsdp' on 2 processes; True when it ran and agreed."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "fsdp_smoke.py"
        script.write_text(FSDP_SMOKE)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                   str(script)]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("FSDP rank")]
    print("\n".join(lines) or run.stderr[-2000:])
    checksums = {line.rsplit(" ", 1)[-1] for line in lines}
    return run.returncode == 0 and len(lines) == 2 and len(checksums) == 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_train: no CUDA device here; nothing to measure (skipped).")
        return 0
    x, y = make_data(args.steps * BATCH)
    x = x.pin_memory()
    toolbox(x[: 4 * BATCH], y[: 4 * BATCH], 1)  # warm-up: cuDNN autotune, lazy init
    hand_written(x[: 4 * BATCH], y[: 4 * BATCH], 1)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(len(y) / toolbox(x, y, 1))
        theirs.append(len(y) / hand_written(x, y, 1))
    difference = agrees_with_cpu()
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"train() defaults (bf16, channels_last): {a:9.0f} images/s")
    print(f"hand-written loop (bf16, channels_last): {b:9.0f} images/s")
    print(f"ratio train()/hand-written throughput: {a / b:.3f}")
    print(f"largest relative loss difference GPU bf16 vs CPU fp32 over 4 steps: {difference:.4f}")
    sharded = True
    if torch.cuda.device_count() >= 2:
        sharded = fsdp_smoke()
        print(f"2-GPU fsdp smoke run: {'ok' if sharded else 'FAILED'}")
    return 0 if difference < 0.05 and sharded else 1


if __name__ == "__main__":
    sys.exit(main())
