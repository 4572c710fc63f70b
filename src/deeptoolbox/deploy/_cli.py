"""``deeptoolbox codegen MODEL --out DIR``: the command line of deploy.generate_c.

``deeptoolbox.cli`` hands every word after ``codegen`` to :func:`main` (as it does for
``compress``), so the top-level parser never imports this package, nor torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a model as portable C99 code (float32 or int8) with a Makefile"


def parser() -> argparse.ArgumentParser:
    """The parser of ``deeptoolbox codegen``."""
    parser = argparse.ArgumentParser(prog="deeptoolbox codegen", description=HELP)
    parser.add_argument("model", help="any supported model file (.zip/folder, .onnx, .pt, ...)")
    parser.add_argument("--out", required=True, help="folder to write (replaced if generated)")
    parser.add_argument(
        "--name", default="net", help="C prefix of functions and files (default: %(default)s)"
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "int8"),
        default="float32",
        help="float32, or int8 (needs --calibration) (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1, help="observations per call (default: %(default)s)"
    )
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="time steps per predict call, for inputs with a free length",
    )
    parser.add_argument(
        "--calibration",
        default=None,
        help="int8: .npy of typical inputs (.npz: one array per input, in order)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile the code with the C compiler and compare it with the model",
    )
    return parser


def load_calibration(path: str | None):
    """The calibration arrays of ``--calibration`` (None when not given)."""
    if path is None:
        return None
    import numpy as np

    from deeptoolbox.errors import DataError

    file = Path(path)
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"--calibration: cannot read {str(file)!r} as .npy/.npz: {err}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return [loaded[key] for key in loaded.files]


def main(argv: list[str]) -> int:
    """Parse ``argv`` (the words after ``deeptoolbox codegen``) and run the command."""
    return run_codegen(parser().parse_args(argv))


def run_codegen(args: argparse.Namespace) -> int:
    """Run the ``codegen`` command; returns the exit status."""
    from deeptoolbox.deploy._codegen import generate_c
    from deeptoolbox.interop import read_model

    if args.precision == "int8" and args.calibration is None:
        from deeptoolbox.errors import CodegenError

        raise CodegenError(
            "codegen: --precision int8 needs the value ranges of the network: pass "
            "--calibration FILE (.npy with a few hundred typical inputs, or .npz with one array "
            "per input)."
        )
    net = read_model(args.model)
    calibration = load_calibration(args.calibration)
    generate_c(
        net,
        args.out,
        name=args.name,
        precision=args.precision,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        calibration_data=calibration,
    )
    if args.check:
        from deeptoolbox.deploy._checks import compare_with_network

        print(compare_with_network(net, args.out, calibration))
    return 0
