"""Output-bound benchmark: time and mean bound width of IBP, CROWN and optimized CROWN.

Networks of growing size (MLPs and small CNNs, random weights, seeded), a batch of 4 input
boxes of half-width ``--epsilon`` around random points. For each method the script prints
the median time over ``--rounds`` runs and the mean width of the output bounds (smaller is
tighter; all are sound). When auto_LiRPA is installed, its IBP and CROWN run on the same
``nn.Sequential`` models in the same process for comparison; otherwise that is reported.

Run: ``.venv/bin/python benchmarks/bounds.py [--rounds 3] [--epsilon 0.02]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from torch import nn

from deeptoolbox.robustness import estimate_output_bounds


def mlp(width: int, depth: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    return nn.Sequential(*layers, nn.Linear(size, classes)).eval()


def cnn(channels: int, side: int = 16, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(channels * (side // 2) ** 2, 64), nn.ReLU(),
        nn.Linear(64, classes),
    ).eval()  # fmt: skip


CASES = [
    ("MLP 64-64x2-10", lambda: mlp(64, 2), (64,)),
    ("MLP 64-256x3-10", lambda: mlp(256, 3), (64,)),
    ("MLP 64-512x4-10", lambda: mlp(512, 4), (64,)),
    ("CNN 4ch 16x16", lambda: cnn(4), (1, 16, 16)),
    ("CNN 8ch 16x16", lambda: cnn(8), (1, 16, 16)),
]


def timed(function, rounds: int):
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def auto_lirpa_runner():
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    except ImportError:
        return None

    def run(model, center, epsilon, method):
        bounded = BoundedModule(model, torch.zeros_like(center))
        ptb = PerturbationLpNorm(norm=float("inf"), eps=epsilon)
        lower, upper = bounded.compute_bounds(x=(BoundedTensor(center, ptb),), method=method)
        return (upper - lower).mean().item()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=0.02)
    args = parser.parse_args()
    torch.manual_seed(0)
    lirpa = auto_lirpa_runner()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'network':18} {'method':14} {'time (s)':>9} {'mean width':>11}")
    for name, build, shape in CASES:
        model = build()
        center = torch.rand(4, *shape)
        lower, upper = center - args.epsilon, center + args.epsilon
        methods = [("ibp", {}), ("crown", {}), ("crown+alpha", {"optimize_slopes": True})]
        for label, extra in methods:
            method = label.split("+")[0]
            run = partial(estimate_output_bounds, model, lower, upper, method=method, **extra)
            seconds, bounds = timed(run, args.rounds)
            print(f"{name:18} {label:14} {seconds:9.4f} {bounds.width.mean().item():11.4f}")
        if lirpa is not None:
            for method in ("IBP", "CROWN"):
                run = partial(lirpa, model, center, args.epsilon, method)
                seconds, width = timed(run, args.rounds)
                print(f"{name:18} {'auto_LiRPA ' + method:14} {seconds:9.4f} {width:11.4f}")
    if lirpa is None:
        print("auto_LiRPA is not installed: no side-by-side comparison in this run.")


if __name__ == "__main__":
    main()
