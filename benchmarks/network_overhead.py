"""Forward-pass overhead of a deeptoolbox Network against the same model written in plain PyTorch.

Three cases, each timed interleaved (network, then plain, then network, ...) in one process
so both sides see the same machine state; the printed ratio is network time / plain time
(median over rounds):

- tiny MLP at batch 1, where per-call overhead shows most (vs ``nn.Sequential`` and a
  hand-written ``nn.Module``);
- a CNN at batch 64 (vs ``nn.Sequential``);
- a residual DAG at batch 32 (vs a hand-written ``nn.Module``).

Both sides hold the same weights, and outputs are checked equal before timing. A "noise
floor" row times the plain model against a copy of itself: ratios within that distance of
1.0 are measurement noise, not overhead.
Targets (issue 2): within 5% at batch 1, within 1% at batch 64.

A last row times building: a 400-layer chain made one ``add_layers`` / ``connect`` call at a
time inside ``with net.editing():``, against ``Network(list)``; target (issue 12): within 2x.
The same one-call-at-a-time build without the block (each edit resolves sizes) is printed
for reference.

Run: ``.venv/bin/python benchmarks/network_overhead.py [--rounds 30]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from deeptoolbox import Network
from deeptoolbox import layers as L


def tiny_mlp() -> tuple[Network, nn.Module, nn.Module, torch.Tensor]:
    net = Network([L.FeatureInput(32), L.Dense(64), L.ReLU(), L.Dense(64), L.ReLU(), L.Dense(10)])
    linears = [nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 10)]
    for linear, name in zip(linears, ["dense_1", "dense_2", "dense_3"], strict=True):
        linear.load_state_dict(net.layer(name).state_dict())
    sequential = nn.Sequential(linears[0], nn.ReLU(), linears[1], nn.ReLU(), linears[2])

    class HandWritten(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = linears

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    return net, sequential, HandWritten(), torch.randn(1, 32)


def cnn() -> tuple[Network, nn.Module, torch.Tensor]:
    net = Network(
        [
            L.ImageInput((3, 32, 32)),
            L.Conv2d(32, 3, padding="same", name="c1"),
            L.BatchNorm(name="b1"),
            L.ReLU(),
            L.MaxPool2d(2),
            L.Conv2d(64, 3, padding="same", name="c2"),
            L.BatchNorm(name="b2"),
            L.ReLU(),
            L.MaxPool2d(2),
            L.Flatten(),
            L.Dense(10, name="fc"),
        ]
    )
    plain = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding="same"),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding="same"),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10),
    )
    for index, name in [(0, "c1"), (1, "b1"), (4, "c2"), (5, "b2"), (9, "fc")]:
        plain[index].load_state_dict(net.layer(name).state_dict(), strict=False)
    return net, plain, torch.randn(64, 3, 32, 32)


def residual() -> tuple[Network, nn.Module, torch.Tensor]:
    net = Network(
        [
            L.ImageInput((16, 16, 16), name="x"),
            L.Conv2d(16, 3, padding="same", name="c1"),
            L.ReLU(),
            L.Conv2d(16, 3, padding="same", name="c2"),
            L.Addition(name="add"),
            L.ReLU(),
            L.GlobalAvgPool(),
            L.Dense(10, name="fc"),
        ]
    )
    net.connect("x", "add/in2")

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(16, 16, 3, padding="same")
            self.c2 = nn.Conv2d(16, 16, 3, padding="same")
            self.fc = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.c2(torch.relu(self.c1(x))) + x)
            return self.fc(y.mean(dim=(2, 3)))

    plain = Block()
    for name in ("c1", "c2", "fc"):
        getattr(plain, name).load_state_dict(net.layer(name).state_dict())
    return net, plain, torch.randn(32, 16, 16, 16)


def _time(call: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    return (time.perf_counter() - start) / iterations


def compare(
    label: str, net: nn.Module, plain: nn.Module, x: torch.Tensor, rounds: int, iterations: int
) -> float:
    net.eval()
    plain.eval()
    with torch.inference_mode():
        torch.testing.assert_close(net(x), plain(x))
        for _ in range(max(3, iterations // 10)):  # warm-up
            net(x)
            plain(x)
        ours, theirs = [], []
        for round_index in range(rounds):
            pair = [(ours, net), (theirs, plain)]
            for times, model in pair if round_index % 2 == 0 else reversed(pair):
                times.append(_time(lambda m=model: m(x), iterations))
    ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    print(
        f"{label:46s} network {statistics.median(ours) * 1e6:9.1f} us   "
        f"plain {statistics.median(theirs) * 1e6:9.1f} us   ratio {ratio:.3f}"
    )
    return ratio


def _chain_layers(length: int) -> list[nn.Module]:
    return [L.FeatureInput(8, name="x")] + [
        L.Dense(8, name=f"l{k}") if k % 2 == 0 else L.ReLU(name=f"l{k}") for k in range(length)
    ]


def _one_call_at_a_time(layers: list[nn.Module]) -> Network:
    net = Network()
    _one_call_at_a_time_into(net, layers)
    return net


def _built_in_block(layers: list[nn.Module]) -> Network:
    net = Network()
    with net.editing():
        _one_call_at_a_time_into(net, layers)
    return net


def _one_call_at_a_time_into(net: Network, layers: list[nn.Module]) -> None:
    net.add_layers(layers[0])
    for before, layer in zip(layers, layers[1:], strict=False):
        net.add_layers(layer)
        net.connect(before.name, layer.name)


def compare_building(length: int, rounds: int) -> float:
    """Median time of building a chain call by call in an editing() block / from a list."""
    from_list, in_block = [], []
    for round_index in range(rounds):
        pair = [(from_list, Network), (in_block, _built_in_block)]
        for times, build in pair if round_index % 2 == 0 else reversed(pair):
            layers = _chain_layers(length)
            start = time.perf_counter()
            net = build(layers)
            net.output_shape()
            times.append(time.perf_counter() - start)
    layers = _chain_layers(length)
    start = time.perf_counter()
    _one_call_at_a_time(layers).output_shape()
    unblocked = time.perf_counter() - start
    ratio = statistics.median(a / b for a, b in zip(in_block, from_list, strict=True))
    print(
        f"build {length} layers: call by call in net.editing() "
        f"{statistics.median(in_block) * 1e3:8.1f} ms   from a list "
        f"{statistics.median(from_list) * 1e3:8.1f} ms   ratio {ratio:.3f}   "
        f"(call by call, no block: {unblocked * 1e3:.0f} ms)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, inference mode, CPU")
    net, sequential, hand, x = tiny_mlp()
    compare("tiny MLP, batch 1 vs nn.Sequential", net, sequential, x, args.rounds, 2000)
    compare("tiny MLP, batch 1 vs hand-written module", net, hand, x, args.rounds, 2000)
    compare(
        "noise floor: nn.Sequential vs its copy",
        copy.deepcopy(sequential),
        sequential,
        x,
        args.rounds,
        2000,
    )
    net, plain, x = cnn()
    compare("CNN, batch 64 vs nn.Sequential", net, plain, x, args.rounds, 5)
    compare(
        "noise floor: nn.Sequential vs its copy", copy.deepcopy(plain), plain, x, args.rounds, 5
    )
    net, plain, x = residual()
    compare("residual DAG, batch 32 vs hand-written module", net, plain, x, args.rounds, 10)
    compare(
        "noise floor: hand-written vs its copy", copy.deepcopy(plain), plain, x, args.rounds, 10
    )
    compare_building(400, max(3, args.rounds // 6))


if __name__ == "__main__":
    main()
