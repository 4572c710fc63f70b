"""Output-bound benchmark: IBP, CROWN and optimized CROWN against auto_LiRPA, same weights.

Four networks (random weights, seeded): an MLP 784-256x3-10, a CNN 1x28x28 conv16-conv32-fc100,
a CIFAR-sized CNN (3x32x32, 4 convolutions, about 100k parameters) and a small ResNet (two
residual blocks with BatchNorm). For each, a batch of 4 input boxes of half-width
``--epsilon`` around random points is bounded by ``estimate_output_bounds`` and, when the
anchor copy of auto_LiRPA is found (``../shared/anchors/auto_LiRPA`` next to the checkout, or
``--lirpa PATH``), by auto_LiRPA's ``compute_bounds`` on the same ``torch.nn`` modules. The
two run interleaved (ours, theirs, ours, theirs ...) so that both see the same machine load;
the script prints the median time, the peak memory (growth of the process's resident memory
during the call) and the mean bound width of each, and the ratios ours / theirs.

Then two verification rows: ``verify_robustness`` on a 64x64 CNN with about 6,000 parameters
(one image, epsilon 0.5/255), and the time limit on a torchvision ResNet-18 converted with
``from_torch`` (``timeout=5``; skipped without torchvision).

Run: ``.venv/bin/python benchmarks/bounds.py [--rounds 3] [--epsilon 0.02] [--threads 1]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from deeptoolbox.robustness import estimate_output_bounds, verify_robustness

# -- networks ---------------------------------------------------------------------------------


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10),
    )  # fmt: skip


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10),
    )  # fmt: skip


def cifar_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 48, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(48 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 10),
    )  # fmt: skip


class Block(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride=stride, padding=0), nn.BatchNorm2d(outputs)
            )
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block1, self.block2 = Block(16, 16, 1), Block(16, 32, 2)
        self.head = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))

    def forward(self, x):
        return self.head(self.block2(self.block1(self.stem(x))))


def seeded_batchnorm(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


CASES = [
    ("MLP 784-256x3-10", mlp, (1, 28, 28)),
    ("CNN 1x28x28 conv16-conv32-fc100", cnn, (1, 28, 28)),
    ("CIFAR CNN 3x32x32, 4 conv", cifar_cnn, (3, 32, 32)),
    ("ResNet, 2 blocks, 3x32x32", SmallResNet, (3, 32, 32)),
]
METHODS = [("IBP", "ibp", False, "IBP"), ("CROWN", "crown", False, "CROWN"),
           ("optimized CROWN", "crown", True, "CROWN-Optimized")]  # fmt: skip


# -- measurement ------------------------------------------------------------------------------
def _status(field: str) -> int:
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def measure(function):
    """Seconds and peak memory growth (bytes) of one call; the result."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # free memory goes back to the system first
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")  # resets the peak (VmHWM) to the current size
    before = _status("VmRSS")
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    return seconds, max(0, _status("VmHWM") - before), result


def find_lirpa(explicit: str | None):
    here = Path(__file__).resolve().parent.parent
    candidates = [Path(explicit)] if explicit else []
    candidates += [here.parent / "shared" / "anchors" / "auto_LiRPA",
                   here.parent.parent / "shared" / "anchors" / "auto_LiRPA"]  # fmt: skip
    for folder in candidates:
        if (folder / "auto_LiRPA").is_dir():
            sys.path.insert(0, str(folder))
            try:
                import auto_LiRPA  # noqa: F401
            except ImportError as error:
                return None, f"auto_LiRPA found in {folder} but not importable: {error}"
            return folder, None
    return None, "auto_LiRPA anchor folder not found (looked in ../shared/anchors/auto_LiRPA)"


def lirpa_runner(model: nn.Module, center: torch.Tensor, epsilon: float, method: str):
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    bounded = BoundedModule(model, torch.zeros_like(center), verbose=0)

    def run():
        box = BoundedTensor(center, PerturbationLpNorm(norm=float("inf"), eps=epsilon))
        lower, upper = bounded.compute_bounds(x=(box,), method=method)
        return (upper - lower).detach()

    return run


def ours_runner(model: nn.Module, center: torch.Tensor, epsilon: float, method: str, opt: bool):
    def run():
        bounds = estimate_output_bounds(
            model, center - epsilon, center + epsilon, method=method, optimize_slopes=opt
        )
        return bounds.width

    return run


def as_network(model: nn.Module, shape) -> nn.Module:
    """Plain Sequential models are bounded as they are; others go through from_torch."""
    if isinstance(model, nn.Sequential):
        return model
    from deeptoolbox.interop import from_torch

    return from_torch(model, torch.zeros(1, *shape)).eval()


