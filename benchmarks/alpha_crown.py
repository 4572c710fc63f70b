"""alpha-CROWN tightening: plain CROWN, slopes optimized for the outputs only, and on every layer.

The networks of ``bounds.py`` (random weights, seeded: an MLP 784-256x3-10 and a CNN 1x28x28
conv16-conv32-fc100) and a small trained-like deep MLP (10-64x4-5), one input box of
half-width ``--epsilon`` around a random point each. For each network the script prints the
mean output width of plain CROWN (``lower_bound_of(..., optimize=False)``), of slopes
optimized for the outputs only (``optimize=True``, the behaviour before intermediate layers
were optimized), and of slopes optimized on every layer (``estimate_output_bounds(...,
optimize_slopes=True)``), with the time each took and the width ratio to plain CROWN. Every
run also checks that the optimized bounds contain 2,000 sampled outputs (they must: a
failure here is a soundness bug). No test depends on these figures.

Run: ``.venv/bin/python benchmarks/alpha_crown.py [--epsilon 0.02] [--steps 20]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bounds import cnn, mlp  # noqa: E402  (the networks of the bounds benchmark)

from deeptoolbox.robustness._bounds import lower_bound_of  # noqa: E402
from deeptoolbox.robustness._graph import to_graph  # noqa: E402


def deep_mlp() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(10, 64), nn.ReLU()]
    for _ in range(3):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(64, 5))


def widths(model, shape, epsilon: float, steps: int):
    torch.manual_seed(1)
    model = model.eval()
    graph = to_graph(model)
    center = torch.rand(1, *shape)
    lo, hi = center - epsilon, center + epsilon
    with torch.no_grad():
        outputs = model(center).shape[1]
    eye = torch.eye(outputs)
    spec = torch.cat([eye, -eye])[None]
    rows = []
    for label, optimize, intermediate in (("CROWN", False, False),
                                          ("alpha, outputs only", True, False),
                                          ("alpha, every layer", True, True)):  # fmt: skip
        start = time.perf_counter()
        bound = lower_bound_of(graph, lo, hi, spec, "crown", optimize, steps,
                               intermediate=intermediate)  # fmt: skip
        seconds = time.perf_counter() - start
        low, high = bound[0, :outputs], -bound[0, outputs:]
        with torch.no_grad():
            sampled = model(lo + (hi - lo) * torch.rand(2000, *shape))
        if not bool(((sampled >= low - 1e-5) & (sampled <= high + 1e-5)).all()):
            raise AssertionError(f"{label}: a sampled output lies outside the bounds")
        rows.append((label, float((high - low).mean()), seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [("MLP 10-64x4-5 (eps x10)", deep_mlp, (10,), 10 * args.epsilon),
             ("MLP 784-256x3-10", mlp, (784,), args.epsilon),
             ("CNN 1x28x28 conv16-conv32-fc100", cnn, (1, 28, 28), args.epsilon)]  # fmt: skip
    print("| network | bounds | mean width | width / CROWN | time s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, build, shape, epsilon in cases:
        rows = widths(build(), shape, epsilon, args.steps)
        base = rows[0][1]
        for k, (label, width, seconds) in enumerate(rows):
            print(f"| {name if k == 0 else ''} | {label} | {width:.4f} | {width / base:.4f} | "
                  f"{seconds:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
