"""GPU training check: hand-written loops at each setting against train() with defaults.

One command, under 4 minutes on one GPU (``python benchmarks/gpu_train.py``):

1. a hand-written PyTorch loop (SGD with momentum, cross-entropy) on torchvision's ResNet-50
   (no weights), synthetic 224 px images in pinned host memory, batch 256, at four settings:
   fp32, bf16 autocast, bf16 + channels_last, bf16 + channels_last + torch.compile;
2. ``train()`` on the same model and data with *default* device options, as a long run would
   have them (its length is set past the compile rule's 1000 iterations, and a callback stops
   it once measured), so "auto" picks bf16, channels_last and compile;
3. prints images/s of each (steady state: the first iterations, with cuDNN autotuning and
   compiling, are left out) and its ratio to the best hand-written figure;
4. with 2 GPUs or more, a 2-process DDP smoke run of train() (``multi-gpu``, NCCL), and a
   2-process ``strategy="fsdp"`` smoke run (FSDP2 over NCCL) checking that each process held
   half the parameters and both returned the same network.

``--cpu`` runs the same steps at tiny sizes on the CPU (a small toolbox ResNet, 32 px,
batch 16; compile left out unless ``--compile-on-cpu``) so the script can be checked
anywhere; its figures mean nothing for GPUs. Without CUDA and without ``--cpu`` it says so
and exits with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def toolbox_resnet(size: int):
    """A small ResNet-style toolbox Network (the --cpu model)."""
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    net = Network([L.ImageInput((3, size, size), name="image", normalization="none"),
                   L.Conv2d(16, 3, padding="same", name="stem"), L.BatchNorm(),
                   L.ReLU(name="stem_relu")])  # fmt: skip
    previous = "stem_relu"
    for block, filters in enumerate([16, 32]):
        p = f"b{block}_"
        net.add_layers([L.Conv2d(filters, 3, stride=2, padding="same", name=p + "c1"),
                        L.BatchNorm(), L.ReLU(), L.Conv2d(filters, 3, padding="same"),
                        L.BatchNorm(name=p + "bn2")])  # fmt: skip
        net.connect(previous, p + "c1")
        net.add_layers([L.Conv2d(filters, 1, stride=2, name=p + "skip")])
        net.connect(previous, p + "skip")
        net.add_layers([L.Addition(2, name=p + "add"), L.ReLU(name=p + "out")])
        net.connect(p + "bn2", p + "add/in1").connect(p + "skip", p + "add/in2")
        previous = p + "out"
    net.add_layers([L.GlobalAvgPool(name="gap"), L.Dense(10, name="fc")])
    net.connect(previous, "gap")
    return net


class Setup:
    def __init__(self, cpu: bool, steps: int, warmup: int):
        self.cpu, self.steps, self.warmup = cpu, steps, warmup
        self.device = torch.device("cpu" if cpu else "cuda")
        self.batch, self.size, self.classes = (16, 32, 10) if cpu else (256, 224, 1000)
        g = torch.Generator().manual_seed(0)
        count = self.batch * steps
        self.x = torch.randn(count, 3, self.size, self.size, generator=g)
        self.y = torch.randint(0, self.classes, (count,), generator=g)
        if not cpu:
            self.x = self.x.pin_memory()

    def model(self) -> torch.nn.Module:
        torch.manual_seed(0)
        if self.cpu:
            return toolbox_resnet(self.size)
        import torchvision

        return torchvision.models.resnet50(weights=None, num_classes=self.classes)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def hand_written(setup: Setup, bf16: bool, channels_last: bool, compiled: bool) -> float:
    """Images/s of a plain loop over one pass of the data, after ``warmup`` iterations."""
    device = setup.device
    net = setup.model().to(device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    forward = torch.compile(net) if compiled else net
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())  # fmt: skip
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        start = None
        for step in range(setup.steps):
            if step == setup.warmup:
                setup.sync()
                start = time.perf_counter()
            begin = step * setup.batch
            inputs = setup.x[begin : begin + setup.batch].to(device, non_blocking=True,
                                                              memory_format=memory)  # fmt: skip
            targets = setup.y[begin : begin + setup.batch].to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(forward(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        setup.sync()
        return (setup.steps - setup.warmup) * setup.batch / (time.perf_counter() - start)
    finally:
        torch.backends.cudnn.benchmark = previous


def with_defaults(setup: Setup) -> tuple[float, str]:
    """Images/s of train() with default device options, and what the options picked."""
    from deeptoolbox.training import Callback, TrainingOptions, train

    class Clock(Callback):
        def __init__(self) -> None:
            self.start = self.end = 0.0
            self.setup = ""

        def on_iteration_end(self, state, info):
            self.setup = info["setup"]  # what the defaults picked: "bf16-mixed, ..."
            if state.iteration == setup.warmup:
                setup.sync()
                self.start = time.perf_counter()
            if state.iteration == setup.steps:
                setup.sync()
                self.end = time.perf_counter()
                return True  # measured: stop the "long" run here
            return None

    clock = Clock()
    epochs = math.ceil(1000 / setup.steps) + 1  # a run the compile rule finds long enough
    options = TrainingOptions(
        solver="sgdm", initial_learn_rate=0.01, l2_regularization=0.0, max_epochs=epochs,
        mini_batch_size=setup.batch, shuffle="never", verbose=False, seed=0, callbacks=[clock],
        reset_input_normalization=False,
    )  # fmt: skip
    result = train(setup.model(), (setup.x, setup.y), "crossentropy", options)
    assert result.device.startswith(setup.device.type), result.device
    speed = (setup.steps - setup.warmup) * setup.batch / (clock.end - clock.start)
    return speed, f"{result.device}: {clock.setup}"


DDP_SCRIPT = textwrap.dedent("""
    import os, torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train
    torch.manual_seed(0)
    x = torch.randn(512, 3, 32, 32); y = (x.mean((1, 2, 3)) > 0).long()
    net = Network([L.ImageInput((3, 32, 32)), L.Conv2d(16, 3, padding="same"), L.ReLU(),
                   L.GlobalAvgPool(), L.Dense(2), L.Softmax()])
    result = train(net, (x, y), "crossentropy", TrainingOptions(
        execution_environment="multi-gpu", max_epochs=3, mini_batch_size=64, verbose=False,
        validation_data=(x[:128], y[:128]), metrics=["accuracy"]))
    if os.environ["RANK"] == "0":
        losses = result.history.column("loss", per="epoch")
        print(f"DDP smoke: {os.environ['WORLD_SIZE']} processes on {result.device}, "
              f"{result.precision}, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
              f"validation accuracy {result.final_validation['accuracy']:.3f}", flush=True)
