"""The ``deeptoolbox`` command line.

Example:
    >>> main(["--version"])  # doctest: +ELLIPSIS
    deeptoolbox ...
    0
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deeptoolbox._version import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeptoolbox", description="A deep learning toolbox for engineers, on PyTorch."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="run the end-to-end demo on bundled digits data")
    demo.add_argument(
        "--output", default="demo-output", help="folder for results (default: %(default)s)"
    )
    demo.add_argument(
        "--epochs", type=int, default=8, help="training epochs (default: %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"deeptoolbox {__version__}")
        return 0
    if args.command == "demo":
        from deeptoolbox._demo import run_demo

        run_demo(args.output, epochs=args.epochs)
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
