"""The options of ``deeptoolbox experiment worker`` (shared by the experiment CLI and
:mod:`deeptoolbox.experiments._worker_entry`)."""

from __future__ import annotations

import argparse


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``deeptoolbox experiment worker``."""
    parser.add_argument("store", help="store: a SQLite file or a database URL")
    parser.add_argument("name", help="experiment name")
    parser.add_argument("--max-trials", type=int, default=None, help="stop after N trials")
    parser.add_argument(
        "--stale",
        choices=("requeue", "fail"),
        default="requeue",
        help="what to do with trials whose worker died (default: requeue)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--processes-per-trial",
        type=int,
        default=1,
        help="processes that train each trial data-parallel (default: 1)",
    )
    parser.add_argument("--run", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--slot", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