""")


def ddp_smoke() -> int:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "ddp_smoke.py"
        script.write_text(DDP_SCRIPT)
        command = [sys.executable, "-m", "deeptoolbox.cli", "train", "--nproc-per-node", "2",
                   str(script)]  # fmt: skip
        return subprocess.run(command, check=False, timeout=300).returncode


FSDP_SCRIPT = textwrap.dedent("""
    import os, torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train
    from deeptoolbox.training._sharding import local_fraction
    torch.manual_seed(0)
    x, y = torch.randn(512, 64), torch.randint(0, 4, (512,))
    net = Network([L.FeatureInput(64), L.Dense(256), L.ReLU(), L.Dense(256), L.ReLU(),
                   L.Dense(4), L.Softmax()])
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
""")


def fsdp_smoke() -> bool:
    """2 GPUs: train with strategy='fsdp' on 2 processes; True when it ran and agreed."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "fsdp_smoke.py"
        script.write_text(FSDP_SCRIPT)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                   str(script)]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("FSDP rank")]
    print("\n".join(lines) or run.stderr[-2000:])
    checksums = {line.rsplit(" ", 1)[-1] for line in lines}
    return run.returncode == 0 and len(lines) == 2 and len(checksums) == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (a check)")
    parser.add_argument("--steps", type=int, default=None, help="iterations per measurement")
    parser.add_argument("--warmup", type=int, default=None, help="iterations left out")
    parser.add_argument("--compile-on-cpu", action="store_true")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_train: no CUDA device here; nothing to measure (skipped; --cpu checks the "
              "script at tiny sizes).")  # fmt: skip
        return 0
    steps = args.steps or (6 if args.cpu else 60)
    warmup = args.warmup or (2 if args.cpu else 15)
    if not 0 < warmup < steps:
        parser.error(f"--warmup must be between 1 and --steps - 1; got {warmup}, {steps}")
    setup = Setup(args.cpu, steps, warmup)
    name = "cpu" if args.cpu else torch.cuda.get_device_name()
    model = "toolbox ResNet (tiny)" if args.cpu else "torchvision ResNet-50"
    print(
        f"device: {name}, torch {torch.__version__}, {model}, {setup.size} px, batch "
        f"{setup.batch}, {steps - warmup} timed iterations after {warmup}",
        flush=True,
    )
    compile_here = not args.cpu or args.compile_on_cpu
    rows = [("hand-written fp32", dict(bf16=False, channels_last=False, compiled=False)),
            ("hand-written bf16", dict(bf16=True, channels_last=False, compiled=False)),
            ("hand-written bf16 + channels_last", dict(bf16=True, channels_last=True,
                                                       compiled=False))]  # fmt: skip
    if compile_here:
        rows.append(("hand-written bf16 + channels_last + compile",
                     dict(bf16=True, channels_last=True, compiled=True)))  # fmt: skip
    speeds = {}
    for label, settings in rows:
        began = time.perf_counter()
        speeds[label] = hand_written(setup, **settings)
        print(f"{label:46s} {speeds[label]:9.1f} img/s  ({time.perf_counter() - began:.0f} s)",
              flush=True)  # fmt: skip
    began = time.perf_counter()
    ours, picked = with_defaults(setup)
    label = "train() defaults"
    print(f"{label:46s} {ours:9.1f} img/s  ({time.perf_counter() - began:.0f} s)  [{picked}]")
    best_label = max(speeds, key=speeds.get)
    best = speeds[best_label]
    print(f"\nratios to the best hand-written ({best_label}):")
    for label, speed in [*speeds.items(), ("train() defaults", ours)]:
        print(f"  {label:46s} {speed / best:6.3f}")
    code = 0
    if not args.cpu and torch.cuda.device_count() >= 2:
        code = ddp_smoke()
        print(f"DDP smoke exit status {code}")
        sharded = fsdp_smoke()
        print(f"2-GPU fsdp smoke run: {'ok' if sharded else 'FAILED'}")
        code = code or (0 if sharded else 1)
    elif not args.cpu:
        print("DDP smoke: skipped (one GPU)")
    return code


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "8")
    sys.exit(main())
