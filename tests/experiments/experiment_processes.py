"""Helpers of the experiment tests that start processes of their own."""

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import deeptoolbox

HERE = Path(__file__).resolve().parent
SOURCES = Path(deeptoolbox.__file__).resolve().parents[1]


def environment() -> dict[str, str]:
    """The environment of a child `deeptoolbox` process: these sources and these tests."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCES), str(HERE), env.get("PYTHONPATH", "")])
    return env


def deeptoolbox_command(*args: str, **options) -> subprocess.Popen:
    command = [sys.executable, "-m", "deeptoolbox.cli", *args]
    return subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **options)  # fmt: skip


def trials_of(url: str, name: str) -> list:
    """The study's trials, or [] while the store or the study does not exist yet."""
    try:
        return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    except Exception:
        return []


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended (rc {process.returncode}) before {what}:\n"
                        f"{process.stdout.read()}")  # fmt: skip
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def write_spec(folder: Path, name: str, setup: str, parameters: str, store: Path,
               **options: str) -> Path:  # fmt: skip
    extra = "".join(f", {key}={value}" for key, value in options.items())
    spec = folder / f"{name}_spec.py"
    spec.write_text(
        "from experiment_setups import " + setup + "\n"
        "from deeptoolbox.experiments import Experiment\n\n"
        f"experiment = Experiment({name!r}, {setup}, {parameters}, store={str(store)!r}{extra})\n"
    )
    return spec
