"""Bayesian optimization of a small CNN on the bundled 8x8 digits with deeptoolbox.experiments.

Searches the filter count, learn rate and dropout (MATLAB Experiment Manager's "Bayesian
optimization" strategy), then writes into the output folder:

- ``experiments.db``: the store (an Optuna study: ``optuna-dashboard experiments.db`` opens it);
- ``experiments-artifacts/digits-bayes/trial-NNNN/``: each trial's network, history, plots;
- ``results.csv``: the results table;
- ``compare.png``: validation accuracy of the best trials over iterations;
- ``parallel-coordinates.png`` and ``parameter-importance.png``: Optuna's plots.

Run: ``python examples/experiment_digits.py --trials 12 --epochs 4 --workers 2`` (a few
minutes on a laptop CPU). Running it again resumes: finished trials are kept. The smoke test
in tests/experiments runs it with ``--trials 2 --epochs 1 --workers 0``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.datasets import digits
from deeptoolbox.experiments import Choice, Experiment, Uniform


def digits_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    images, labels = digits()
    order = np.random.default_rng(0).permutation(len(images))
    x = torch.tensor(images[order])
    y = torch.tensor(labels[order].astype(np.int64))
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def setup(params: dict) -> tuple:
    """The setup function: a network, training data, a loss and options from the parameters."""
    training, validation = digits_data()
    net = dtb.Network(
        [L.ImageInput((1, 8, 8)), L.Conv2d(params["filters"], 3, padding=1), L.ReLU(),
         L.MaxPool2d(2), L.Flatten(), L.Dropout(params["dropout"]), L.Dense(10), L.Softmax()],
        classes=[str(d) for d in range(10)],
    )  # fmt: skip
    options = dtb.TrainingOptions(
        solver="adam",
        initial_learn_rate=params["learn_rate"],
        max_epochs=params["epochs"],
        mini_batch_size=64,
        validation_data=validation,
        validation_frequency=20,
        metrics=["accuracy"],
    )
    return net, training, "crossentropy", options


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="processes (0: this one)")
    parser.add_argument("--output", default="experiment-output")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    experiment = Experiment(
        "digits-bayes", setup,
        {"filters": Choice([4, 8, 16]), "learn_rate": Uniform(1e-3, 1e-1, log=True),
         "dropout": Uniform(0.0, 0.5), "epochs": args.epochs},
        strategy="bayesian", trials=args.trials, metric="validation_accuracy",
        store=output / "experiments.db",
    )  # fmt: skip
    experiment.run(workers=args.workers)  # prints a line per trial and a summary
    best = experiment.best
    print(f"best: trial {best.number}, validation accuracy {best.value:.1%}, {best.params}")
    files = {
        "results": experiment.export_csv(output / "results.csv"),
        "compare": experiment.compare(path=output / "compare.png"),
        "network": best.artifacts / "network.zip",
    }
    if len(experiment.results(status="completed", as_records=True)) >= 2:
        files["parallel"] = experiment.plot_parallel_coordinates(
            output / "parallel-coordinates.png"
        )
        files["importance"] = experiment.plot_importance(output / "parameter-importance.png")
    for path in files.values():
        print(f"wrote {path}")
    return files


if __name__ == "__main__":
    main()
