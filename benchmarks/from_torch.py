"""How long ``from_torch`` takes on torchvision models, against ``torch.fx.symbolic_trace`` alone.

For each model (random weights, no download) it prints the time of ``torch.fx.symbolic_trace``
(the reference: tracing only), of ``from_torch`` (trace, two recording runs of the graph,
layer mapping, network assembly with one size resolution, weight copies and the final output
check) and the number of layers. ``--per-edit`` resolves the network's sizes after every added
layer and connection instead, as ``from_torch`` did before batch edits: the difference is what
batching saves (quadratic in the number of layers). Times are medians over ``--rounds``.

Run: ``.venv/bin/python benchmarks/from_torch.py [--models resnet50 densenet121] [--per-edit]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.fx
import torchvision

from deeptoolbox import Network
from deeptoolbox.interop import from_torch

MODELS = ["resnet50", "densenet121", "efficientnet_b0", "convnext_tiny", "vit_b_16"]


def _median_time(work: Callable[[], object], rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


@contextlib.contextmanager
def _per_edit() -> Iterator[None]:
    """Make Network._deferred a no-op: sizes are resolved after every edit again."""

    @contextlib.contextmanager
    def eager(self: Network) -> Iterator[Network]:
        yield self

    original = Network._deferred
    Network._deferred = eager  # type: ignore[method-assign]
    try:
        yield
    finally:
        Network._deferred = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--size", type=int, default=224, help="example image size (not ViT)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-edit", action="store_true", help="also time per-edit resolution")
    args = parser.parse_args()
    torch.manual_seed(0)
    header = f"{'model':<16} {'layers':>6} {'fx trace':>9} {'from_torch':>11}"
    print(header + (f" {'per-edit':>9}" if args.per_edit else ""))
    for name in args.models:
        model = getattr(torchvision.models, name)(weights=None).eval()
        size = 224 if name.startswith("vit_") else args.size  # ViTs take 224 only
        example = torch.randn(1, 3, size, size)
        fx, _ = _median_time(lambda m=model: torch.fx.symbolic_trace(m), args.rounds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, net = _median_time(lambda m=model, x=example: from_torch(m, x), args.rounds)
            row = f"{name:<16} {len(net.layers):>6} {fx:>8.3f}s {ours:>10.3f}s"
            if args.per_edit:
                with _per_edit():
                    slow, _ = _median_time(lambda m=model, x=example: from_torch(m, x), 1)
                row += f" {slow:>8.3f}s"
        print(row, flush=True)


if __name__ == "__main__":
    main()
