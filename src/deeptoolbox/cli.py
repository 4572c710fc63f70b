"""The ``deeptoolbox`` command line.

Commands: ``demo``, ``models``, ``classify``, ``convert``, ``analyze``, ``verify``, ``train``,
``compress``, ``codegen``, ``experiment``, ``serve``, ``app``, ``data check``.

Example:
    >>> main(["--version"])  # doctest: +ELLIPSIS
    deeptoolbox ...
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deeptoolbox._version import __version__

_TRUST_CODE = "allow a .pt or .pt2 input, which can run code when loaded (trusted files only)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeptoolbox", description="A deep learning toolbox for engineers, on PyTorch."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")

    demo = commands.add_parser("demo", help="run the end-to-end demo on bundled digits data")
    demo.add_argument(
        "--output", default="demo-output", help="results folder (default: %(default)s)"
    )
    demo.add_argument(
        "--epochs", type=int, default=8, help="training epochs (default: %(default)s)"
    )

    models = commands.add_parser("models", help="list the pretrained models")
    models.add_argument("--family", help="only this family (resnet, mobilenet_v3, vit...)")

    classify = commands.add_parser(
        "classify", help="classify an image with a pretrained model or your own saved network"
    )
    classify.add_argument("image", help="image file")
    classify.add_argument(
        "--model",
        required=True,
        help="pretrained model name (see `deeptoolbox models`) or model file "
        "(saved network .zip/folder, .onnx, .keras, .pt)",
    )
    classify.add_argument(
        "--weights",
        default=None,
        help="for a pretrained name: weights file or tag, 'none' for random (default: published)",
    )
    classify.add_argument("--top", type=int, default=5, help="classes shown (default: %(default)s)")
    classify.add_argument("--cache-dir", default=None, help="weights cache folder")

    convert = commands.add_parser("convert", help="convert a model file (formats from extensions)")
    convert.add_argument("input", help=".zip/folder, .onnx, .pt, .pt2, .keras or .h5")
    convert.add_argument("output", help=".zip/folder, .onnx, .pt, .pt2 or .keras")
    convert.add_argument("--trust-code", action="store_true", help=_TRUST_CODE)

    analyze = commands.add_parser("analyze", help="print the layer table of a model file")
    analyze.add_argument("file", help="any supported model file")
    analyze.add_argument("--trust-code", action="store_true", help=_TRUST_CODE)

    verify = commands.add_parser("verify", help="check a VNN-LIB property on an ONNX model")
    verify.add_argument("model", help="the .onnx file")
    verify.add_argument("property", help="the .vnnlib file")
    verify.add_argument(
        "--timeout", type=float, default=60.0, help="seconds (default: %(default)s)"
    )
    verify.add_argument("--output", default=None, help="also write the result to this file")
    verify.add_argument(
        "--milp", action="store_true",
        help="also solve open boxes as mixed-integer programs (complete, small ReLU networks)",
    )  # fmt: skip

    _add_train_parser(commands)

    compress = commands.add_parser(  # its options live in deeptoolbox.compress._cli
        "compress", add_help=False, help="prune, project and quantize a model, with a report"
    )
    compress.add_argument("arguments", nargs=argparse.REMAINDER)
    codegen = commands.add_parser(  # its options live in deeptoolbox.deploy._cli
        "codegen", add_help=False, help="write a model as portable C99 code with a Makefile"
    )
    codegen.add_argument("arguments", nargs=argparse.REMAINDER)
    from deeptoolbox.experiments._cli import add_experiment_parser  # argparse only

    add_experiment_parser(commands)
    from deeptoolbox._serve_cli import add_serve_parser  # argparse only

    add_serve_parser(commands)
    _add_app_parser(commands)
    _add_data_parser(commands)
    _add_label_parser(commands)
    return parser


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="run a training script in data-parallel processes (torchrun), on one "
        "or several machines, or write a SLURM batch script for it",
    )  # fmt: skip
    train.add_argument("--nproc", "--nproc-per-node", dest="nproc", type=int, default=1,
                       help="processes on each machine, one per GPU (default: %(default)s)")  # fmt: skip
    train.add_argument("--nnodes", type=int, default=1, help="machines (default: %(default)s)")
    train.add_argument("--node-rank", type=int, default=0,
                       help="this machine's number, 0 on the master (default: %(default)s)")  # fmt: skip
    train.add_argument("--master-addr", default=None,
                       help="host name or address of the machine of node rank 0")  # fmt: skip
    train.add_argument("--master-port", type=int, default=None,
                       help="port the machines meet at (default: 29500)")  # fmt: skip
    slurm = train.add_argument_group("SLURM (with --slurm: write an sbatch script)")
    slurm.add_argument("--slurm", action="store_true",
                       help="write an sbatch script for --nnodes nodes x --nproc-per-node GPUs")  # fmt: skip
    slurm.add_argument("--submit", action="store_true", help="then submit it with sbatch")
    slurm.add_argument("--sbatch-file", default=None,
                       help="where to write the script (default: SCRIPT_NAME.sbatch)")  # fmt: skip
    slurm.add_argument("--job-name", default=None)
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--time", default=None, help="time limit, e.g. 02:00:00")
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--gpus-per-node", type=int, default=None,
                       help="GPUs per node (default: --nproc-per-node; 0 for CPU nodes)")  # fmt: skip
    slurm.add_argument("--cpus-per-task", type=int, default=None)
    train.add_argument("script", help="a script calling deeptoolbox.train(...)")
    train.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script")


def _train_command(args: argparse.Namespace) -> int:
    from deeptoolbox.training import _launch

    if not args.slurm:
        if args.submit:
            from deeptoolbox.errors import OptionError

            raise OptionError("deeptoolbox train: `--submit` submits the script --slurm writes; "
                              "add --slurm.")  # fmt: skip
        return _launch.launch(
            args.script, args.nproc, args.script_args, nnodes=args.nnodes,
            node_rank=args.node_rank, master_addr=args.master_addr, master_port=args.master_port,
        )  # fmt: skip
    from pathlib import Path

    path = args.sbatch_file or Path(args.script).with_suffix(".sbatch").name
    written = _launch.write_slurm_script(
        path, args.script, args.script_args, nnodes=args.nnodes, nproc_per_node=args.nproc,
        gpus_per_node=args.gpus_per_node, job_name=args.job_name, partition=args.partition,
        time=args.time, account=args.account, cpus_per_task=args.cpus_per_task,
        master_port=args.master_port or _launch.DEFAULT_PORT,
    )  # fmt: skip
    print(f"wrote {written.resolve()}")
    return _launch.submit(written) if args.submit else 0


def _add_app_parser(commands: argparse._SubParsersAction) -> None:
    app = commands.add_parser(
        "app", help="open the browser apps (Network Designer, Training Monitor)"
    )
    app.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    app.add_argument("--no-browser", action="store_true", help="only print the URL")
    app.add_argument("--root", default=".", help="the only folder the apps read and write "
                     "(default: the current folder)")  # fmt: skip
    app.add_argument("--runs", default=None, help="Training Monitor runs folder, inside the "
                     "root (default: deeptoolbox-runs)")  # fmt: skip
    app.add_argument("--open", default=None, help="model file to open in the designer")


def _add_label_parser(commands: argparse._SubParsersAction) -> None:
    # the labeling app (issue 24): `deeptoolbox label PATH`
    label = commands.add_parser("label", help="open the Labeler on a folder of images")
    label.add_argument("path", help="image folder (class subfolders, or images and a labels.csv)")
    label.add_argument("--classes", default=None, help="comma-separated class names")
    label.add_argument(
        "--labels",
        default="auto",
        choices=("auto", "folders", "csv"),
        help="where labels live: class folders or labels.csv (default: auto)",
    )
    label.add_argument("--root", default=None, help="the only folder the app reads and "
                       "writes (default: PATH)")  # fmt: skip
    label.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    label.add_argument("--no-browser", action="store_true", help="only print the URL")
    label.add_argument("--network", default=None, help="classifier, segmentation network or "
                       "detector file (vision.save_detector) whose proposals label the "
                       "unlabelled images (auto-labeling)")  # fmt: skip
    label.add_argument("--task", default=None, choices=("classify", "detect", "segment"),
                       help="what --network proposes (default: from the network)")  # fmt: skip
    label.add_argument("--threshold", type=float, default=0.5, help="lowest score of a "
                       "detector's proposed boxes (default 0.5)")  # fmt: skip
    label.add_argument("--signals", action="store_true", help="label regions of the .npy/.csv "
                       "time series in PATH (saved to regions.csv)")  # fmt: skip
    label.add_argument("--sample-rate", type=float, default=1.0, help="samples per second of "
                       "the signals (default 1: times in samples)")  # fmt: skip


def _add_data_parser(commands: argparse._SubParsersAction) -> None:
    # data quality (issue 24): `deeptoolbox data check PATH`
    data = commands.add_parser("data", help="check a data set (corrupt files, duplicates, ...)")
    actions = data.add_subparsers(dest="data_command", required=True)
    check = actions.add_parser(
        "check", help="data-quality report of a folder of images or signals (exit 1 on errors)"
    )
    check.add_argument("path", help="folder (class subfolders; train/validation/test splits)")
    check.add_argument("--json", default=None, help="also write the report as JSON here")
    check.add_argument("--plot", default=None, help="also draw the report into this PNG")
    check.add_argument("--csv", default=None, help="also write the findings table as CSV here")


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from deeptoolbox._demo import run_demo

        run_demo(args.output, epochs=args.epochs)
        return 0
    if args.command == "models":
        from deeptoolbox.hub import models_command

        return models_command(args.family)
    if args.command == "classify":
        from deeptoolbox.hub import classify_command

        return classify_command(
            args.image, args.model, weights=args.weights, top=args.top, cache_dir=args.cache_dir
        )
    if args.command == "convert":
        from deeptoolbox.interop import convert

        print(f"wrote {convert(args.input, args.output, trust_code=args.trust_code)}")
        return 0
    if args.command == "analyze":
        from deeptoolbox.interop import read_model
        from deeptoolbox.network import analyze

        print(analyze(read_model(args.file, trust_code=args.trust_code)))
        return 0
    if args.command == "verify":
        from deeptoolbox.robustness import verify_vnnlib

        result = verify_vnnlib(args.model, args.property, timeout=args.timeout, milp=args.milp)
        print(result.to_vnncomp())
        if args.output:
            result.write(args.output)
        return 0
    if args.command == "compress":
        from deeptoolbox.compress._cli import main as compress_main

        return compress_main(args.arguments)
    if args.command == "codegen":
        from deeptoolbox.deploy._cli import main as codegen_main

        return codegen_main(args.arguments)
    if args.command == "experiment":
        from deeptoolbox.experiments._cli import run_experiment_command

        return run_experiment_command(args)
    if args.command == "serve":
        from deeptoolbox._serve_cli import serve_command

        return serve_command(args)
    if args.command == "app":
        from deeptoolbox.apps._launch import app_command

        return app_command(args)
    if args.command == "label":
        from deeptoolbox.apps._launch import label_command

        return label_command(args)
    if args.command == "data":
        from deeptoolbox.data._quality_cli import check_command

        return check_command(args.path, json_path=args.json, plot_path=args.plot,
                             csv_path=args.csv)  # fmt: skip
    return _train_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a toolbox error, printed)."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["compress"], ["codegen"]):  # parsed by their own _cli, options and all
        args = argparse.Namespace(command=argv[0], arguments=argv[1:], version=False)
    else:
        args = parser.parse_args(argv)
    if args.version:
        print(f"deeptoolbox {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from deeptoolbox.errors import DeepToolboxError

    try:
        return _run(args)
    except DeepToolboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
