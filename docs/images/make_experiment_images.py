"""Write the pictures of docs/experiments.md into docs/images/ (run from the repository root).

Runs examples/experiment_digits.py (Bayesian optimization on the bundled digits) in a
temporary folder and copies its plots and the best trial's plots here. Run:
``.venv/bin/python docs/images/make_experiment_images.py``.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[1] / "examples" / "experiment_digits.py"


def main() -> None:
    spec = importlib.util.spec_from_file_location("experiment_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory() as folder:
        files = module.main(["--trials", "12", "--epochs", "3", "--workers", "2",
                             "--output", folder])  # fmt: skip
        best = files["network"].parent
        copies = {
            files["compare"]: "experiments-compare.png",
            files["parallel"]: "experiments-parallel.png",
            files["importance"]: "experiments-importance.png",
            best / "training-progress.png": "experiments-trial-progress.png",
            best / "confusion.png": "experiments-confusion.png",
        }
        for source, name in copies.items():
            shutil.copyfile(source, HERE / name)
            print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
