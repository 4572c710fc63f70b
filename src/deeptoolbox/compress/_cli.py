"""``deeptoolbox compress MODEL --data DATA [--prune R] [--project V] [--quantize int8]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from deeptoolbox.errors import OptionError


def parser() -> argparse.ArgumentParser:
    """The options of ``deeptoolbox compress``."""
    parser = argparse.ArgumentParser(
        prog="deeptoolbox compress",
        description="Prune, project and quantize a model; print and draw the compression report.",
    )
    parser.add_argument("model", help="a saved network (.zip/folder) or any supported model file")
    parser.add_argument(
        "--data", required=True,
        help="labelled data: 'digits' (bundled) or a .npz file with 'inputs' and 'targets'",
    )  # fmt: skip
    parser.add_argument("--prune", type=float, default=None, help="fraction of channels to remove")
    parser.add_argument("--project", type=float, default=None,
                        help="explained variance to keep when projecting (e.g. 0.95)")  # fmt: skip
    parser.add_argument("--quantize", choices=["int8"], default=None, help="quantize to int8")
    parser.add_argument("--fine-tune-epochs", type=int, default=0,
                        help="epochs of fine-tuning after pruning / projection (default: 0)")  # fmt: skip
    parser.add_argument("--out", default="compressed", help="output folder (default: %(default)s)")
    parser.add_argument("--repetitions", type=int, default=10, help="latency repetitions")
    return parser


def _load_data(spec: str):
    if spec == "digits":
        from deeptoolbox.data import ArrayDatastore
        from deeptoolbox.datasets import digits

        images, labels = digits()
        return ArrayDatastore(images, targets=labels).split(0.8, seed=0)
    path = Path(spec)
    if path.suffix != ".npz" or not path.is_file():
        raise OptionError(
            f"compress: --data must be 'digits' or an existing .npz file with arrays 'inputs' "
            f"and 'targets'. Received: {spec!r}."
        )
    arrays = np.load(path, allow_pickle=False)
    missing = {"inputs", "targets"} - set(arrays.files)
    if missing:
        raise OptionError(f"compress: {path} lacks the arrays {sorted(missing)}.")
    x, y = torch.from_numpy(arrays["inputs"]).float(), torch.from_numpy(arrays["targets"])
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def main(argv: list[str]) -> int:
    """Parse ``argv`` (the words after ``deeptoolbox compress``) and run the command."""
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the command; writes the results into ``--out`` and prints the report."""
    from deeptoolbox.compress import project, prune, quantize, report
    from deeptoolbox.interop import read_model
    from deeptoolbox.network import save
    from deeptoolbox.training import TrainingOptions, train

    if args.prune is None and args.project is None and args.quantize is None:
        raise OptionError("compress: choose at least one of --prune, --project and --quantize.")
    original = read_model(args.model)
    train_data, test_data = _load_data(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = TrainingOptions(max_epochs=max(args.fine_tune_epochs, 1), verbose=False, seed=0)
    current = original
    if args.prune is not None:
        current = prune(current, ratio=args.prune).network
    if args.project is not None:
        current = project(current, train_data, explained_variance=args.project).network
    if args.fine_tune_epochs > 0 and current is not original:
        train(current, train_data, "crossentropy", options)
    if current is not original:
        print(f"wrote {save(current, out / 'compressed.zip')}")
    if args.quantize is not None:
        current = quantize(current, train_data)
        print(f"wrote {current.save(out / 'compressed-int8.onnx')}")
    result = report(original, current, test_data, repetitions=args.repetitions)
    text = str(result)
    (out / "report.txt").write_text(text + "\n")
    print(text)
    print(f"wrote {result.plot(out / 'report.png')}")
    return 0