def compare(name, build, shape, args, lirpa: bool) -> None:
    torch.manual_seed(0)
    model = seeded_batchnorm(build())
    ours_model = as_network(model, shape)
    center = torch.rand(4, *shape)
    for label, method, opt, theirs_method in METHODS:
        if args.methods and label not in args.methods.split(","):
            continue
        runners = {"ours": ours_runner(ours_model, center, args.epsilon, method, opt)}
        if lirpa:
            runners["auto_LiRPA"] = lirpa_runner(model, center, args.epsilon, theirs_method)
        for run in runners.values():  # warm-up (first-call costs are not what we compare)
            run()
        samples: dict[str, list] = {key: [] for key in runners}
        for _ in range(args.rounds):
            for key, run in runners.items():
                samples[key].append(measure(run))
        row = {}
        for key, values in samples.items():
            seconds = statistics.median(v[0] for v in values)
            memory = statistics.median(v[1] for v in values)
            width = float(values[-1][2].mean())
            row[key] = (seconds, memory, width)
            print(f"{name:34} {label:16} {key:10} {seconds:9.3f} s {memory / 2**20:8.1f} MB"
                  f" {width:12.5f}")  # fmt: skip
        if "auto_LiRPA" in row:
            (t1, m1, w1), (t2, m2, w2) = row["ours"], row["auto_LiRPA"]
            print(f"{name:34} {label:16} {'ratio':10} {t1 / t2:9.2f}   "
                  f"{m1 / max(m2, 1):8.2f}    {w1 / w2:12.4f}")  # fmt: skip


# -- verification rows ------------------------------------------------------------------------
def cnn64():
    """A 64x64 RGB classifier with about 6,000 parameters (BatchNorm, max pooling)."""
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    return Network([
        L.ImageInput((3, 64, 64)),
        L.Conv2d(8, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2d(2, padding=0),
        L.Conv2d(16, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2d(2, padding=0),
        L.Conv2d(28, 3, padding=1), L.BatchNorm(), L.ReLU(), L.GlobalAvgPool(),
        L.Dense(10), L.Softmax(),
    ])  # fmt: skip


def blobs(count: int, generator: torch.Generator):
    """64x64 RGB images of 10 classes: a red, green or blue small blob, large blob or stripes,
    or a grey blob, placed anywhere on noise."""
    labels = torch.randint(0, 10, (count,), generator=generator)
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    images = 0.2 * torch.rand(count, 3, 64, 64, generator=generator)
    for i, k in enumerate(labels.tolist()):
        cy, cx = (16 + 32 * torch.rand(2, generator=generator)).tolist()
        radius = 5.0 if k % 3 == 0 or k == 9 else 12.0
        shape = torch.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * radius**2))
        if k < 9 and k % 3 == 2:
            shape = shape * (torch.sin(cols / 1.5) > 0)
        channels = [0, 1, 2] if k == 9 else [k // 3]
        images[i, channels] += 0.8 * shape
    return images.clamp(0, 1), labels


def trained_cnn64():
    """The 64x64 CNN trained for a few epochs on generated blobs (a plain loop)."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = cnn64()
    x, y = blobs(800, generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    for _ in range(6):
        for start in range(0, 800, 50):
            optimizer.zero_grad()
            logits = torch.log(net(x[start : start + 50]) + 1e-9)
            torch.nn.functional.nll_loss(logits, y[start : start + 50]).backward()
            optimizer.step()
    net.eval()
    test_x, test_y = blobs(200, generator)
    with torch.no_grad():
        accuracy = float((net(test_x).argmax(1) == test_y).float().mean())
    return net, test_x, test_y, accuracy


def verification_rows(args) -> None:
    net, x, y, accuracy = trained_cnn64()
    params = sum(p.numel() for p in net.parameters())
    seconds, memory, result = measure(lambda: verify_robustness(net, x[:1], y[:1], 0.5 / 255))
    print(f"verify_robustness 64x64 CNN ({params} parameters, test accuracy {accuracy:.2f}), one "
          f"image, eps 0.5/255: {result.status[0]}, {seconds:.2f} s, peak memory growth "
          f"{memory / 2**20:.0f} MB")  # fmt: skip
    seconds, memory, result = measure(lambda: verify_robustness(net, x, y, 0.5 / 255))
    print(f"verify_robustness 64x64 CNN, test set of {len(y)} images, eps 0.5/255: "
          f"{result.counts}, {seconds:.2f} s ({seconds / len(y) * 1000:.0f} ms per image), peak "
          f"memory growth {memory / 2**20:.0f} MB")  # fmt: skip
    try:
        import torchvision
    except ImportError:
        print("torchvision not installed: no ResNet-18 time-limit row")
        return
    from deeptoolbox.interop import from_torch

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    net = from_torch(model, torch.zeros(1, 3, 224, 224)).eval()
    x = torch.rand(1, 3, 224, 224)
    label = int(net(x).argmax())
    seconds, memory, result = measure(lambda: verify_robustness(net, x, label, 2 / 255, timeout=5))
    print(
        f"verify_robustness ResNet-18 224x224 (from_torch), timeout=5: {result.status[0]}, "
        f"{seconds:.2f} s, peak memory growth {memory / 2**20:.0f} MB; notes: {result.notes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lirpa", default=None, help="folder holding the auto_LiRPA package")
    parser.add_argument("--only", default=None, help="run only networks whose name has this")
    parser.add_argument("--methods", default=None, help="comma-separated: IBP,CROWN,...")
    parser.add_argument("--no-verify", action="store_true", help="skip the verification rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder, problem = find_lirpa(args.lirpa)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU, "
          f"{args.rounds} interleaved rounds, epsilon {args.epsilon}")  # fmt: skip
    print(f"auto_LiRPA from {folder}" if folder else f"no side-by-side comparison: {problem}")
    print(
        f"{'network':34} {'method':16} {'who':10} {'time':>11} {'peak mem':>11} {'mean width':>12}"
    )
    for name, build, shape in CASES:
        if args.only and args.only.lower() not in name.lower():
            continue
        compare(name, build, shape, args, folder is not None)
    if not args.no_verify:
        verification_rows(args)


if __name__ == "__main__":
    main()
