"""Bayesian optimization against random sampling on objectives with a known optimum.

Each strategy of deeptoolbox.experiments (``"bayesian"``: Optuna's TPE sampler, and
``"gp"``: Optuna's Gaussian-process sampler, against ``"random"``) gets the same budget of
trials on the same cheap synthetic objective, for several seeds. The figure is the median
over seeds of the best value found, and of its gap to the known optimum. Not a timing: it
shows what the strategy buys for a fixed number of trials.

- ``branin``: 2 parameters, minimum 0.397887 (at three points).
- ``hartmann6``: 6 parameters in [0, 1], minimum -3.32237.

Run: ``.venv/bin/python benchmarks/experiments_search.py [--trials 30] [--seeds 5]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np

from deeptoolbox.experiments import Experiment, Uniform

OPTIMA = {"branin": 0.397887, "hartmann6": -3.32237}

_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
               [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])  # fmt: skip
_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(params: dict, monitor) -> dict:
    x, y = params["x"], params["y"]
    value = (y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2
    return {"objective": value + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10}


def hartmann6(params: dict, monitor) -> dict:
    point = np.array([params[f"x{i}"] for i in range(6)])
    inner = (_A * (point - _P) ** 2).sum(axis=1)
    return {"objective": float(-(_ALPHA * np.exp(-inner)).sum())}


SPACES = {
    "branin": (branin, {"x": Uniform(-5.0, 10.0), "y": Uniform(0.0, 15.0)}),
    "hartmann6": (hartmann6, {f"x{i}": Uniform(0.0, 1.0) for i in range(6)}),
}


def best_value(problem: str, strategy: str, seed: int, trials: int, folder: Path) -> float:
    setup, parameters = SPACES[problem]
    options = {"strategy": "random"} if strategy == "random" else {
        "strategy": "bayesian", "sampler": "gp" if strategy == "gp" else "tpe"}  # fmt: skip
    experiment = Experiment(
        f"{problem}-{strategy}-{seed}", setup, parameters, trials=trials, metric="objective",
        direction="minimize", seed=seed, store=folder / "search.db", artifacts=False, **options,
    )  # fmt: skip
    experiment.run(workers=0, verbose=False)
    return experiment.best.value


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default="random,bayesian,gp")
    parser.add_argument("--problems", default="branin,hartmann6")
    args = parser.parse_args(argv)
    figures: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        for problem in args.problems.split(","):
            print(f"{problem}: {args.trials} trials, {args.seeds} seeds, known minimum "
                  f"{OPTIMA[problem]}")  # fmt: skip
            for strategy in args.strategies.split(","):
                bests = [best_value(problem, strategy, seed, args.trials, Path(folder))
                         for seed in range(args.seeds)]  # fmt: skip
                median = statistics.median(bests)
                figures[(problem, strategy)] = median
                gap = median - OPTIMA[problem]
                shown = [round(b, 4) for b in bests]
                print(
                    f"  {strategy:9s} median best {median:9.5f}  gap {gap:8.5f}   per seed {shown}"
                )
    return figures


if __name__ == "__main__":
    main()
